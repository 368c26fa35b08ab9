"""The controls of the view: search bar, date range, source/type chips, actor filter, export form.

Filters are plain links and a GET form, so the URL always holds the whole view (bookmarkable,
shareable, usable without script). Facet chips show the multi-select counts of
:func:`~service.search.entries.search_entries`: each facet counted with every filter but its own.
"""

from __future__ import annotations

from typing import Any

from service.page.html import BASE_PATH, attrs, esc
from service.page.view import PAGE_PRESETS, PageView
from service.vocabulary import CATEGORIES, CATEGORY_LABELS, TYPES

SYNTAX_HELP = (
    (
        "Competitor mentions",
        "words anywhere in an entry: message, action, actor, Signal name, contact, URL…",
    ),
    ('"post by Mateo Garcia"', "an exact phrase"),
    ("category:webhook", "a source: audit, credits, ai, webhook, signal, integration, api"),
    ("type:warning,error", "a type; commas mean “or”"),
    ("actor:u_42", "who did it (the actor's id)"),
    ("action:webhook.*", "an action; * at the end matches a prefix"),
    ("provider:hubspot", "the CRM of an integration entry: hubspot, attio"),
    ("status:failed", "the status of an integration or AI Agent run"),
    ("after:2026-11-01 before:2026-11-08", "dates in the account timezone (before: excluded)"),
    ("-type:notice  -timeout", "a minus sign excludes"),
)
TYPE_LABELS = {"notice": "Notice", "warning": "Warning", "error": "Error"}
FORMATS = (("csv", "CSV"), ("xlsx", "Excel (XLSX)"))


def hidden_fields(view: PageView, skip: tuple[str, ...] = ()) -> str:
    """The view as hidden inputs (for forms that must carry it)."""
    return "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
        for k, v in view.pairs()
        if k not in skip
    )


def _count(buckets: list[dict[str, Any]], value: str) -> int:
    return next((int(b["count"]) for b in buckets if b["value"] == value), 0)


def _chip(href: str, label_html: str, count: int | None, selected: bool, extra: str = "") -> str:
    count_html = f' <span class="count">{count:,}</span>' if count is not None else ""
    hidden = '<span class="visually-hidden"> (selected)</span>' if selected else ""
    klass = f"chip{' is-selected' if selected else ''}{extra}"
    current = "true" if selected else None
    return (
        f"<li><a{attrs({'class': klass, 'href': href, 'aria-current': current})}>"
        f"{label_html}{count_html}{hidden}</a></li>"
    )


def facet_chips(
    facet: str,
    title: str,
    values: tuple[str, ...],
    labels: dict[str, str],
    buckets: list[dict[str, Any]] | None,
    view: PageView,
    timed_out: bool,
) -> str:
    """A row of chips: "All" and one per value, each with its count; click to toggle.

    ``buckets`` None (the view could not be read) shows the chips without counts.
    """
    selected = view.selected(facet)
    known = buckets if buckets is not None and not timed_out else None
    total = None if known is None else sum(int(b["count"]) for b in known)
    chips = [_chip(view.cleared(facet).url(), "All", total, not selected)]
    for value in values:
        dot = (
            f'<span class="dot cat-{value}" aria-hidden="true"></span>'
            if facet == "category"
            else ""
        )
        count = None if known is None else _count(known, value)
        extra = f" chip-{value}" if facet == "type" else ""
        label = f"{dot}{esc(labels[value])}"
        chips.append(
            _chip(view.toggled(facet, value).url(), label, count, value in selected, extra)
        )
    note = ' <span class="muted">(counts timed out)</span>' if timed_out else ""
    return (
        f'<div class="facet facet-{facet}"><span class="facet-title" id="facet-{facet}">'
        f"{esc(title)}{note}</span>"
        f'<ul class="chips" aria-labelledby="facet-{facet}">{"".join(chips)}</ul></div>'
    )


Facets = dict[str, list[dict[str, Any]]]


def source_and_type(view: PageView, facets: Facets | None, timed_out: list[str]) -> str:
    def buckets(name: str) -> list[dict[str, Any]] | None:
        return None if facets is None else facets.get(name, [])

    return facet_chips(
        "category",
        "Source",
        CATEGORIES,
        CATEGORY_LABELS,
        buckets("category"),
        view,
        "category" in timed_out,
    ) + facet_chips("type", "Type", TYPES, TYPE_LABELS, buckets("type"), view, "type" in timed_out)


def _actor_select(view: PageView, facets: Facets | None) -> str:
    chosen = view.actors[0] if view.actors else ""
    options = [f'<option value=""{" selected" if not chosen else ""}>Everyone</option>']
    if facets is None:
        buckets = [{"value": actor, "label": actor} for actor in view.actors]
    else:
        buckets = facets.get("actor", [])
    for b in buckets:
        count = f" ({int(b['count']):,})" if "count" in b else ""
        label = f"{b.get('label') or b['value']}{count}"
        selected = " selected" if b["value"] == chosen else ""
        options.append(f'<option value="{esc(b["value"])}"{selected}>{esc(label)}</option>')
    return (
        '<div class="field field-actor"><label for="actor">Actor</label>'
        f'<select id="actor" name="actor">{"".join(options)}</select></div>'
    )


