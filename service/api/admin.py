"""Admin endpoints: accounts and keys (platform keys with the ``admin`` scope)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.actions.accounts import (
    AccountActions,
    validate_account_id,
    validate_name,
    validate_scopes,
    validate_timezone,
)
from service.actions.keys import ACCOUNT_ID, KEY_ID, Principal
from service.errors import ServiceError, bad_request
from service.runtime import runtime_of
from service.search.accounts import Account, AccountStore
from service.web.auth import require
from service.web.bodies import read_json_object
from service.web.view_request import query_params

MAX_ADMIN_BODY = 64 * 1024


async def _json_object(request: Request, known: tuple[str, ...]) -> dict[str, Any]:
    """The body: a JSON object with no field but the ``known`` ones (a 400 naming another)."""
    parsed = await read_json_object(request, MAX_ADMIN_BODY)
    if parsed is None:
        raise bad_request("the body must be a JSON object", field="body")
    unknown = sorted(set(parsed) - set(known))
    if unknown:
        message = f"unknown field '{unknown[0]}': this request takes {', '.join(known)}"
        raise bad_request(message, unknown[0])
    return parsed


def _store(request: Request) -> AccountStore:
    runtime = runtime_of(request)
    return AccountStore(runtime.es, runtime.names)


def _actions(request: Request, principal: Principal) -> AccountActions:
    runtime = runtime_of(request)
    return AccountActions(_store(request), runtime.ingest, principal.actor())


async def create_account(request: Request) -> Response:
    principal = await require(request, "admin")
    body = await _json_object(request, ("id", "name", "timezone", "view_audit"))
    account_id = validate_account_id(body.get("id"))
    name = validate_name(body.get("name", account_id))
    timezone = validate_timezone(body.get("timezone", "UTC"))
    account = Account(account_id, name, timezone, _view_audit(body.get("view_audit", False)))
    created = await _actions(request, principal).create_account(account)
    if not created:
        raise ServiceError(409, "conflict", f"account '{account_id}' exists", field="id")
    runtime_of(request).account_cache.pop(account_id, None)
    return JSONResponse(account.to_dict(), status_code=201)


async def update_account(request: Request) -> Response:
    principal = await require(request, "admin")
    account_id = request.path_params["account_id"]
    if not ACCOUNT_ID.match(account_id):
        raise ServiceError(404, "not_found", f"no account '{account_id}'")
    body = await _json_object(request, ("name", "timezone", "view_audit"))
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = validate_name(body["name"])
    if "timezone" in body:
        changes["timezone"] = validate_timezone(body["timezone"])
    if "view_audit" in body:
        changes["view_audit"] = _view_audit(body["view_audit"])
    if not changes:
        raise bad_request("nothing to change: give name, timezone or view_audit", field="body")
    account = await _actions(request, principal).update_account(account_id, changes)
    if account is None:
        raise ServiceError(404, "not_found", f"no account '{account_id}'")
    runtime_of(request).account_cache.pop(account_id, None)
    return JSONResponse(account.to_dict())


def _view_audit(value: object) -> bool:
    if not isinstance(value, bool):
        raise bad_request("view_audit must be true or false", "view_audit")
    return value


async def list_accounts(request: Request) -> Response:
    await require(request, "admin")
    accounts = await _store(request).list_accounts()
    return JSONResponse({"accounts": [a.to_dict() for a in accounts]})


async def create_key(request: Request) -> Response:
    principal = await require(request, "admin")
    body = await _json_object(request, ("account_id", "scopes", "name"))
    if "account_id" not in body:  # a key for every account is never made by leaving it out
        raise bad_request("account_id is required: an account's id, or null for a platform key",
                          "account_id")  # fmt: skip
    account_id = body["account_id"]
    if account_id is not None and (
        not isinstance(account_id, str) or not ACCOUNT_ID.match(account_id)
    ):
        raise bad_request("account_id must be an account id or null", field="account_id")
    scopes = validate_scopes(body.get("scopes"), account_id)
    name = validate_name(body.get("name", "key"))
    created = await _actions(request, principal).create_key(name, account_id, scopes)
    if created is None:
        raise ServiceError(404, "not_found", f"no account '{account_id}'", "account_id")
    record, secret = created
    return JSONResponse({**record.public(), "key": secret}, status_code=201)


async def revoke_key(request: Request) -> Response:
    principal = await require(request, "admin")
    key_id = request.path_params["key_id"]
    if not KEY_ID.match(key_id):
        raise ServiceError(404, "not_found", f"no key '{key_id}'")
    record = await _actions(request, principal).revoke_key(key_id)
    if record is None:
        raise ServiceError(404, "not_found", f"no key '{key_id}'")
    runtime_of(request).key_cache.forget(key_id)
    return Response(status_code=204)


async def list_keys(request: Request) -> Response:
    await require(request, "admin")
    params = query_params(request, {"account_id"})
    account_id = params["account_id"][0] if "account_id" in params else None
    if account_id is not None and not ACCOUNT_ID.match(account_id):
        raise bad_request("account_id is not an account id", field="account_id")
    keys = await _store(request).list_keys(account_id)
    return JSONResponse({"keys": [k.public() for k in keys]})
