"""One page of entries: exact total, multi-select facets and a cursor for the next page.

The hits query carries the base clauses; facet selections go to ``post_filter``. Each facet is
counted by its own search in one ``msearch``, filtered by the other facets' selections only, with
an engine-side timeout: a facet that fails or times out is reported in ``facets_timed_out`` and
the page is still served.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from service.errors import ServiceError, bad_request
from service.search.cursors import EntryCursor, decode_cursor, encode_cursor
from service.search.engine_errors import engine_errors
from service.search.filters import TimeWindow, ViewFilters
from service.search.indices import IndexNames
from service.search.queries import FACET_FIELDS, EntryQuery
from service.search.scan import open_window_pit
from service.search.search_text import format_instant

FACET_SIZES = {"category": 20, "type": 10, "actor": 50, "provider": 10}
PIT_KEEP_ALIVE = "5m"
HIDDEN_FIELDS = ("ingested_at", "integrity")


@dataclass
class Page:
    entries: list[dict[str, Any]]
    total: int
    total_relation: str
    facets: dict[str, list[dict[str, Any]]]
    next_cursor: str | None
    facets_timed_out: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "entries": self.entries,
            "total": self.total,
            "total_relation": self.total_relation,
            "facets": self.facets,
            "next_cursor": self.next_cursor,
        }
        if self.facets_timed_out:
            out["facets_timed_out"] = self.facets_timed_out
        return out


def present(source: dict[str, Any], filters: ViewFilters) -> dict[str, Any]:
    """An entry as the API returns it: its fields plus ``local_time`` in the view's timezone."""
    entry = {k: v for k, v in source.items() if k not in HIDDEN_FIELDS}
    instant = datetime.fromisoformat(source["timestamp"].replace("Z", "+00:00"))
    entry["local_time"] = instant.astimezone(filters.tz).isoformat(timespec="milliseconds")
    return entry


def _parse_instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC) if text else None


def _facet_search(query: EntryQuery, facet: str, timeout_s: float) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "field": FACET_FIELDS[facet],
        "size": FACET_SIZES[facet],
        "shard_size": 10_000,
    }
    agg: dict[str, Any] = {"terms": terms}
    if facet == "actor":
        agg["aggs"] = {"label": {"terms": {"field": "actor.name", "size": 1}}}
    clauses = [*query.base_clauses(), query.facet_filter(facet)]
    return {
        "size": 0,
        "timeout": f"{int(timeout_s * 1000)}ms",
        "query": {"bool": {"filter": clauses}},
        "aggs": {"facet": agg},
    }


def _facet_buckets(
    facet: str, response: dict[str, Any], selected: tuple[str, ...]
) -> list[dict[str, Any]]:
    buckets = []
    for b in response["aggregations"]["facet"]["buckets"]:
        bucket: dict[str, Any] = {"value": str(b["key"]), "count": b["doc_count"]}
        if facet == "actor":
            labels = b["label"]["buckets"]
            bucket["label"] = labels[0]["key"] if labels else str(b["key"])
        bucket["selected"] = bucket["value"] in selected
        buckets.append(bucket)
    present_values = {b["value"] for b in buckets}
    for value in selected:
        if value not in present_values:
            extra: dict[str, Any] = {"value": value, "count": 0, "selected": True}
            if facet == "actor":
                extra["label"] = value
            buckets.append(extra)
    return buckets


