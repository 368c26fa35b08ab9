"""``GET /settings/audit-logs``: the view, from the same data functions as ``/v1/entries``.

The page's URL is parsed into a :class:`~service.page.view.PageView`, translated into the API's
filter parameters and validated by :func:`service.api.search.read_request` (the account always
comes from the signed-in key). Entries, facets and the cursor come from
:func:`~service.search.entries.search_entries`, the chart from
:func:`~service.search.histogram.date_histogram`. A bad filter or search text is shown on the
page with its 4xx status; engine trouble is a 503 page, never a 500.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from service.actions.viewers import record_view
from service.errors import ServiceError
from service.page import exports
from service.page.destination_pages import may_manage_destinations
from service.page.html import html_page
from service.page.layout import section_tabs
from service.page.screen import Screen, render_screen
from service.page.session import Session, read_session, sign_in_response
from service.page.view import PageView, parse_page_view
from service.runtime import runtime_of
from service.search.entries import search_entries
from service.search.histogram import date_histogram
from service.search.integrity_log import IntegrityLog
from service.search.jobs import JobStore
from service.web.view_request import ENTRIES_PARAMS, read_request

PAGE_SIZE = 50
STALE_CURSOR = (
    "Those older entries cannot be shown again (the link was made for another view, or the "
    "service's keys changed): here are the newest entries."
)


async def _read_view(request: Request, screen: Screen) -> None:
    """Fill ``screen`` with its view's entries, facets, seals and chart."""
    session, runtime = screen.session, runtime_of(request)
    view = screen.view
    _, screen.filters, _ = await read_request(
        request, "read", ENTRIES_PARAMS, session.principal, view.filter_params()
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
        snapshot=False,
    )
    log = IntegrityLog(runtime.es, runtime.names)
    ids = [str(e["id"]) for e in screen.page.entries]
    screen.seals = await log.sealing_checkpoints(screen.filters.account_id, ids)
    screen.histogram = await date_histogram(
        runtime.es, runtime.names, screen.filters, "auto", "category"
    )
    if session.can_export:
        jobs = JobStore(runtime.es, runtime.names)
        screen.exports = await jobs.recent(session.account.id, exports.RECENT_EXPORTS)


def _rendered(screen: Screen) -> str:
    """The screen, with the tabs to Streaming for a key that may manage destinations."""
    text = render_screen(screen, exports.JOB_THRESHOLD)
    if not may_manage_destinations(screen.session):
        return text
    main = '<main class="container" id="main">'
    return text.replace(main, main + section_tabs("entries"), 1)


def _fallback(view: PageView, error: ServiceError, shown_q: str) -> PageView | None:
    """The view to show instead of one that failed: the newest page for a cursor that cannot
    be used, the last good search for search text with a mistake; ``None`` otherwise."""
    if error.status != 400:
        return None
    if error.field == "cursor" and view.cursor:
        return replace(view, cursor="")
    if error.field == "q" and view.q != shown_q:
        return replace(view, q=shown_q, cursor="")
    return None


def _shown_q(request: Request) -> str:
    """The search text of the view the visitor came from (the page's own, by its referrer):
    the last good search, shown again when the new one has a mistake."""
    came_from = urlsplit(request.headers.get("referer", ""))
    if came_from.netloc != request.url.netloc or came_from.path != request.url.path:
        return ""
    return parse_page_view(parse_qsl(came_from.query, keep_blank_values=True)).q


async def audit_logs(request: Request) -> Response:
    session = await read_session(request)
    if not isinstance(session, Session):
        return sign_in_response(request, session)
    view = parse_page_view(request.query_params.multi_items())
    screen = Screen(session, view)
    runtime_of(request).counters["page_views"] += 1
    try:
        await _read_view(request, screen)
    except ServiceError as e:
        fallback = _fallback(view, e, _shown_q(request))
        if fallback is not None:
            return await _instead(request, Screen(session, fallback), view, e)
        screen.error, screen.page, screen.histogram = e, None, None
        return html_page(_rendered(screen), e.status, e.headers)
    return html_page(_rendered(screen))


async def _instead(
    request: Request, screen: Screen, asked: PageView, error: ServiceError
) -> Response:
    """The fallback view, saying why: a stale cursor is a note (200), a search mistake the
    error next to the search box (400) with the text as typed, to correct it."""
    try:
        await _read_view(request, screen)
    except ServiceError as e:
        screen.view, screen.error, screen.page, screen.histogram = asked, e, None, None
        return html_page(_rendered(screen), e.status, e.headers)
    if error.field == "cursor":
        screen.note = STALE_CURSOR
        return html_page(_rendered(screen))
    screen.error, screen.typed_q = error, asked.q
    return html_page(_rendered(screen), error.status, error.headers)