def _range_links(view: PageView) -> str:
    links = []
    for preset, label in PAGE_PRESETS.items():
        selected = not view.custom and view.range == preset
        links.append(_chip(view.with_range(preset).url(), esc(label), None, selected))
    if view.custom:
        links.append(_chip(view.first_page().url(), "Custom range", None, True))
    return (
        '<div class="facet facet-range"><span class="facet-title" id="facet-range">Date range'
        f'</span><ul class="chips" aria-labelledby="facet-range">{"".join(links)}</ul></div>'
    )


def _syntax_help() -> str:
    rows = "".join(
        f"<div><dt><code>{esc(example)}</code></dt><dd>{esc(meaning)}</dd></div>"
        for example, meaning in SYNTAX_HELP
    )
    return (
        '<details class="syntax"><summary>Search syntax</summary>'
        f'<dl class="syntax-list">{rows}</dl></details>'
    )


def filter_panel(
    view: PageView,
    facets: Facets | None,
    timed_out: list[str],
    tz_label: str,
    window_text: str | None,
    invalid: str | None = None,
) -> str:
    """The filter card: search form (with actor and custom dates), range, source and type.

    ``facets`` None: the view could not be read (no counts); ``invalid``: the field at fault.
    """
    hidden = hidden_fields(view, skip=("q", "actor", "start", "end"))
    bad = {
        name: ' aria-invalid="true" aria-errormessage="view-error"' if name == invalid else ""
        for name in ("q", "start", "end")
    }
    search = (
        '<div class="field field-search"><label for="q">Search</label>'
        f'<input id="q" name="q" type="search" value="{esc(view.q)}"{bad["q"]} '
        "placeholder='e.g. \"Competitor mentions\" type:error -actor:u_42' "
        'autocomplete="off" spellcheck="false" aria-describedby="q-help"></div>'
    )
    dates = (
        '<fieldset class="field-dates"><legend>Custom range</legend>'
        '<div class="date-pair">'
        f'<div class="field"><label for="start">From</label><input id="start" name="start" '
        f'type="date" value="{esc(view.start)}"{bad["start"]}></div>'
        f'<div class="field"><label for="end">to</label><input id="end" name="end" type="date" '
        f'value="{esc(view.end)}"{bad["end"]}></div></div></fieldset>'
    )
    showing = f" Showing {esc(window_text)}." if window_text else ""
    return (
        f'<section class="card filters" aria-label="Filters">'
        f'<form method="get" action="{BASE_PATH}" class="filter-form" role="search">{hidden}'
        f'<div class="filter-row">{search}{_actor_select(view, facets)}'
        f"{dates}"
        '<div class="field field-submit"><button type="submit" class="button button-primary">'
        "Apply</button></div></div>"
        f'<div id="q-help" class="help help-row">{_syntax_help()}'
        f'<span class="tz-note">Dates and times are in {esc(tz_label)}.{showing}</span>'
        "</div></form>"
        f'<div class="facets">{_range_links(view)}{source_and_type(view, facets, timed_out)}'
        f'<p class="clear"><a href="{BASE_PATH}">Clear all filters</a></p></div></section>'
    )


def export_form(
    view: PageView, can_export: bool, total: int, job_threshold: int, export_id: str,
    csrf: str | None = None,
) -> str:  # fmt: skip
    """Export Logs: the current view as CSV or XLSX, directly or as a job with progress, with
    the id the export will have (its manifest's address; the page's script renews it after each
    export)."""
    if not can_export:
        return (
            '<div class="export export-disabled"><button type="button" class="button" disabled '
            'aria-describedby="export-note">Export logs</button>'
            '<span id="export-note" class="help">Your key lacks the export scope.</span></div>'
        )
    options = "".join(f'<option value="{v}">{esc(label)}</option>' for v, label in FORMATS)
    token = f'<input type="hidden" name="csrf" value="{esc(csrf)}">' if csrf else ""
    big = total > job_threshold
    job_note = (
        f'<span class="help">More than {job_threshold:,} entries: the export runs as a job.</span>'
        if big
        else ""
    )
    return (
        f'<form method="post" action="{BASE_PATH}/export" class="export" '
        f'aria-label="Export logs">{hidden_fields(view)}'
        '<div class="field"><label for="export-format">Format</label>'
        f'<select id="export-format" name="format">{options}</select></div>'
        '<div class="field field-check"><input type="checkbox" id="export-job" name="as_job" '
        f'value="1"{" checked disabled" if big else ""}>'
        '<label for="export-job">As a background job</label></div>'
        '<button type="submit" class="button button-primary" id="export-button">'
        f"Export logs</button>{job_note}"
        f'<input type="hidden" name="export_id" value="{export_id}">{token}'
        f'<p class="help export-manifest">Every export is signed: once the file is downloaded, '
        f'get <a id="export-manifest" data-base="{BASE_PATH}/exports/" '
        f'href="{BASE_PATH}/exports/{export_id}/manifest">its manifest</a> to check it with '
        "<code>auditlog verify-export</code>.</p></form>"
    )
