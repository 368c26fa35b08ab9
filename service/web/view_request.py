"""A request on the filtered view: its parameters, its principal and account, its filters.

``/v1/entries``, ``/v1/histogram``, ``/v1/export``, ``/v1/exports`` and the page all read their
view here, so they accept the same parameters and refuse the same ones.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from service.actions.keys import Principal
from service.errors import bad_request
from service.search.filters import FILTER_PARAMS, ViewFilters, parse_view_filters
from service.web.auth import require, resolve_account

ENTRIES_PARAMS = {*FILTER_PARAMS, "size", "cursor", "order"}
HISTOGRAM_PARAMS = {*FILTER_PARAMS, "interval", "split"}
EXPORT_PARAMS = {*FILTER_PARAMS, "format", "order", "bom"}
ORDERS = ("desc", "asc")
"""Newest first (the default) or oldest first."""
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


def single(params: dict[str, list[str]], name: str, default: str) -> str:
    """The value of ``name``, or ``default`` (a single-valued parameter: one given more than
    once was refused before the handler, by :mod:`service.web.query_string`)."""
    return params.get(name, [default])[0]


def order_of(params: dict[str, list[str]]) -> str:
    order = single(params, "order", ORDERS[0])
    if order not in ORDERS:
        raise bad_request(f"order must be {' or '.join(ORDERS)}", field="order")
    return order


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
