"""Date histograms of a filtered view, in the view's timezone.

Buckets are ``date_histogram`` calendar intervals with ``time_zone`` (DST-correct: a local day is
23, 24 or 25 hours), aligned to local midnight, with empty buckets filled over the whole window
(``extended_bounds``). ``auto`` picks the finest interval giving at most about 120 buckets. Every
filter, facets included, applies; the bucket counts add up to the total of the same filters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import AsyncElasticsearch

from service.errors import bad_request
from service.search.engine_errors import engine_errors
from service.search.filters import TimeWindow, ViewFilters
from service.search.indices import IndexNames
from service.search.queries import EntryQuery
from service.search.search_text import format_instant

INTERVALS: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=30),
}
MAX_BUCKETS = 120
HARD_LIMIT = 5000
SPLITS = {"category": "category", "type": "type", "none": None}


@dataclass
class Histogram:
    interval: str
    tz: str
    total: int
    buckets: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "tz": self.tz,
            "total": self.total,
            "buckets": self.buckets,
        }


def choose_interval(filters: ViewFilters, requested: str) -> str:
    """The interval of ``requested`` (``auto``: the finest with at most :data:`MAX_BUCKETS`);
    a 400 when even that gives more than :data:`HARD_LIMIT` buckets, naming the parameter to
    change (``interval`` when a coarser one would do, else the one that set the window)."""
    window = filters.window
    assert window.start is not None
    span = window.end - window.start
    chosen = requested
    if requested == "auto":
        chosen = next((n for n, step in INTERVALS.items() if span / step <= MAX_BUCKETS), "month")
    if span / INTERVALS[chosen] <= HARD_LIMIT:
        return chosen
    if chosen != "month":
        raise bad_request(
            f"interval '{requested}' would give more than {HARD_LIMIT} buckets", "interval"
        )
    raise bad_request(
        f"the window from {format_instant(window.start)} to {format_instant(window.end)} is "
        f"longer than {HARD_LIMIT} months: narrow it",
        filters.window_parameter(),
    )


async def _first_timestamp(
    es: AsyncElasticsearch, names: IndexNames, query: EntryQuery
) -> datetime | None:
    resp = await es.search(
        index=names.entries_alias,
        size=0,
        query=query.full_query(),
        aggs={"first": {"min": {"field": "timestamp"}}},
    )
    value = resp["aggregations"]["first"]["value"]
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def _bucket(b: dict[str, Any], tz: Any, split: str | None) -> dict[str, Any]:
    start = datetime.fromtimestamp(b["key"] / 1000, UTC).astimezone(tz)
    out: dict[str, Any] = {"start": start.isoformat(), "count": b["doc_count"]}
    if split is not None:
        out["split"] = {str(s["key"]): s["doc_count"] for s in b["split"]["buckets"]}
    return out


async def date_histogram(
    es: AsyncElasticsearch, names: IndexNames, filters: ViewFilters, interval: str, split: str
) -> Histogram:
    if split not in SPLITS:
        raise bad_request(f"split must be one of {', '.join(SPLITS)}", field="split")
    if interval != "auto" and interval not in INTERVALS:
        raise bad_request(f"interval must be auto or one of {', '.join(INTERVALS)}", "interval")
    query = EntryQuery(filters)
    with engine_errors():
        if filters.window.start is None:
            first = await _first_timestamp(es, names, query)
            start = first or filters.window.end
            filters = replace(filters, window=TimeWindow(start, filters.window.end))
            query = EntryQuery(filters)
        assert filters.window.start is not None
        if filters.window.start >= filters.window.end:
            return Histogram(interval if interval != "auto" else "day", filters.tz.key, 0, [])
        chosen = choose_interval(filters, interval)
        histogram: dict[str, Any] = {
            "field": "timestamp",
            "calendar_interval": chosen,
            "time_zone": filters.tz.key,
            "min_doc_count": 0,
            "extended_bounds": {
                "min": int(filters.window.start.timestamp() * 1000),
                "max": int(filters.window.end.timestamp() * 1000) - 1,
            },
        }
        field = SPLITS[split]
        agg: dict[str, Any] = {"date_histogram": histogram}
        if field is not None:
            agg["aggs"] = {"split": {"terms": {"field": field, "size": 20}}}
        resp = await es.search(
            index=names.entries_alias,
            size=0,
            query=query.full_query(),
            aggs={"histogram": agg},
            track_total_hits=True,
        )
    buckets = [_bucket(b, filters.tz, field) for b in resp["aggregations"]["histogram"]["buckets"]]
    return Histogram(chosen, filters.tz.key, resp["hits"]["total"]["value"], buckets)
