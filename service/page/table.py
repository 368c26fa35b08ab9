"""The entries table: one row per entry, expandable to every field and metadata key.

Times are the entries' ``local_time`` (the view's timezone, from :func:`search_entries`); the
``Details`` cell is a ``<details>`` whose summary is the message (the search's words marked)
and whose body lists the entry's id, both timestamps, the actor and all metadata (known and
unknown keys) with readable labels: numbers grouped as in messages, web addresses as links
(``http``/``https`` only), identifiers with a copy button, and "filter" links that narrow the
view to the actor, the action or an identifier; "Link to this entry" opens it alone. Rows carry
``data-id`` so a reader (or a test) can compare them with an export.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from service.errors import ServiceError
from service.page.html import attrs, esc
from service.page.view import PageView
from service.search.search_text import parse_search_text
from service.vocabulary import CATEGORY_LABELS

TYPE_LABELS = {"notice": "Notice", "warning": "Warning", "error": "Error"}
ACTOR_TYPE_LABELS = {"user": "Team member", "system": "System", "api_key": "API key"}
KEY_LABELS = {
    "signal_name": "Signal name",
    "post_urn": "Post URN",
    "credits_used": "Credits used",
    "credits_balance": "Credits balance",
    "status_code": "Status code",
    "duration_ms": "Duration (ms)",
    "tokens_in": "Tokens in",
    "tokens_out": "Tokens out",
    "ip": "IP address",
    "url": "URL",
    "api_key_id": "API key ID",
}
_WORDS = {
    "id": "ID",
    "url": "URL",
    "urn": "URN",
    "ip": "IP",
    "api": "API",
    "ai": "AI",
    "ms": "(ms)",
}
COLUMNS = ("Time", "Source", "Type", "Actor", "Action", "Details")


def key_label(key: str) -> str:
    """A readable label for a metadata key: ``signal_name`` → ``Signal name``."""
    if key in KEY_LABELS:
        return KEY_LABELS[key]
    words = [_WORDS.get(w, w) for w in key.replace("-", "_").split("_") if w]
    if not words:
        return key
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


def _id_like(key: str) -> bool:
    """A metadata key naming an identifier (``webhook_id``, ``run_id``, ``post_urn``)."""
    last = key.lower().replace("-", "_").rsplit("_", 1)[-1]
    return last in ("id", "urn", "ids") or key.lower() == "id"


def _number(value: int | float, key: str) -> str:
    """Quantities grouped as messages write them (``12,480``); codes and ids left alone."""
    plain = _id_like(key) or key.lower().endswith(("code", "port", "year"))
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if not plain else str(value)
    return str(value) if plain else f"{value:,}"


def _link(text: str) -> str | None:
    """``text`` as a link when it is an ``http``/``https`` address (nothing else is linked)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        return None
    return (
        f'<a href="{esc(text)}" rel="noopener noreferrer nofollow" target="_blank">{esc(text)}</a>'
    )


def _copy(value: str) -> str:
    """A copy button (shown by the page's script: without it, there is nothing to press)."""
    return (
        f'<button type="button" class="copy" data-copy="{esc(value)}" '
        f'aria-label="Copy {esc(value)}">Copy</button>'
    )


def _narrow(href: str, what: str) -> str:
    title = f"Show only entries with this {what}"
    return f' <a class="narrow" href="{esc(href)}" title="{title}">Filter</a>'


def _search_for(view: PageView, term: str) -> str:
    """The first page of ``view`` with ``term`` added to its search."""
    q = f"{view.q} {term}".strip()
    return replace(view, q=q, cursor="").url()


def _word(value: str) -> str:
    return value if value and not any(c.isspace() or c in '"' for c in value) else ""


def _value(key: str, value: Any, view: PageView | None) -> str:
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        return f"<code>{esc(text)}</code>"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return '<span class="muted">—</span>'
    if isinstance(value, int | float):
        return esc(_number(value, key))
    text = str(value)
    if (link := _link(text)) is not None:
        return link
    if _id_like(key) and _word(text):
        narrow = _narrow(_search_for(view, f'"{text}"'), "value") if view is not None else ""
        return f"<code>{esc(text)}</code>{_copy(text)}{narrow}"
    return esc(text)


def _pair(label: str, value_html: str) -> str:
    return f"<div><dt>{esc(label)}</dt><dd>{value_html}</dd></div>"


def _seal(sealed_by: int | None) -> str:
    if sealed_by is None:
        return '<span class="muted seal seal-pending">Sealing…</span>'
    return f'<span class="seal seal-done">Sealed at checkpoint {sealed_by:,}</span>'


def entry_fields(
    entry: dict[str, Any], sealed_by: int | None = None, view: PageView | None = None
) -> str:
    """The expanded part of a row: every field of the entry, and the checkpoint that sealed it
    (``None``: not yet); with ``view``, links that narrow it to a value of the entry."""
    actor = entry.get("actor") or {}
    entry_id, actor_id, action = (str(entry.get("id", "")), str(actor.get("id", "")),
                                  str(entry.get("action", "")))  # fmt: skip
    by_actor = by_action = ""
    if view is not None:
        if actor_id and actor_id not in view.actors:
            by_actor = _narrow(view.with_values("actor", (*view.actors, actor_id)).url(), "actor")
        if _word(action):
            by_action = _narrow(_search_for(view, f"action:{action}"), "action")
    pairs = [
        _pair("Entry ID", f"<code>{esc(entry_id)}</code>{_copy(entry_id)}"),
        _pair("Time", esc(_long_time(entry.get("local_time", "")))),
        _pair("Time (UTC)", esc(entry.get("timestamp", ""))),
        _pair("Actor", esc(actor.get("name") or actor_id) + by_actor),
        _pair("Actor type", esc(ACTOR_TYPE_LABELS.get(actor.get("type", ""), actor.get("type")))),
        _pair("Actor ID", f"<code>{esc(actor_id)}</code>{_copy(actor_id)}"),
    ]
    if actor.get("email"):
        pairs.append(_pair("Actor email", esc(actor["email"])))
    pairs.append(_pair("Action", f"<code>{esc(action)}</code>{by_action}"))
    metadata = entry.get("metadata") or {}
    pairs += [_pair(key_label(str(k)), _value(str(k), v, view)) for k, v in metadata.items()]
    pairs.append(_pair("Integrity", _seal(sealed_by)))
    single = ""
    if _word(entry_id):
        only = PageView(q=f"id:{entry_id}", range="all").url()
        single = f'<p class="entry-link"><a href="{esc(only)}">Link to this entry</a></p>'
    return f'<dl class="fields">{"".join(pairs)}</dl>{single}'


