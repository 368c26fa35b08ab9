"""``GET /v1/entries`` and ``GET /v1/histogram``: the filtered view as JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.auth import Principal, require, resolve_account
from service.errors import bad_request
from service.runtime import runtime_of
from service.search.entries import search_entries
from service.search.filters import FILTER_PARAMS, ViewFilters, parse_view_filters
from service.search.histogram import date_histogram

ENTRIES_PARAMS = {*FILTER_PARAMS, "size", "cursor", "order"}
HISTOGRAM_PARAMS = {*FILTER_PARAMS, "interval", "split"}


def query_params(request: Request, allowed: set[str]) -> dict[str, list[str]]:
    """Name → all values; an unknown parameter is a 400 rather than silently ignored."""
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise bad_request(f"unknown parameter '{name}'", field=name)
        params.setdefault(name, []).append(value)
    return params


async def read_request(
    request: Request,
    scope: str,
    allowed: set[str],
    principal: Principal | None = None,
    params: dict[str, list[str]] | None = None,
) -> tuple[Principal, ViewFilters, dict[str, list[str]]]:
    """Authenticate, resolve the account and parse the filters of a request on the view."""
    principal = principal or await require(request, scope)
    params = params if params is not None else query_params(request, allowed)
    requested = params.get("account_id", [None])[-1]
    account = await resolve_account(request, principal, requested)
    filters = parse_view_filters(params, account.id, account.timezone, datetime.now(UTC))
    return principal, filters, params


def _one(params: dict[str, list[str]], name: str, default: str) -> str:
    return params.get(name, [default])[-1]


async def get_entries(request: Request) -> Response:
    _, filters, params = await read_request(request, "read", ENTRIES_PARAMS)
    size_text = _one(params, "size", "50")
    if not (size_text.isascii() and size_text.isdigit()) or not 1 <= int(size_text) <= 200:
        raise bad_request("size must be a whole number from 1 to 200 (ASCII digits)", field="size")
    order = _one(params, "order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("order must be asc or desc", field="order")
    runtime = runtime_of(request)
    runtime.counters["searches"] += 1
    page = await search_entries(
        runtime.es, runtime.names, filters, int(size_text), order,
        params.get("cursor", [None])[-1], str(runtime.settings.cursor_secret).encode(),
        runtime.settings.search_timeout_s,
    )  # fmt: skip
    return JSONResponse(page.to_dict())


async def get_histogram(request: Request) -> Response:
    _, filters, params = await read_request(request, "read", HISTOGRAM_PARAMS)
    runtime = runtime_of(request)
    runtime.counters["histograms"] += 1
    histogram = await date_histogram(
        runtime.es, runtime.names, filters, _one(params, "interval", "auto"),
        _one(params, "split", "category"),
    )  # fmt: skip
    return JSONResponse(histogram.to_dict())
