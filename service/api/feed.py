"""``GET /v1/feed``: the account's entries in log order, after a position (see
:mod:`service.actions.feed`)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.actions.feed import DEFAULT_LIMIT, MAX_LIMIT, read_feed
from service.errors import bad_request
from service.runtime import runtime_of
from service.web.auth import require, resolve_account
from service.web.view_request import query_params, single
from service.zones import zone

MAX_POSITION_DIGITS = 15


def _whole(params: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    text = single(params, name, str(default))
    digits = text.isascii() and text.isdigit() and len(text) <= MAX_POSITION_DIGITS
    if not digits or not low <= int(text) <= high:
        raise bad_request(f"{name} must be a whole number from {low} to {high} (ASCII digits)",
                          field=name)  # fmt: skip
    return int(text)


async def get_feed(request: Request) -> Response:
    principal = await require(request, "read")
    params = query_params(request, {"account_id", "after", "limit", "tz"})
    account = await resolve_account(request, principal, params.get("account_id", [None])[-1])
    after = _whole(params, "after", 0, 0, 10**MAX_POSITION_DIGITS - 1)
    limit = _whole(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    tz = zone(params["tz"][-1], "tz") if "tz" in params else ZoneInfo(account.timezone)
    runtime = runtime_of(request)
    runtime.counters["feed_reads"] += 1
    page = await read_feed(runtime, account.id, after=after, limit=limit, tz=tz)
    return JSONResponse(page.to_dict())
