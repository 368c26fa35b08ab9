"""The entries table: one row per entry, expandable to every field and metadata key.

Times are the entries' ``local_time`` (the view's timezone, from :func:`search_entries`); the
``Details`` cell is a ``<details>`` whose summary is the message and whose body lists the
entry's id, both timestamps, the actor and all metadata (known and unknown keys) with readable
labels. Rows carry ``data-id`` so a reader (or a test) can compare them with an export.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from service.page.html import attrs, esc
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


def _value(value: Any) -> str:
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        return f"<code>{esc(text)}</code>"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return '<span class="muted">—</span>'
    return esc(value)


def _pair(label: str, value_html: str) -> str:
    return f"<div><dt>{esc(label)}</dt><dd>{value_html}</dd></div>"


def _seal(sealed_by: int | None) -> str:
    if sealed_by is None:
        return '<span class="muted seal seal-pending">Sealing…</span>'
    return f'<span class="seal seal-done">Sealed at checkpoint {sealed_by:,}</span>'


def entry_fields(entry: dict[str, Any], sealed_by: int | None = None) -> str:
    """The expanded part of a row: every field of the entry, and the checkpoint that sealed it
    (``None``: not yet)."""
    actor = entry.get("actor") or {}
    pairs = [
        _pair("Entry ID", f"<code>{esc(entry.get('id', ''))}</code>"),
        _pair("Time", esc(_long_time(entry.get("local_time", "")))),
        _pair("Time (UTC)", esc(entry.get("timestamp", ""))),
        _pair("Actor", esc(actor.get("name") or actor.get("id", ""))),
        _pair("Actor type", esc(ACTOR_TYPE_LABELS.get(actor.get("type", ""), actor.get("type")))),
        _pair("Actor ID", f"<code>{esc(actor.get('id', ''))}</code>"),
    ]
    if actor.get("email"):
        pairs.append(_pair("Actor email", esc(actor["email"])))
    pairs.append(_pair("Action", f"<code>{esc(entry.get('action', ''))}</code>"))
    metadata = entry.get("metadata") or {}
    pairs += [_pair(key_label(str(k)), _value(v)) for k, v in metadata.items()]
    pairs.append(_pair("Integrity", _seal(sealed_by)))
    return f'<dl class="fields">{"".join(pairs)}</dl>'


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


def entry_row(entry: dict[str, Any], sealed_by: int | None = None) -> str:
    kind = str(entry.get("type", ""))
    cells = [
        _time_cell(entry),
        source_badge(str(entry.get("category", ""))),
        f'<span class="pill pill-{esc(kind)}">{esc(TYPE_LABELS.get(kind, kind))}</span>',
        _actor_cell(entry.get("actor") or {}),
        f'<code class="action">{_breakable(str(entry.get("action", "")))}</code>',
        f'<details><summary><span class="message">{esc(entry.get("message") or "—")}</span>'
        f"</summary>{entry_fields(entry, sealed_by)}</details>",
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


def entries_table(entries: list[dict[str, Any]], seals: dict[str, int] | None = None) -> str:
    """The rows of ``entries``; ``seals``: entry id → the checkpoint that sealed it."""
    head = "".join(f'<th scope="col" class="col-{c.lower()}">{c}</th>' for c in COLUMNS)
    seals = seals or {}
    if entries:
        rows = "".join(entry_row(e, seals.get(str(e.get("id")))) for e in entries)
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
