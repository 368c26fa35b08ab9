"""The filtered view shared by the page, ``/v1/entries``, ``/v1/histogram`` and exports.

Query parameters become a :class:`ViewFilters`: the account (always), facet selections, actions,
a time window resolved to absolute UTC instants in the timezone in effect (``tz``, else the
account's; DST-correct wall-clock arithmetic for presets; ``from`` inclusive, ``to`` exclusive;
a date alone is local midnight), and the parsed search text. Every bad parameter is a 400 naming it.

The ``actor`` parameter selects actor ids only: it is the actor facet, whose buckets, counts and
``selected`` flags are by id. Names and emails are for ``actor:`` in ``q``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from service.errors import bad_request
from service.search.search_text import (
    EARLIEST,
    LATEST,
    OutOfRange,
    SearchText,
    format_instant,
    parse_bound,
    parse_search_text,
    resolve_bound,
    resolve_qualifier,
)
from service.vocabulary import CATEGORIES, PROVIDERS, TYPES
from service.zones import accepted_name, accepted_zones, zone

PRESETS: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
DEFAULT_RANGE = "7d"
MAX_VALUES = 50
MAX_VALUE_LENGTH = 256
FILTER_PARAMS = (
    "account_id",
    "category",
    "type",
    "actor",
    "action",
    "provider",
    "range",
    "from",
    "to",
    "tz",
    "q",
)


@dataclass(frozen=True)
class TimeWindow:
    """``[start, end)`` in UTC; ``start`` None means from the first entry."""

    start: datetime | None
    end: datetime

    def to_dict(self) -> dict[str, str | None]:
        return {
            "from": format_instant(self.start) if self.start else None,
            "to": format_instant(self.end),
        }


@dataclass(frozen=True)
class ViewFilters:
    account_id: str
    tz: ZoneInfo
    window: TimeWindow
    categories: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    actors: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    text: SearchText = field(default_factory=SearchText)
    raw: tuple[tuple[str, str], ...] = ()

    def fingerprint(self) -> str:
        """A digest of the filters as the client gave them (for cursors and exports)."""
        return hashlib.sha256(json.dumps([self.account_id, self.raw]).encode()).hexdigest()[:32]

    def window_parameter(self) -> str:
        """The parameter that set the window, to name when the window itself is refused."""
        given = {k for k, _ in self.raw}
        return next((k for k in ("from", "to", "q") if k in given), "range")

    def describe(self) -> dict[str, Any]:
        """The filters in words, for exports and the audit trail."""
        grouped: dict[str, list[str]] = {}
        for k, v in self.raw:
            grouped.setdefault(k, []).append(v)
        out: dict[str, Any] = {k: v if len(v) > 1 else v[0] for k, v in grouped.items()}
        return {**out, **self.window.to_dict(), "tz": self.tz.key}


def parse_timezone(value: str | None, default: str) -> ZoneInfo:
    """The ``tz`` parameter's zone, else the account's (``default``)."""
    if value:
        return zone(value, "tz")
    if default not in accepted_zones():  # stored before zones were checked against the engine:
        return ZoneInfo(accepted_name(default) or "UTC")  # reported at startup, until fixed
    return ZoneInfo(default)


def _values(
    params: Mapping[str, Sequence[str]], name: str, allowed: Sequence[str] | None
) -> tuple[str, ...]:
    values: list[str] = []
    for raw in params.get(name, ()):
        values += [v.strip() for v in raw.split(",") if v.strip()]
    if len(values) > MAX_VALUES:
        raise bad_request(f"at most {MAX_VALUES} values of {name}", field=name)
    for value in values:
        if allowed is not None and value not in allowed:
            raise bad_request(f"{name} '{value}' is not one of {', '.join(allowed)}", field=name)
        if len(value) > MAX_VALUE_LENGTH:
            raise bad_request(
                f"{name} value is longer than {MAX_VALUE_LENGTH} characters", field=name
            )
    return tuple(dict.fromkeys(values))


def _bound(params: Mapping[str, Sequence[str]], name: str, tz: ZoneInfo) -> datetime | None:
    given = params.get(name)
    if not given:
        return None
    parsed = parse_bound(given[-1].strip())
    if parsed is None:
        raise bad_request(
            f"{name} must be YYYY-MM-DD or an RFC 3339 instant, got '{given[-1]}'", field=name
        )
    try:
        return resolve_bound(parsed, tz)
    except OutOfRange as e:
        raise bad_request(
            f"{name} is out of range (from {EARLIEST.date()} to {LATEST.date()})", field=name
        ) from e


def resolve_window(
    params: Mapping[str, Sequence[str]], tz: ZoneInfo, now: datetime, text: SearchText
) -> TimeWindow:
    """The absolute window of the request (``after:``/``before:`` in ``q`` narrow it)."""
    preset = (params.get("range") or [DEFAULT_RANGE])[-1]
    if preset not in PRESETS:
        raise bad_request(f"range must be one of {', '.join(PRESETS)}", field="range")
    span = PRESETS[preset]
    local_now = now.astimezone(tz)
    start: datetime | None = None
    if span is not None and span.days:  # calendar days: wall-clock arithmetic in tz
        start = (local_now.replace(tzinfo=None) - span).replace(tzinfo=tz).astimezone(UTC)
    elif span is not None:  # hours: elapsed time
        start = now - span
    end = now
    given_from, given_to = _bound(params, "from", tz), _bound(params, "to", tz)
    if given_from is not None or given_to is not None:
        start, end = given_from, given_to or now
    for name, bound, is_start in (("after", text.after, True), ("before", text.before, False)):
        if bound is not None:
            instant = resolve_qualifier(name, bound, tz)
            if is_start:
                start = instant if start is None else max(start, instant)
            else:
                end = min(end, instant)
    if start is not None and start > end:
        if given_from is not None and given_to is not None and given_from > given_to:
            raise bad_request("from must be before to", field="from")
        if text.after is not None or text.before is not None:
            raise bad_request("after: and before: leave no time in the range", field="q")
        raise bad_request("from must be before to", field="from" if given_from else "to")
    return TimeWindow(start, end)


def parse_view_filters(
    params: Mapping[str, Sequence[str]], account_id: str, account_tz: str, now: datetime
) -> ViewFilters:
    """Validate the filter parameters of a request (``params``: name → all its values)."""
    tz_given = params.get("tz")
    tz = parse_timezone(tz_given[-1] if tz_given else None, account_tz)
    q = (params.get("q") or [""])[-1]
    text = parse_search_text(q)
    raw = tuple(
        sorted((k, v) for k in FILTER_PARAMS for v in params.get(k, ()) if k != "account_id")
    )
    return ViewFilters(
        account_id=account_id,
        tz=tz,
        window=resolve_window(params, tz, now, text),
        categories=_values(params, "category", CATEGORIES),
        types=_values(params, "type", TYPES),
        actors=_values(params, "actor", None),
        providers=_values(params, "provider", PROVIDERS),
        actions=_values(params, "action", None),
        text=text,
        raw=raw,
    )
