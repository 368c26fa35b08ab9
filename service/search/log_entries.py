"""Reading entries for the account logs: the sealer's and the feed's real-time fetches, the
genesis scan of entries stored before integrity existed, and verification's scan of everything an
account holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import orjson
from elasticsearch import AsyncElasticsearch

from service.errors import EngineUnavailable, engine_unavailable
from service.search.engine_errors import engine_failures, translated
from service.search.indices import IndexNames

PAGE = 2000
KEEP_ALIVE = "2m"
CACHED_BYTES = 48 * 2**20
"""What the feed keeps in memory at most (:class:`EntryCache`): entries' JSON sizes summed
(as objects, they take about three times that)."""
CACHED_FOR_S = 60.0
"""How long the feed serves an entry from memory, at most."""


class EntryCache:
    """Entries the feed may serve without asking the engine, by document id: those its readers
    fetched last (an account's destinations read the same positions one after the other: each
    entry is fetched and decoded once, not once a destination), and those this process just
    wrote for an account it delivers (read a few seconds later: never fetched or decoded at
    all). Only entries found or created are kept (one not there is asked for
    again), for :data:`CACHED_FOR_S` at most (an entry removed since is soon read as gone), and
    only up to :data:`CACHED_BYTES` of JSON, the oldest kept first out."""

    def __init__(self, max_bytes: int = CACHED_BYTES, ttl_s: float = CACHED_FOR_S) -> None:
        self.max_bytes, self.ttl_s, self.bytes = max_bytes, ttl_s, 0
        self.entries: OrderedDict[str, tuple[dict[str, Any], int, float]] = OrderedDict()

    def take(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Those of ``doc_ids`` held, by document id."""
        fresh_after = time.monotonic() - self.ttl_s
        held = {}
        for doc_id in doc_ids:
            kept = self.entries.get(doc_id)
            if kept is not None and kept[2] > fresh_after:
                held[doc_id] = kept[0]
        return held

    def keep(self, found: dict[str, dict[str, Any]]) -> None:
        """Keep entries the feed fetched."""
        self._keep(
            {doc_id: (source, len(orjson.dumps(source))) for doc_id, source in found.items()}
        )

    def keep_written(self, written: dict[str, tuple[dict[str, Any], int]]) -> None:
        """Keep entries as this process wrote them, with their sizes as JSON."""
        self._keep(written)

    def _keep(self, sized: dict[str, tuple[dict[str, Any], int]]) -> None:
        now = time.monotonic()
        for doc_id, (source, size) in sized.items():
            if size > self.max_bytes // 4:
                continue
            old = self.entries.pop(doc_id, None)
            self.bytes += size - (old[1] if old else 0)
            self.entries[doc_id] = (source, size, now)
        while self.bytes > self.max_bytes:
            _, (_, size, _) = self.entries.popitem(last=False)
            self.bytes -= size


@translated
async def fetch_entries(
    es: AsyncElasticsearch,
    docs: list[tuple[str, str]],
    gone: set[str] | None = None,
    cache: EntryCache | None = None,
    keep: bool = True,
) -> dict[str, dict[str, Any]]:
    """``(index, document id)`` → the stored source, of those that exist (real-time gets).
    With ``gone``, a document whose index no longer exists (retention deletes whole indices) is
    added to it; without, that is an error (unknown, so nothing may be given up on). With
    ``cache``, those it holds are not fetched, and those fetched are kept there if ``keep``."""
    if cache is not None:
        held = cache.take([doc_id for _, doc_id in docs])
        if len(held) == len(docs):
            return held
        fetched = await fetch_entries(es, [d for d in docs if d[1] not in held], gone)
        if keep:
            cache.keep(fetched)
        return held | fetched
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(docs), PAGE):
        body = [{"_index": index, "_id": doc_id} for index, doc_id in docs[start : start + PAGE]]
        resp = await es.options(ignore_status=404).mget(docs=body)
        for doc in resp.get("docs", []):
            error = doc.get("error")
            missing_index = (
                isinstance(error, dict) and error.get("type") == "index_not_found_exception"
            )
            if error and gone is not None and missing_index:
                gone.add(doc["_id"])
                continue
            if error:  # not "not found": unknown, so nothing may be given up on
                raise engine_unavailable(detail=f"fetching {doc.get('_id')}: {doc['error']}")
            if doc.get("found"):
                found[doc["_id"]] = doc["_source"]
    return found


async def _scan(
    es: AsyncElasticsearch, names: IndexNames, query: dict[str, Any], sort: list[Any]
) -> AsyncIterator[dict[str, Any]]:
    with engine_failures():
        # every entry stored so far, not only those of the last scheduled refresh: a sealed
        # entry not yet searchable would read as missing
        refreshed = await es.options(ignore_status=404).indices.refresh(index=names.entries_alias)
        if refreshed.meta.status == 404:
            return  # no entry index yet: nothing stored
        opened = await es.open_point_in_time(index=names.entries_alias, keep_alive=KEEP_ALIVE)
        pit = opened["id"]

    async def page(pit_id: str, after: list[Any] | None) -> Any:
        with engine_failures():
            return await es.search(
                query=query, sort=sort, size=PAGE, search_after=after,
                pit={"id": pit_id, "keep_alive": KEEP_ALIVE},
            )  # fmt: skip

    # the next page is asked for before this one is handed out: the engine reads it meanwhile
    ahead: asyncio.Future[Any] = asyncio.ensure_future(page(pit, None))
    try:
        while True:
            resp = await ahead
            pit = resp.get("pit_id", pit)
            hits = resp["hits"]["hits"]
            if len(hits) == PAGE:
                ahead = asyncio.ensure_future(page(pit, hits[-1]["sort"]))
            for hit in hits:
                yield hit["_source"]
            if len(hits) < PAGE:
                return
    finally:
        if not ahead.done():
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError, EngineUnavailable):
                await ahead
        with engine_failures():
            await es.options(ignore_status=404).close_point_in_time(id=pit)


def entries_without_mac(
    es: AsyncElasticsearch, names: IndexNames, account_id: str
) -> AsyncIterator[dict[str, Any]]:
    """The account's entries stored before integrity existed, in ingest order."""
    query = {"bool": {"filter": [{"term": {"account_id": account_id}}],
                      "must_not": [{"exists": {"field": "integrity.digest"}}]}}  # fmt: skip
    return _scan(es, names, query, [{"ingested_at": "asc"}, {"id": "asc"}])


def account_entries(
    es: AsyncElasticsearch, names: IndexNames, account_id: str
) -> AsyncIterator[dict[str, Any]]:
    """Every entry the account holds, in no particular order."""
    return _scan(es, names, {"term": {"account_id": account_id}}, [{"_shard_doc": "asc"}])
