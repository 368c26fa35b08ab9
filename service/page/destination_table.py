"""The Streaming view's list: each destination, its status and why, its health, its actions.

A row shows what ``GET /v1/destinations`` gives (secrets only by name), the lag read live
(:mod:`~service.actions.destination_lag`), and the actions its status allows, each a form
posting to the page with the session's form token: pause (active or failing), resume (paused),
re-enable with a backfill (disabled), and delete, which asks for confirmation first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from service.actions.destination_lag import Lag, instant
from service.page.destination_forms import (
    STREAM_PATH,
    TYPE_LABELS,
    format_label,
    kind_label,
)
from service.page.html import attrs, esc
from service.page.layout import format_local
from service.vocabulary import CATEGORY_LABELS

COLUMNS = ("Name", "Kind", "Address", "Format", "Sends", "Status", "Last success", "Lag",
           "Delivered entries", "Failed attempts", "Last error", "Actions")  # fmt: skip
STATUS_LABELS = {"active": "Active", "failing": "Failing", "paused": "Paused",
                 "disabled": "Disabled"}  # fmt: skip
STATUS_PILLS = {"active": "pill-ok", "failing": "pill-warning", "paused": "pill-error",
                "disabled": "pill-error"}  # fmt: skip


def duration(seconds: float) -> str:
    """``45 s``, ``3 min 20 s``, ``2 h 5 min``, ``3 d 4 h``."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def when(stamp: object, tz: ZoneInfo, now: datetime, missing: str = "Never") -> str:
    """A moment as "3 min ago" and in full in the account's timezone."""
    moment = instant(stamp)
    if moment is None:
        return f'<span class="muted">{esc(missing)}</span>'
    ago = (now - moment).total_seconds()
    relative = "just now" if ago < 1 else f"{duration(ago)} ago"
    full = format_local(moment, tz, seconds=True)
    return (f'<time datetime="{esc(stamp)}" title="{esc(full)}">{esc(relative)}</time>'
            f'<span class="when-full">{esc(full)}</span>')  # fmt: skip


def filter_text(wanted: dict[str, Any]) -> str:
    """What a destination's filter sends, in words (keys the page does not know shown too)."""
    if not wanted:
        return "Every entry"
    parts = []
    for key, value in wanted.items():
        if key == "categories":
            parts.append("Categories: " + ", ".join(CATEGORY_LABELS.get(v, v) for v in value))
        elif key == "types":
            parts.append("Types: " + ", ".join(TYPE_LABELS.get(v, v) for v in value))
        elif key == "q":
            parts.append(f"Search: {value}")
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"{key}: {shown}")
    return "; ".join(parts)


def _status(destination: dict[str, Any], tz: ZoneInfo, now: datetime) -> str:
    status = str(destination.get("status"))
    pill = (f'<span class="pill {STATUS_PILLS.get(status, "pill-notice")}" data-status='
            f'"{esc(status)}">{esc(STATUS_LABELS.get(status, status))}</span>')  # fmt: skip
    reason = destination.get("status_reason")
    repeated = status == "failing" and reason == (destination.get("health") or {}).get("last_error")
    why = f'<p class="status-reason">{esc(reason)}</p>' if reason and not repeated else ""
    since = ""
    if status in ("paused", "disabled") and destination.get("paused_at"):
        since = f'<p class="since">Paused {when(destination["paused_at"], tz, now)}</p>'
    elif status == "failing" and (destination.get("health") or {}).get("failing_since"):
        stamp = destination["health"]["failing_since"]
        since = f'<p class="since">Failing since {when(stamp, tz, now)}</p>'
    return pill + why + since


def _lag(lag: Lag | None, now: datetime) -> str:
    if lag is None:
        return '<span data-lag-entries="">Unknown: the log could not be read</span>'
    if lag.entries == 0:
        return '<span data-lag-entries="0">Caught up</span>'
    noun = "entry" if lag.entries == 1 else "entries"
    text = f'<span data-lag-entries="{lag.entries}">{lag.entries:,} {noun}</span>'
    if lag.waiting_since is not None:
        seconds = max(0, int((now - lag.waiting_since).total_seconds()))
        text += (f'<span class="lag-seconds" data-lag-seconds="{seconds}">oldest waiting '
                 f"{esc(duration(seconds))}</span>")  # fmt: skip
    return text


def _last_error(health: dict[str, Any], tz: ZoneInfo, now: datetime) -> str:
    message = health.get("last_error")
    if not message:
        return '<span class="muted">None</span>'
    at = when(health.get("last_error_at"), tz, now, missing="")
    return f'<p class="last-error">{esc(message)}</p>{at}'


