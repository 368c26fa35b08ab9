"""An export's filters and time window in words, for people: the ``Export info`` sheet and the
export's own audit entry.

``Source: Webhook, Integration; Type: Error; Search: "timeout"`` rather than the filters' JSON,
and ``Nov 1, 2026 00:00 to Nov 8, 2026 00:00 (America/New_York)`` — the window in the export's
timezone (the account's unless the request named another) — rather than UTC instants. The
machine-readable forms stay where programs read them (the manifest, the audit entry's metadata).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from service.search.filters import TimeWindow, ViewFilters
from service.vocabulary import CATEGORY_LABELS

TYPE_WORDS = {"notice": "Notice", "warning": "Warning", "error": "Error"}
PROVIDER_WORDS = {"hubspot": "HubSpot", "attio": "Attio"}
NO_FILTERS = "none"


def local_moment(moment: datetime, tz: ZoneInfo) -> str:
    """``Nov 26, 2026 14:05`` in ``tz`` (``14:05:07`` when the instant has seconds)."""
    local = moment.astimezone(tz)
    clock = local.strftime("%H:%M:%S" if local.second or local.microsecond else "%H:%M")
    return f"{local.strftime('%b')} {local.day}, {local.year} {clock}"


def window_in_words(window: TimeWindow, tz: ZoneInfo) -> str:
    """``Nov 1, 2026 00:00 to Nov 8, 2026 00:00 (Europe/Paris)``; the end is exclusive."""
    start = local_moment(window.start, tz) if window.start else "the first entry"
    return f"{start} to {local_moment(window.end, tz)} ({tz.key})"


def filters_in_words(filters: ViewFilters) -> str:
    """``Source: Webhook, Integration; Type: Error; Search: "timeout"``; :data:`NO_FILTERS`
    when the view is not filtered (the window aside)."""
    parts = [
        _part("Source", [CATEGORY_LABELS.get(c, c) for c in filters.categories]),
        _part("Type", [TYPE_WORDS.get(t, t) for t in filters.types]),
        _part("Provider", [PROVIDER_WORDS.get(p, p) for p in filters.providers]),
        _part("Actor", list(filters.actors)),
        _part("Action", list(filters.actions)),
        _part("Search", [_quoted(q) for k, q in filters.raw if k == "q" and q.strip()]),
    ]
    return "; ".join(p for p in parts if p) or NO_FILTERS


def _quoted(text: str) -> str:
    """``timeout`` → ``"timeout"``; a text with its own quotes (phrases) is shown as it is."""
    return text if '"' in text else f'"{text}"'


def _part(name: str, values: list[str]) -> str:
    return f"{name}: {', '.join(values)}" if values else ""


def shortened(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
