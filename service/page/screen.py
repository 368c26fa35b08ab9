"""The Audit Logs screen put together: title, filters, histogram, results and paging."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from service.errors import ServiceError
from service.export.stream import new_export_id
from service.page.chart import histogram_svg
from service.page.controls import export_form, filter_panel
from service.page.exports import recent_exports
from service.page.html import BASE_PATH, document, esc
from service.page.layout import PRODUCT, alert, format_local, timezone_label, top_bar
from service.page.session import Session
from service.page.table import entries_table
from service.page.view import PageView
from service.search.entries import Page
from service.search.filters import ViewFilters
from service.search.histogram import Histogram

FIELD_NAMES = {
    "q": "Search",
    "start": "Start date",
    "end": "End date",
    "from": "Start date",
    "to": "End date",
    "range": "Date range",
    "cursor": "Older entries",
}
INTEGRATION_KEPT = timedelta(days=30)
"""How long CRM integration entries are kept (``ilm_policies/integration.json``)."""
FIELD_ALIASES = {"q": "q", "start": "start", "from": "start", "end": "end", "to": "end"}


@dataclass
class Screen:
    session: Session
    view: PageView
    filters: ViewFilters | None = None
    page: Page | None = None
    histogram: Histogram | None = None
    error: ServiceError | None = None
    seals: dict[str, int] = field(default_factory=dict)
    """Entry id → the checkpoint that sealed it (entries not in it are being sealed)."""
    note: str | None = None
    """Why this view is shown instead of the one asked for (a cursor that cannot be used)."""
    typed_q: str | None = None
    """Search text with a mistake: the view is the last good one, ``error`` says what is wrong."""
    exports: list[dict[str, Any]] = field(default_factory=list)
    """The account's latest export jobs (for a visitor who may export)."""


def window_text(filters: ViewFilters) -> str:
    window, tz = filters.window, filters.tz
    end = format_local(window.end, tz)
    if window.start is None:
        return f"everything up to {end}"
    return f"{format_local(window.start, tz)} \N{EN DASH} {end}"


def _error(error: ServiceError) -> str:
    where = FIELD_NAMES.get(error.field or "", "")
    title = f"{where}: this view cannot be shown." if where else "This view cannot be shown."
    return alert(error.message, title=title).replace("<div ", '<div id="view-error" ', 1)


def _pager(screen: Screen) -> str:
    assert screen.page is not None
    page, view = screen.page, screen.view
    shown = len(page.entries)
    total = f"{page.total:,}{'+' if page.total_relation == 'gte' else ''}"
    if view.cursor:
        status = f"Showing <span data-shown>{shown:,}</span> older entries of {total}"
    else:
        status = f"Showing <span data-shown>{shown:,}</span> of {total}"
    links = []
    if page.next_cursor:
        older = replace(view, cursor=page.next_cursor)
        links.append(
            f'<a class="button load-more" href="{esc(older.url(with_cursor=True))}" '
            'rel="next" data-load-more>Load older entries</a>'
        )
    if view.cursor:
        links.append(
            f'<a class="button button-quiet" href="{esc(view.first_page().url())}">'
            "Back to the newest entries</a>"
        )
    return (
        '<nav class="pager" aria-label="More entries">'
        f'<p class="shown" aria-live="polite">{status}</p>{"".join(links)}</nav>'
    )


def retention_note(view: PageView, filters: ViewFilters) -> str:
    """Why integration entries stop 30 days back, when the view asks for them further back."""
    start = filters.window.start
    older = start is None or datetime.now(UTC) - start > INTEGRATION_KEPT + timedelta(days=1)
    if "integration" not in view.categories or not older:
        return ""
    return (
        '<p class="note retention-note" role="note">CRM integration logs (HubSpot, Attio) are '
        f"kept {INTEGRATION_KEPT.days} days: older ones have been deleted, so this view shows "
        "none before then.</p>"
    )


def _empty(view: PageView) -> str:
    if not view.pairs():
        return ""
    return (
        '<p class="empty-actions">No entries match. '
        f'<a class="button" href="{BASE_PATH}">Clear filters</a></p>'
    )


def _results(screen: Screen, job_threshold: int) -> str:
    assert screen.page is not None and screen.filters is not None
    page = screen.page
    noun = "entry" if page.total == 1 else "entries"
    plus = "+" if page.total_relation == "gte" else ""
    session = screen.session
    export = export_form(screen.view, session.can_export, page.total, job_threshold,
                         new_export_id(), session.csrf)  # fmt: skip
    empty = _empty(screen.view) if page.total == 0 else ""
    rows = entries_table(page.entries, screen.seals, screen.view)
    return (
        '<section class="results" aria-labelledby="results-title" id="results">'
        '<div class="results-head"><div>'
        f'<h2 id="results-title">{page.total:,}{plus} {noun}</h2>'
        f'<p class="muted">Newest first · {esc(window_text(screen.filters))}</p></div>'
        f"{export}</div>{retention_note(screen.view, screen.filters)}{empty}"
        f'<div class="card table-card">{rows}</div>'
        f"{_pager(screen)}</section>"
    )


def render_screen(screen: Screen, job_threshold: int) -> str:
    account = screen.session.account
    tz = screen.filters.tz if screen.filters else ZoneInfo(account.timezone)
    page = screen.page
    facets = page.facets if page else None
    timed_out = page.facets_timed_out if page else []
    window = window_text(screen.filters) if screen.filters else None
    invalid = FIELD_ALIASES.get(screen.error.field or "") if screen.error else None
    parts = [
        '<a class="skip" href="#results">Skip to the entries</a>',
        top_bar(account, screen.session.person, screen.session.return_url, screen.session.csrf),
        '<main class="container" id="main"><div class="page-head">',
        f"<h1>{PRODUCT}</h1>",
        f'<p class="lead">Everything that happened in {esc(account.name)}: Signal runs, credit '
        "usage, AI Agent runs, webhook deliveries, integrations, API requests and changes by "
        "your team.</p></div>",
    ]
    beside_search = screen.error is not None and screen.typed_q is not None
    if screen.error is not None and not beside_search:
        parts.append(_error(screen.error))
    if screen.note:
        parts.append(alert(screen.note, kind="info"))
    panel = filter_panel(screen.view, facets, timed_out, timezone_label(tz), window, invalid,
                         screen.typed_q)  # fmt: skip
    if beside_search and screen.error is not None:
        kept = "Showing the last search that worked."
        mistake = alert(f"{screen.error.message}. {kept}", title="Search: not applied.")
        mistake = mistake.replace("<div ", '<div id="view-error" ', 1)
        panel = panel.replace("</form>", f"{mistake}</form>", 1)  # under the search box
    parts.append(panel)
    if screen.histogram is not None and screen.filters is not None:
        parts.append(histogram_svg(screen.histogram, window_text(screen.filters), screen.view))
    if page is not None:
        parts.append(_results(screen, job_threshold))
    parts.append(recent_exports(screen.exports, tz))
    parts.append("</main>")
    title = f"{PRODUCT} · {account.name}"
    return document(title, "".join(parts), body_class="page-logs")