async def compute_facets(
    es: AsyncElasticsearch, names: IndexNames, query: EntryQuery, timeout_s: float
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    facets = list(FACET_FIELDS)
    body: list[dict[str, Any]] = []
    for facet in facets:
        body += [{"index": names.entries_alias}, _facet_search(query, facet, timeout_s)]
    resp = await es.msearch(searches=body)
    selected = {
        "category": query.filters.categories,
        "type": query.filters.types,
        "actor": query.filters.actors,
        "provider": query.filters.providers,
    }
    out: dict[str, list[dict[str, Any]]] = {}
    timed_out: list[str] = []
    for facet, response in zip(facets, resp["responses"], strict=True):
        if "error" in response or response.get("timed_out"):
            out[facet] = []
            timed_out.append(facet)
            continue
        out[facet] = _facet_buckets(facet, response, selected[facet])
    unnamed = [b["value"] for b in out.get("actor", []) if b["label"] == b["value"]]
    if unnamed:
        names_of = await actor_names(es, names, query.filters.account_id, unnamed)
        for b in out["actor"]:
            b["label"] = names_of.get(b["value"], b["label"])
    return out, timed_out


async def actor_names(
    es: AsyncElasticsearch, names: IndexNames, account_id: str, actor_ids: list[str]
) -> dict[str, str]:
    """The name each actor went by in the account's latest entry of theirs (any time, any
    filter): a selected actor with no entries in the view is still shown by name."""
    resp = await es.search(
        index=names.entries_alias,
        size=0,
        query={
            "bool": {
                "filter": [{"term": {"account_id": account_id}}, {"terms": {"actor.id": actor_ids}}]
            }
        },
        aggs={
            "actor": {
                "terms": {"field": "actor.id", "size": len(actor_ids)},
                "aggs": {
                    "latest": {
                        "top_hits": {
                            "size": 1,
                            "_source": ["actor.name"],
                            "sort": [{"timestamp": "desc"}],
                        }
                    }
                },
            }
        },
    )
    found: dict[str, str] = {}
    for bucket in resp["aggregations"]["actor"]["buckets"]:
        hits = bucket["latest"]["hits"]["hits"]
        name = (hits[0]["_source"].get("actor") or {}).get("name") if hits else None
        if name:
            found[str(bucket["key"])] = str(name)
    return found


async def _hits(
    es: AsyncElasticsearch, names: IndexNames, body: dict[str, Any], pit: str | None
) -> tuple[dict[str, Any], str | None]:
    """The hits, and the point in time still in use (None once it expired)."""
    if pit is not None:
        try:
            resp = await es.search(**body, pit={"id": pit, "keep_alive": PIT_KEEP_ALIVE})
            return dict(resp.body), str(resp.get("pit_id", pit))
        except NotFoundError:
            pass  # the point in time expired: (timestamp, id) still orders exactly
    resp = await es.search(index=names.entries_alias, **body)
    return dict(resp.body), None


async def search_entries(
    es: AsyncElasticsearch,
    names: IndexNames,
    filters: ViewFilters,
    *,
    size: int,
    order: str,
    cursor_text: str | None,
    secret: bytes,
    timeout_s: float,
    snapshot: bool = True,
) -> Page:
    """A page of entries with its facets and the cursor of the next page. With ``snapshot``,
    the pages after the first read one point in time; without, each page reads the index as
    it is (still exact: the sort is a total order), and cursors stay short (no point in time
    in them: the page puts them in its links)."""
    cursor = None
    if cursor_text:
        cursor = decode_cursor(cursor_text, secret, filters.account_id, filters.fingerprint())
        if cursor.order != order:
            raise bad_request("cursor was made for another order", field="cursor")
        window = TimeWindow(
            _parse_instant(cursor.start), _parse_instant(cursor.end) or filters.window.end
        )
        filters = replace(filters, window=window)
    query = EntryQuery(filters)
    body: dict[str, Any] = {
        "query": query.query(),
        "sort": [{"timestamp": {"order": order}}, {"id": {"order": order}}],
        "size": size,
        "track_total_hits": True,
        "timeout": f"{int(timeout_s * 1000)}ms",
    }
    if (post_filter := query.post_filter()) is not None:
        body["post_filter"] = post_filter
    if cursor is not None:
        body["search_after"] = cursor.after
    with engine_errors():
        # The first page needs no point in time; the first use of a cursor opens one, so that
        # the following pages see the same snapshot. The last page closes it.
        pit = (
            (cursor.pit or await open_window_pit(es, names, query, PIT_KEEP_ALIVE))
            if cursor and snapshot
            else None
        )
        resp, pit = await _hits(es, names, body, pit)
        if resp.get("timed_out"):
            raise ServiceError(504, "search_timeout", "the search took too long; narrow it")
        facets, timed_out = await compute_facets(es, names, query, timeout_s)
        hits = resp["hits"]["hits"]
        next_cursor = None
        if len(hits) < size and pit is not None:
            await es.options(ignore_status=404).close_point_in_time(id=pit)
        elif len(hits) == size:
            next_cursor = encode_cursor(
                EntryCursor(
                    filters.account_id,
                    filters.fingerprint(),
                    order,
                    format_instant(filters.window.start) if filters.window.start else None,
                    format_instant(filters.window.end),
                    pit,
                    list(hits[-1]["sort"]),
                ),
                secret,
            )
    return Page(
        entries=[present(h["_source"], filters) for h in hits],
        total=resp["hits"]["total"]["value"],
        total_relation=resp["hits"]["total"]["relation"],
        facets=facets,
        next_cursor=next_cursor,
        facets_timed_out=timed_out,
    )
