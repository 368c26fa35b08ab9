"""``GET /settings/audit-logs``: the view, from the same data functions as ``/v1/entries``.

The page's URL is parsed into a :class:`~service.page.view.PageView`, translated into the API's
filter parameters and validated by :func:`service.api.search.read_request` (the account always
comes from the signed-in key). Entries, facets and the cursor come from
:func:`~service.search.entries.search_entries`, the chart from
:func:`~service.search.histogram.date_histogram`. A bad filter or search text is shown on the
page with its 4xx status; engine trouble is a 503 page, never a 500.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.actions.viewers import record_view
from service.errors import ServiceError
from service.page import exports
from service.page.html import html_page
from service.page.screen import Screen, render_screen
from service.page.session import Session, read_session, sign_in_response
from service.page.view import parse_page_view
from service.runtime import runtime_of
from service.search.entries import search_entries
from service.search.histogram import date_histogram
from service.search.integrity_log import IntegrityLog
from service.web.view_request import ENTRIES_PARAMS, read_request

PAGE_SIZE = 50


async def audit_logs(request: Request) -> Response:
    session = await read_session(request)
    if not isinstance(session, Session):
        return sign_in_response(request, session)
    view = parse_page_view(request.query_params.multi_items())
    screen = Screen(session, view)
    runtime = runtime_of(request)
    runtime.counters["page_views"] += 1
    try:
        params = view.filter_params()
        _, screen.filters, _ = await read_request(
            request, "read", ENTRIES_PARAMS, session.principal, params
        )
        if session.principal.viewer is not None and session.account.view_audit:
            await record_view(runtime, session.principal, session.account.id,
                              screen.filters.describe())  # fmt: skip
        screen.page = await search_entries(
            runtime.es,
            runtime.names,
            screen.filters,
            size=PAGE_SIZE,
            order="desc",
            cursor_text=view.cursor or None,
            secret=runtime.cursor_key(),
            timeout_s=runtime.settings.search_timeout_s,
        )
        log = IntegrityLog(runtime.es, runtime.names)
        ids = [str(e["id"]) for e in screen.page.entries]
        screen.seals = await log.sealing_checkpoints(screen.filters.account_id, ids)
        screen.histogram = await date_histogram(
            runtime.es, runtime.names, screen.filters, "auto", "category"
        )
    except ServiceError as e:
        screen.error, screen.page, screen.histogram = e, None, None
        return html_page(render_screen(screen, exports.JOB_THRESHOLD), e.status, e.headers)
    return html_page(render_screen(screen, exports.JOB_THRESHOLD))