def marked(text: str, view: PageView | None) -> str:
    """``text`` escaped, the words and phrases of the view's search marked (as the engine
    matches them: whole words, any case)."""
    terms: list[str] = []
    if view is not None and view.q.strip():
        try:
            parsed = parse_search_text(view.q)
        except ServiceError:
            parsed = None
        if parsed is not None:
            terms = [t for t in (*parsed.phrases, *parsed.words) if t.strip()]
    if not terms:
        return esc(text)
    pattern = re.compile(
        "|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in sorted(terms, key=len, reverse=True)),
        re.IGNORECASE,
    )
    out, at = [], 0
    for match in pattern.finditer(text):
        out += [esc(text[at : match.start()]), f"<mark>{esc(match.group(0))}</mark>"]
        at = match.end()
    out.append(esc(text[at:]))
    return "".join(out)


def _long_time(local_time: str) -> str:
    """``Nov 25, 2026 20:17:40.005 (UTC+01:00)`` from an ISO 8601 time with offset."""
    if not local_time:
        return ""
    local = datetime.fromisoformat(local_time)
    clock = f"{local.strftime('%H:%M:%S')}.{local.microsecond // 1000:03d}"
    offset = local.strftime("%z")
    return (
        f"{local.strftime('%b')} {local.day}, {local.year} {clock} (UTC{offset[:3]}:{offset[3:]})"
    )


def _time_cell(entry: dict[str, Any]) -> str:
    local = datetime.fromisoformat(entry["local_time"])
    day = f"{local.strftime('%b')} {local.day}, {local.year}"
    return (
        f'<time datetime="{esc(entry["local_time"])}" title="{esc(entry["timestamp"])} UTC">'
        f'<span class="date">{esc(day)}</span> '
        f'<span class="clock">{local.strftime("%H:%M:%S")}</span></time>'
    )


def _actor_cell(actor: dict[str, Any]) -> str:
    name = actor.get("name") or actor.get("id", "")
    sub = actor.get("email") or ACTOR_TYPE_LABELS.get(actor.get("type", ""), "")
    return f'<span class="actor-name">{esc(name)}</span><span class="actor-sub">{esc(sub)}</span>'


def _breakable(dotted: str) -> str:
    """An action name that may wrap after its dots rather than inside a word."""
    return ".<wbr>".join(esc(part) for part in dotted.split("."))


def source_badge(category: str) -> str:
    label = CATEGORY_LABELS.get(category, category)
    return (
        f'<span class="source"><span class="dot cat-{esc(category)}" aria-hidden="true"></span>'
        f"{esc(label)}</span>"
    )


def entry_row(
    entry: dict[str, Any], sealed_by: int | None = None, view: PageView | None = None
) -> str:
    kind = str(entry.get("type", ""))
    message = marked(str(entry.get("message") or "—"), view)
    cells = [
        _time_cell(entry),
        source_badge(str(entry.get("category", ""))),
        f'<span class="pill pill-{esc(kind)}">{esc(TYPE_LABELS.get(kind, kind))}</span>',
        _actor_cell(entry.get("actor") or {}),
        f'<code class="action">{_breakable(str(entry.get("action", "")))}</code>',
        f'<details><summary><span class="message">{message}</span>'
        f"</summary>{entry_fields(entry, sealed_by, view)}</details>",
    ]
    tds = "".join(
        f'<td class="col-{name.lower()}" data-label="{name}">{cell}</td>'
        for name, cell in zip(COLUMNS, cells, strict=True)
    )
    row = {
        "class": f"entry entry-{kind}",
        "data-id": entry.get("id"),
        "data-category": entry.get("category"),
    }
    return f"<tr{attrs(row)}>{tds}</tr>"


def entries_table(
    entries: list[dict[str, Any]], seals: dict[str, int] | None = None,
    view: PageView | None = None,
) -> str:  # fmt: skip
    """The rows of ``entries``; ``seals``: entry id → the checkpoint that sealed it; ``view``:
    the view they belong to (for its search's marks and the filter links)."""
    head = "".join(f'<th scope="col" class="col-{c.lower()}">{c}</th>' for c in COLUMNS)
    seals = seals or {}
    if entries:
        rows = "".join(entry_row(e, seals.get(str(e.get("id"))), view) for e in entries)
    else:
        rows = (
            f'<tr class="empty"><td colspan="{len(COLUMNS)}"><strong>No entries match this '
            "view.</strong> Widen the date range, clear a filter or change the search.</td></tr>"
        )
    return (
        '<div class="table-wrap"><table class="entries" id="entries">'
        '<caption class="visually-hidden">Audit log entries, newest first</caption>'
        f'<thead><tr>{head}</tr></thead><tbody id="entry-rows">{rows}</tbody></table></div>'
    )
