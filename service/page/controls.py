"""The controls of the view: search bar, date range, source/type chips, actor filter, export form.

Filters are plain links and a GET form, so the URL always holds the whole view (bookmarkable,
shareable, usable without script). Facet chips show the multi-select counts of
:func:`~service.search.entries.search_entries`: each facet counted with every filter but its own.
"""

from __future__ import annotations

from typing import Any

from service.page.html import BASE_PATH, attrs, esc
from service.page.view import PAGE_PRESETS, PageView
from service.search.filters import DEFAULT_RANGE
from service.vocabulary import CATEGORIES, CATEGORY_LABELS, TYPES

SYNTAX_HELP = (
    (
        "Competitor mentions",
        "words anywhere in an entry: message, action, actor, Signal name, contact, URL…",
    ),
    ("wh_8f3a1b2c  203.0.113.7", "an id or IP address shown in an entry, whole (any case)"),
    ('"post by Mateo Garcia"', "an exact phrase"),
    ("category:webhook", "a source: audit, credits, ai, webhook, signal, integration, api"),
    ("type:warning,error", "a type; commas mean “or”"),
    ('actor:"Jane Doe"', "who did it: the actor's name, email or id"),
    ("id:evt_123,evt_124", "entries by their id; commas mean “or”"),
    ("action:webhook.*", "an action; * at the end matches a prefix"),
    ("provider:hubspot", "the CRM of an integration entry: hubspot, attio"),
    ("status:failed", "the status of an integration or AI Agent run"),
    ("after:2026-11-01 before:2026-11-08", "dates in the account timezone (before: excluded)"),
    ("-type:notice  -timeout", "a minus sign excludes"),
)
TYPE_LABELS = {"notice": "Notice", "warning": "Warning", "error": "Error"}
FORMATS = (("csv", "CSV"), ("xlsx", "Excel (XLSX)"), ("ndjson", "NDJSON (one JSON entry a line)"))


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


def _actor_picker(view: PageView, facets: Facets | None) -> str:
    """Actors by name, any number of them: checkboxes in a disclosure (plain form fields, so
    Apply sends them without script). The actors of the view come first; a selected actor with
    no entries in the view keeps its name and reads "none here"."""
    chosen = set(view.actors)
    if facets is None:
        buckets = [{"value": actor, "label": actor} for actor in view.actors]
    else:
        buckets = facets.get("actor", [])
    items, names = [], {}
    for b in sorted(buckets, key=lambda b: b["value"] not in chosen):
        name = str(b.get("label") or b["value"])
        names[b["value"]] = name
        count = int(b.get("count", 0))
        note = f"{count:,}" if count else "none here"
        checked = " checked" if b["value"] in chosen else ""
        items.append(
            f'<li><label><input type="checkbox" name="actor" value="{esc(b["value"])}"{checked}>'
            f' <span class="actor-name">{esc(name)}</span>'
            f' <span class="count">{note}</span></label></li>'
        )
    picked = [names.get(actor, actor) for actor in view.actors]
    summary = "Everyone" if not picked else picked[0]
    if len(picked) > 1:
        summary += f" +{len(picked) - 1}"
    listing = "".join(items) or '<li class="muted">No actors in this view</li>'
    return (
        '<div class="field field-actor"><span class="field-label" id="actor-label">Actor</span>'
        '<details class="picker"><summary id="actor" aria-describedby="actor-label">'
        f'<span class="picker-value">{esc(summary)}</span></summary>'
        '<fieldset class="picker-list"><legend class="visually-hidden">Actors</legend>'
        f"<ul>{listing}</ul></fieldset></details></div>"
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
    typed: str | None = None,
) -> str:
    """The filter card: search form (with actor and custom dates), range, source and type.

    ``facets`` None: the view could not be read (no counts); ``invalid``: the field at fault;
    ``typed``: search text with a mistake, shown in the box over the view's own (the last good
    search, shown again after a mistake).
    """
    hidden = hidden_fields(view, skip=("q", "actor", "start", "end"))
    bad = {
        name: ' aria-invalid="true" aria-errormessage="view-error"' if name == invalid else ""
        for name in ("q", "start", "end")
    }
    search = (
        '<div class="field field-search"><label for="q">Search</label>'
        f'<input id="q" name="q" type="search" value="{esc(view.q if typed is None else typed)}"'
        f"{bad['q']} "
        'placeholder=\'e.g. "Competitor mentions" type:error -actor:"Jane Doe"\' '
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
        f'<section class="card filters" aria-label="Filters">{_filters_toggle(view, invalid)}'
        f'<div id="filter-body" class="filter-body{" is-open" if invalid else ""}">'
        f'<form method="get" action="{BASE_PATH}" class="filter-form" role="search">{hidden}'
        f'<div class="filter-row">{search}{_actor_picker(view, facets)}'
        f"{dates}"
        '<div class="field field-submit"><button type="submit" class="button button-primary">'
        "Apply</button></div></div>"
        f'<div id="q-help" class="help help-row">{_syntax_help()}'
        f'<span class="tz-note">Dates and times are in {esc(tz_label)}.{showing}</span>'
        "</div></form>"
        f'<div class="facets">{_range_links(view)}{source_and_type(view, facets, timed_out)}'
        f'<p class="clear"><a href="{BASE_PATH}">Clear all filters</a></p></div></div></section>'
    )


def _filters_toggle(view: PageView, invalid: str | None) -> str:
    """On a phone, the filters fold behind one button saying how many are set (the page's
    script folds them; without it they stay open)."""
    active = len([k for k, _ in view.pairs() if k != "range"]) + (view.range != DEFAULT_RANGE)
    count = f' <span class="active-count">· {active} set</span>' if active else ""
    expanded = "true" if invalid else "false"
    return (
        f'<button type="button" class="button filters-toggle" aria-expanded="{expanded}" '
        f'aria-controls="filter-body">Filters{count}</button>'
    )


def export_form(
    view: PageView, can_export: bool, total: int, job_threshold: int, export_id: str,
    csrf: str | None = None,
) -> str:  # fmt: skip
    """Export Logs: the current view as CSV or XLSX, directly or as a job with progress, with
    the id the export will have (its manifest's address; the page's script renews it after each
    export)."""
    if not can_export or total == 0:
        why = "Your key lacks the export scope." if not can_export else "Nothing to export."
        return (
            '<div class="export export-disabled"><button type="button" class="button" disabled '
            'aria-describedby="export-note">Export logs</button>'
            f'<span id="export-note" class="help">{why}</span></div>'
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
