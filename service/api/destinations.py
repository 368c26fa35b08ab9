"""``/v1/destinations``: an account's streaming destinations (scope ``destinations``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.actions import destinations
from service.actions.destination_lag import with_lag
from service.actions.keys import Principal
from service.errors import bad_request
from service.runtime import runtime_of
from service.search.accounts import Account
from service.web.auth import require, resolve_account
from service.web.bodies import read_json_object
from service.web.view_request import query_params

BODY_LIMIT = 256 * 1024
"""A destination's body (a CA bundle included) is at most this large."""


async def _body(request: Request) -> dict[str, Any]:
    body = await read_json_object(request, BODY_LIMIT)
    if body is None:
        raise bad_request("the body is required: a JSON object", "body")
    return body


async def _who(request: Request, account_id: str | None) -> tuple[Principal, Account]:
    principal = await require(request, "destinations")
    if principal.viewer is not None:
        raise bad_request("viewer sessions cannot manage destinations", "scope")
    return principal, await resolve_account(request, principal, account_id)


async def list_destinations(request: Request) -> Response:
    params = query_params(request, {"account_id"})
    _, account = await _who(request, params.get("account_id", [None])[-1])
    runtime = runtime_of(request)
    found = await destinations.list_destinations(runtime, account.id)
    return JSONResponse({"destinations": await with_lag(runtime, account.id, found)})


async def create_destination(request: Request) -> Response:
    query_params(request, set())
    body = await _body(request)
    requested = body.get("account_id")
    if requested is not None and not isinstance(requested, str):
        raise bad_request("account_id must be an account's id", "account_id")
    principal, account = await _who(request, requested)
    created = await destinations.create_destination(runtime_of(request), principal, account.id,
                                                    body)  # fmt: skip
    return JSONResponse(created, status_code=201)


async def get_destination(request: Request) -> Response:
    params = query_params(request, {"account_id"})
    _, account = await _who(request, params.get("account_id", [None])[-1])
    runtime = runtime_of(request)
    found = await destinations.own_destination(
        runtime, account.id, request.path_params["destination_id"]
    )
    [shown] = await with_lag(runtime, account.id, [destinations.public(found)])
    return JSONResponse(shown)


async def change_destination(request: Request) -> Response:
    params = query_params(request, {"account_id"})
    principal, account = await _who(request, params.get("account_id", [None])[-1])
    body = await _body(request)
    changed = await destinations.change_destination(
        runtime_of(request), principal, account.id, request.path_params["destination_id"], body
    )
    return JSONResponse(changed)


async def delete_destination(request: Request) -> Response:
    params = query_params(request, {"account_id"})
    principal, account = await _who(request, params.get("account_id", [None])[-1])
    await destinations.delete_destination(
        runtime_of(request), principal, account.id, request.path_params["destination_id"]
    )
    return Response(status_code=204)
