"""Admin endpoints: accounts and keys (platform keys with the ``admin`` scope)."""

from __future__ import annotations

from typing import Any

from elasticsearch import ApiError, TransportError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import audit_trail
from service.auth import ACCOUNT_ID, ACCOUNT_SCOPES, KEY_ID, SCOPES, new_key, require
from service.bodies import read_json_object
from service.errors import ServiceError, bad_request, engine_unavailable
from service.ingest_api import ingest_context
from service.runtime import runtime_of
from service.search.accounts import Account, AccountStore
from service.zones import zone

MAX_ADMIN_BODY = 64 * 1024


async def _json_object(request: Request) -> dict[str, Any]:
    parsed = await read_json_object(request, MAX_ADMIN_BODY)
    if parsed is None:
        raise bad_request("the body must be a JSON object", field="body")
    return parsed


def validate_timezone(value: object) -> str:
    return zone(value, "timezone").key


def validate_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise bad_request(f"{field} must be a non-empty string of at most 200 characters", field)
    return value


def _store(request: Request) -> AccountStore:
    runtime = runtime_of(request)
    return AccountStore(runtime.es, runtime.names)


async def create_account(request: Request) -> Response:
    principal = await require(request, "admin")
    body = await _json_object(request)
    account_id = body.get("id")
    if not isinstance(account_id, str) or not ACCOUNT_ID.match(account_id):
        raise bad_request("id must be 1-63 characters of a-z 0-9 _ - (starting a-z 0-9)", "id")
    account = Account(account_id, validate_name(body.get("name", account_id)),
                      validate_timezone(body.get("timezone", "UTC")))  # fmt: skip
    try:
        created = await _store(request).create_account(account)
    except (ApiError, TransportError) as e:
        raise engine_unavailable() from e
    if not created:
        raise ServiceError(409, "conflict", f"account '{account_id}' exists", field="id")
    runtime_of(request).account_cache.pop(account_id, None)
    await audit_trail.record(
        ingest_context(runtime_of(request)), account_id, audit_trail.key_actor(principal.key_id),
        "account.created", f"Account {account.name} created (timezone {account.timezone})",
        {"target_type": "account", "target_id": account_id, "target_name": account.name},
    )  # fmt: skip
    return JSONResponse(account.to_dict(), status_code=201)


async def update_account(request: Request) -> Response:
    principal = await require(request, "admin")
    account_id = request.path_params["account_id"]
    if not ACCOUNT_ID.match(account_id):
        raise ServiceError(404, "not_found", f"no account '{account_id}'")
    body = await _json_object(request)
    unknown = set(body) - {"name", "timezone"}
    if unknown:
        field = sorted(unknown)[0]
        raise bad_request(f"{field} cannot be changed (only name and timezone)", field)
    changes = {}
    if "name" in body:
        changes["name"] = validate_name(body["name"])
    if "timezone" in body:
        changes["timezone"] = validate_timezone(body["timezone"])
    if not changes:
        raise bad_request("nothing to change: give name and/or timezone", field="body")
    try:
        account = await _store(request).update_account(account_id, changes)
    except (ApiError, TransportError) as e:
        raise engine_unavailable() from e
    if account is None:
        raise ServiceError(404, "not_found", f"no account '{account_id}'")
    runtime_of(request).account_cache.pop(account_id, None)
    summary = ", ".join(f"{k} → {v}" for k, v in changes.items())
    await audit_trail.record(
        ingest_context(runtime_of(request)), account_id, audit_trail.key_actor(principal.key_id),
        "account.updated", f"Account settings changed: {summary}",
        {"target_type": "account", "target_id": account_id, "target_name": account.name},
    )  # fmt: skip
    return JSONResponse(account.to_dict())


async def list_accounts(request: Request) -> Response:
    await require(request, "admin")
    try:
        accounts = await _store(request).list_accounts()
    except (ApiError, TransportError) as e:
        raise engine_unavailable() from e
    return JSONResponse({"accounts": [a.to_dict() for a in accounts]})


def validate_scopes(value: object, account_id: str | None) -> list[str]:
    allowed = ACCOUNT_SCOPES if account_id else SCOPES
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        raise bad_request(f"scopes must be a non-empty array of {', '.join(allowed)}", "scopes")
    bad = [s for s in value if s not in allowed]
    if bad:
        raise bad_request(f"scope '{bad[0]}' is not one of {', '.join(allowed)}", "scopes")
    return sorted(set(value))


async def create_key(request: Request) -> Response:
    principal = await require(request, "admin")
    body = await _json_object(request)
    account_id = body.get("account_id")
    if account_id is not None and (
        not isinstance(account_id, str) or not ACCOUNT_ID.match(account_id)
    ):
        raise bad_request("account_id must be an account id or null", field="account_id")
    scopes = validate_scopes(body.get("scopes"), account_id)
    name = validate_name(body.get("name", "key"))
    store = _store(request)
    try:
        if account_id is not None and await store.get_account(account_id) is None:
            raise ServiceError(404, "not_found", f"no account '{account_id}'", "account_id")
        record, secret = new_key(name, account_id, scopes)
        await store.create_key(record)
    except (ApiError, TransportError) as e:
        raise engine_unavailable() from e
    if account_id is not None:
        await audit_trail.record(
            ingest_context(runtime_of(request)), account_id,
            audit_trail.key_actor(principal.key_id), "keys.created",
            f"API key '{name}' created with scopes {', '.join(scopes)}",
            {"target_type": "api_key", "target_id": record.id, "target_name": name},
        )  # fmt: skip
    return JSONResponse({**record.public(), "key": secret}, status_code=201)


async def revoke_key(request: Request) -> Response:
    principal = await require(request, "admin")
    key_id = request.path_params["key_id"]
    if not KEY_ID.match(key_id):
        raise ServiceError(404, "not_found", f"no key '{key_id}'")
    runtime = runtime_of(request)
    try:
        record = await _store(request).revoke_key(key_id)
    except (ApiError, TransportError) as e:
        raise engine_unavailable() from e
    if record is None:
        raise ServiceError(404, "not_found", f"no key '{key_id}'")
    runtime.key_cache.forget(key_id)
    if record.account_id is not None:
        await audit_trail.record(
            ingest_context(runtime), record.account_id, audit_trail.key_actor(principal.key_id),
            "keys.revoked", f"API key '{record.name}' revoked",
            {"target_type": "api_key", "target_id": record.id, "target_name": record.name},
        )  # fmt: skip
    return Response(status_code=204)


async def list_keys(request: Request) -> Response:
    await require(request, "admin")
    account_id = request.query_params.get("account_id")
    try:
        keys = await _store(request).list_keys(account_id)
    except (ApiError, TransportError) as e:
        raise engine_unavailable() from e
    return JSONResponse({"keys": [k.public() for k in keys]})