def _button(destination: dict[str, Any], action: str, label: str, csrf: str) -> str:
    target = f"{STREAM_PATH}/{esc(destination['id'])}/{action}"
    return (f'<form method="post" action="{target}" class="row-action">'
            f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
            f'<button type="submit" class="button">{esc(label)}<span class="visually-hidden"> '
            f"{esc(destination.get('name', ''))}</span></button></form>")  # fmt: skip


def _reenable(destination: dict[str, Any], csrf: str) -> str:
    """A disabled destination back: from where it stopped, from now, or a backfill."""
    ident, position = esc(destination["id"]), int(destination.get("position") or 0)
    choices = (("stopped", f"From where it stopped (position {position:,})"),
               ("now", "From now"), ("position", "From position"))  # fmt: skip
    radios = []
    for value, text in choices:
        box = attrs({"id": f"from-{ident}-{value}", "type": "radio", "name": "from",
                     "value": value, "checked": value == "stopped"})  # fmt: skip
        radios.append(f'<div class="field-check"><input{box}><label for="from-{ident}-{value}">'
                      f"{esc(text)}</label></div>")  # fmt: skip
    return (
        f'<form method="post" action="{STREAM_PATH}/{ident}/resume" class="row-action reenable">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}"><fieldset><legend>Re-enable'
        f'</legend>{"".join(radios)}<label class="visually-hidden" for="position-{ident}">Backfill '
        f'position</label><input id="position-{ident}" name="position" type="text" '
        f'inputmode="numeric" placeholder="position"></fieldset>'
        f'<button type="submit" class="button">Re-enable<span class="visually-hidden"> '
        f"{esc(destination.get('name', ''))}</span></button></form>"
    )


def _actions(destination: dict[str, Any], csrf: str) -> str:
    status = destination.get("status")
    actions = []
    if status in ("active", "failing"):
        actions.append(_button(destination, "pause", "Pause", csrf))
    if status == "paused":
        actions.append(_button(destination, "resume", "Resume", csrf))
    if status == "disabled":
        actions.append(_reenable(destination, csrf))
    actions.append(
        f'<a class="button button-quiet" href="{STREAM_PATH}/{esc(destination["id"])}/delete">'
        f'Delete…<span class="visually-hidden"> {esc(destination.get("name", ""))}</span></a>'
    )
    return f'<div class="row-actions">{"".join(actions)}</div>'


def _row(
    destination: dict[str, Any], lag: Lag | None, tz: ZoneInfo, now: datetime, csrf: str
) -> str:
    health = destination.get("health") or {}
    secrets = destination.get("secrets_set") or []
    secrets_text = f"Secrets set: {', '.join(secrets)}" if secrets else "No secrets set"
    cells = [
        esc(kind_label(str(destination.get("kind")))),
        f'<code class="address">{esc(destination.get("url", ""))}</code>',
        esc(format_label(str(destination.get("format", "entry")))),
        esc(filter_text(destination.get("filter") or {})),
        _status(destination, tz, now),
        when(health.get("last_success_at"), tz, now),
        _lag(lag, now),
        f'<span data-delivered="{int(health.get("delivered") or 0)}">'
        f"{int(health.get('delivered') or 0):,}</span>",
        f'<span data-failed="{int(health.get("failed") or 0)}">'
        f"{int(health.get('failed') or 0):,}</span>",
        _last_error(health, tz, now),
        _actions(destination, csrf),
    ]
    name = (f'<th scope="row"><span class="destination-name">{esc(destination.get("name", ""))}'
            f'</span><span class="secrets-set">{esc(secrets_text)}</span></th>')  # fmt: skip
    columns = zip(COLUMNS[1:], cells, strict=True)
    row = "".join(f'<td data-column="{esc(c.lower())}">{v}</td>' for c, v in columns)
    return f'<tr data-destination="{esc(destination["id"])}">{name}{row}</tr>'


def destinations_table(
    found: list[dict[str, Any]], lags: dict[str, Lag], tz: ZoneInfo, *, now: datetime, csrf: str
) -> str:
    """The account's destinations as a table (a sentence when there are none)."""
    if not found:
        return '<p class="empty-destinations">No destinations yet.</p>'
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in COLUMNS)
    rows = "".join(_row(d, lags.get(str(d["id"])), tz, now, csrf) for d in found)
    return (f'<div class="card table-wrap"><table class="destinations"><thead><tr>{head}</tr>'
            f"</thead><tbody>{rows}</tbody></table></div>")  # fmt: skip
