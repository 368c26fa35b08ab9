"""``GET /v1/entries`` and ``GET /v1/histogram``: the filtered view as JSON."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.errors import bad_request
from service.runtime import runtime_of
from service.search.entries import search_entries
from service.search.histogram import date_histogram
from service.web.view_request import (
    DEFAULT_PAGE_SIZE,
    ENTRIES_PARAMS,
    HISTOGRAM_PARAMS,
    MAX_PAGE_SIZE,
    order_of,
    read_request,
    single,
)


async def get_entries(request: Request) -> Response:
    _, filters, params = await read_request(request, "read", ENTRIES_PARAMS)
    size_text = single(params, "size", str(DEFAULT_PAGE_SIZE))
    digits = size_text.isascii() and size_text.isdigit() and len(size_text) <= 3
    if not digits or not 1 <= int(size_text) <= MAX_PAGE_SIZE:
        message = f"size must be a whole number from 1 to {MAX_PAGE_SIZE} (ASCII digits)"
        raise bad_request(message, field="size")
    order = order_of(params)
    runtime = runtime_of(request)
    runtime.counters["searches"] += 1
    page = await search_entries(
        runtime.es,
        runtime.names,
        filters,
        size=int(size_text),
        order=order,
        cursor_text=params.get("cursor", [None])[-1],
        secret=runtime.cursor_key(),
        timeout_s=runtime.settings.search_timeout_s,
    )
    return JSONResponse(page.to_dict())


async def get_histogram(request: Request) -> Response:
    _, filters, params = await read_request(request, "read", HISTOGRAM_PARAMS)
    runtime = runtime_of(request)
    runtime.counters["histograms"] += 1
    histogram = await date_histogram(
        runtime.es,
        runtime.names,
        filters,
        single(params, "interval", "auto"),
        single(params, "split", "category"),
    )
    return JSONResponse(histogram.to_dict())
