"""``POST /v1/viewer-sessions``: a one-time link opening the Audit Logs page for one person."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.actions.viewers import mint_link
from service.errors import bad_request
from service.runtime import runtime_of
from service.web.auth import require
from service.web.bodies import read_json_object


async def post_viewer_session(request: Request) -> Response:
    principal = await require(request, "viewer")
    body = await read_json_object(request, 16 * 1024)
    if body is None:
        raise bad_request("the body is required: {viewer: {id, name, email}, scopes, ...}", "body")
    base = str(request.base_url)
    link = await mint_link(runtime_of(request), principal, body, base)
    return JSONResponse(link, status_code=201, headers={"Cache-Control": "no-store"})
