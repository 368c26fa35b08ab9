"""The accounts' logs as stored: segments of leaves and signed checkpoints.

Both are documents of ``<prefix>-integrity``.

A **segment** (``seg:<account>:<start>``) holds the leaves the sealer appended in one seal: for
each, the entry's id, category, timestamp and digest, at positions ``start``, ``start + 1``, ...
Each leaf's id is indexed (``leaves.id``, searched, never sorted on: no doc values), so the
sealer and the proofs find an entry's segment without a second copy of the ids.
A **checkpoint** (``cp:<account>:<seq>``) is what the sealer signed after appending them. Both
are created with fixed ids, so a sealer that lost its lease and tries to write the same position
or sequence number again is refused by the engine instead of forking the log.

The index is never refreshed on a schedule: the sealer refreshes it once a round appended
(:meth:`IntegrityLog.refresh`), before it removes that round's queue records, so a reader that
does not refresh sees every checkpoint signed up to the last round; readers that must see every
write (a new holder, verification) refresh first.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from service.errors import ServiceError
from service.search.engine_errors import engine_failures, translated
from service.search.indices import IndexNames

PAGE = 500
SEGMENT_PAGE = 4
CACHED_SEGMENTS = 4


class LogConflict(Exception):
    """A segment or checkpoint with that position or number exists: another sealer wrote it."""


class SegmentCache:
    """The segments read last, by account and start. A segment under a signed checkpoint never
    changes (the log only grows), and the feed's readers (an account's destinations, clients
    paging the feed) read the same few one after the other: each is read from the engine once,
    not once a reader and a page. Bounded: :data:`CACHED_SEGMENTS` segments, about 2.5 MB
    each when full."""

    def __init__(self, size: int = CACHED_SEGMENTS) -> None:
        self.size = size
        self.segments: OrderedDict[tuple[str, int], list[dict[str, str]]] = OrderedDict()

    def covering(self, account_id: str, position: int) -> tuple[int, list[dict[str, str]]] | None:
        """The held segment of the account holding ``position``: its start and leaves."""
        for (account, start), leaves in self.segments.items():
            if account == account_id and start <= position < start + len(leaves):
                self.segments.move_to_end((account, start))
                return start, leaves
        return None

    def keep(self, account_id: str, start: int, leaves: list[dict[str, str]]) -> None:
        self.segments[(account_id, start)] = leaves
        self.segments.move_to_end((account_id, start))
        while len(self.segments) > self.size:
            self.segments.popitem(last=False)


class IntegrityLog:
    def __init__(self, es: AsyncElasticsearch, names: IndexNames) -> None:
        self.es, self.index = es, names.integrity

    async def _create(self, doc_id: str, document: dict[str, Any]) -> bool:
        """Create ``doc_id`` (True), or find the same document there already (False: this very
        write, landed after the client timed out and sent it again, is a success; taking it for
        a conflict would delete the segment of a checkpoint that exists); :class:`LogConflict`
        when another document holds the id."""
        try:  # not refreshed: readers that need what was just sealed refresh (see below)
            await self.es.create(index=self.index, id=doc_id, document=document)
        except ConflictError as e:
            with contextlib.suppress(NotFoundError):
                stored = await self.es.get(index=self.index, id=doc_id)
                if stored["_source"] == document:
                    return False
            raise LogConflict(doc_id) from e
        return True

    @translated
    async def append(
        self, account_id: str, start: int, leaves: list[dict[str, str]], checkpoint: dict[str, Any]
    ) -> None:
        """Store a segment and the checkpoint that covers it; :class:`LogConflict` if another
        sealer got there first (nothing of this append is then kept)."""
        segment = {"kind": "segment", "account_id": account_id, "start": start, "leaves": leaves}
        created = await self._create(f"seg:{account_id}:{start}", segment)
        try:
            await self._create(f"cp:{account_id}:{checkpoint['seq']}", checkpoint)
        except LogConflict:
            if created:  # only a segment this append made is its to remove
                await self.delete_segment(account_id, start)
            raise

    @translated
    async def refresh(self) -> None:
        """Make what was appended visible to searches (see the module)."""
        await self.es.indices.refresh(index=self.index)

    @translated
    async def delete_segment(self, account_id: str, start: int) -> None:
        with contextlib.suppress(NotFoundError):
            await self.es.delete(index=self.index, id=f"seg:{account_id}:{start}", refresh=True)

    @translated
    async def latest_checkpoint(self, account_id: str, fresh: bool = True) -> dict[str, Any] | None:
        """The account's last checkpoint: with ``fresh``, after a refresh (every checkpoint
        stored so far); without, as of the sealer's last round (see the module)."""
        if fresh:
            await self.es.indices.refresh(index=self.index)
        resp = await self.es.search(
            index=self.index, size=1, sort=[{"seq": "desc"}],
            query={"bool": {"filter": [{"term": {"kind": "checkpoint"}},
                                       {"term": {"account_id": account_id}}]}},
        )  # fmt: skip
        hits = resp["hits"]["hits"]
        return dict(hits[0]["_source"]) if hits else None

    @translated
    async def checkpoint_within(self, account_id: str, size: int) -> dict[str, Any] | None:
        """The latest checkpoint whose tree is at most ``size`` leaves."""
        resp = await self.es.search(
            index=self.index, size=1, sort=[{"seq": "desc"}],
            query={"bool": {"filter": [{"term": {"kind": "checkpoint"}},
                                       {"term": {"account_id": account_id}},
                                       {"range": {"tree_size": {"lte": size}}}]}},
        )  # fmt: skip
        hits = resp["hits"]["hits"]
        return dict(hits[0]["_source"]) if hits else None

    @translated
    async def checkpoint_at_size(self, account_id: str, size: int) -> dict[str, Any] | None:
        resp = await self.es.search(
            index=self.index, size=1,
            query={"bool": {"filter": [{"term": {"kind": "checkpoint"}},
                                       {"term": {"account_id": account_id}},
                                       {"term": {"tree_size": size}}]}},
        )  # fmt: skip
        hits = resp["hits"]["hits"]
        return dict(hits[0]["_source"]) if hits else None

    async def _each(
        self, kind: str, account_id: str, order: str, page: int = PAGE
    ) -> AsyncIterator[dict[str, Any]]:
        after: list[Any] | None = None
        filters = [{"term": {"kind": kind}}, {"term": {"account_id": account_id}}]
        while True:
            with engine_failures():
                resp = await self.es.search(
                    index=self.index, size=page, query={"bool": {"filter": filters}},
                    sort=[{order: "asc"}], search_after=after,
                )  # fmt: skip
            hits = resp["hits"]["hits"]
            for hit in hits:
                yield hit["_source"]
            if len(hits) < page:
                return
            after = hits[-1]["sort"]

    def checkpoints(self, account_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every checkpoint of the account, by sequence number."""
        return self._each("checkpoint", account_id, "seq")

    def segments(self, account_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every segment of the account, by position (a few at a time: each holds up to 5,000
        leaves)."""
        return self._each("segment", account_id, "start", SEGMENT_PAGE)

    @translated
    async def segments_from(
        self, account_id: str, start: int, *, fresh: bool = True, size: int = 100
    ) -> list[int]:
        """Starts of the first ``size`` segments at or past ``start`` (a sealer that stopped
        between a segment and its checkpoint leaves one); with ``fresh``, after a refresh."""
        if fresh:
            await self.es.indices.refresh(index=self.index)
        resp = await self.es.search(
            index=self.index, size=size, source=False, sort=[{"start": "asc"}],
            query={"bool": {"filter": [{"term": {"kind": "segment"}},
                                       {"term": {"account_id": account_id}},
                                       {"range": {"start": {"gte": start}}}]}},
        )  # fmt: skip
        return [int(hit["sort"][0]) for hit in resp["hits"]["hits"]]

    @translated
    async def leaves_between(
        self, account_id: str, start: int, end: int, cache: SegmentCache | None = None
    ) -> list[dict[str, str]]:
        """The leaves at positions ``start`` to ``end - 1`` (from 0) of the account's log, in
        order, as far as segments hold them (the caller bounds ``end`` by a checkpoint's tree
        size: a segment past the last checkpoint may still be replaced). With ``cache``, the
        segments it holds are not read again, and those read are kept there."""
        if end <= start:
            return []
        leaves: list[dict[str, str]] = []
        while cache is not None and start < end:
            held = cache.covering(account_id, start)
            if held is None:
                break
            at, stored = held
            taken = stored[start - at : end - at]
            leaves += taken
            start += len(taken)
        if start < end:
            leaves += await self._read_between(account_id, start, end, cache)
        return leaves

    async def _read_between(
        self, account_id: str, start: int, end: int, cache: SegmentCache | None
    ) -> list[dict[str, str]]:
        segment = [{"term": {"kind": "segment"}}, {"term": {"account_id": account_id}}]
        first = await self.es.search(
            index=self.index, size=1, sort=[{"start": "desc"}], source_includes=["start", "leaves"],
            query={"bool": {"filter": [*segment, {"range": {"start": {"lte": start}}}]}},
        )  # fmt: skip
        rest = await self.es.search(
            index=self.index, size=end - start, sort=[{"start": "asc"}],
            source_includes=["start", "leaves"],
            query={"bool": {"filter": [*segment, {"range": {"start": {"gt": start, "lt": end}}}]}},
        )  # fmt: skip
        leaves: list[dict[str, str]] = []
        for hit in [*first["hits"]["hits"], *rest["hits"]["hits"]]:
            at = int(hit["_source"]["start"])
            for offset, item in enumerate(hit["_source"]["leaves"]):
                if start + len(leaves) == at + offset and at + offset < end:
                    leaves.append(item)
            if cache is not None:  # it starts before ``end``, under a checkpoint: it is whole
                cache.keep(account_id, at, hit["_source"]["leaves"])
        if len(leaves) < end - start:  # a checkpoint covers positions no segment holds
            raise ServiceError(503, "log_damaged", f"the account's log has no leaf at position "
                               f"{start + len(leaves) + 1}: run auditlog verify")  # fmt: skip
        return leaves

    @translated
    async def sealed_among(
        self, account_id: str, entry_ids: list[str], fresh: bool = False
    ) -> set[str]:
        """Those of ``entry_ids`` already in the account's log (with ``fresh``, after a refresh:
        as of every segment stored so far)."""
        if fresh:
            await self.es.indices.refresh(index=self.index)
        found: set[str] = set()
        wanted = set(entry_ids)
        for start in range(0, len(entry_ids), 1000):
            chunk = entry_ids[start : start + 1000]
            resp = await self.es.search(
                index=self.index, size=1000, source_includes=SEGMENT_IDS,
                query=_segments_holding(account_id, chunk),
            )  # fmt: skip
            for hit in resp["hits"]["hits"]:
                found |= wanted.intersection(_ids(hit["_source"]))
        return found

    @translated
    async def sealing_checkpoints(self, account_id: str, entry_ids: list[str]) -> dict[str, int]:
        """The sequence number of the checkpoint that sealed each of ``entry_ids`` (a page of
        entries), for those that are sealed."""
        if not entry_ids:
            return {}
        wanted, ends = set(entry_ids), {}
        resp = await self.es.search(
            index=self.index, size=len(wanted), source_includes=["start", *SEGMENT_IDS],
            query=_segments_holding(account_id, sorted(wanted)),
        )  # fmt: skip
        for hit in resp["hits"]["hits"]:
            ids = _ids(hit["_source"])
            end = int(hit["_source"]["start"]) + len(ids)  # the tree size its checkpoint signed
            ends.update({entry_id: end for entry_id in wanted.intersection(ids)})
        if not ends:
            return {}
        seq = await self._checkpoint_seqs(account_id, set(ends.values()))
        return {entry_id: seq[end] for entry_id, end in ends.items() if end in seq}

    @translated
    async def checkpointed_leaves(
        self, account_id: str, entry_ids: list[str]
    ) -> set[tuple[str, str]]:
        """``(id, digest)`` of each leaf of ``entry_ids`` (a page of entries) under a signed
        checkpoint: a second copy of an id, whose digest differs, is not among them."""
        if not entry_ids:
            return set()
        wanted, by_end = set(entry_ids), defaultdict(set)
        resp = await self.es.search(
            index=self.index, size=min(2 * len(wanted), 10_000),
            source_includes=["start", "leaves.id", "leaves.digest", "ids"],
            query=_segments_holding(account_id, sorted(wanted)),
        )  # fmt: skip
        for hit in resp["hits"]["hits"]:
            source = hit["_source"]
            ids, leaves = _ids(source), source.get("leaves") or []
            end = int(source["start"]) + len(ids)  # the tree size its checkpoint signed
            for entry_id, stored in zip(ids, leaves, strict=False):
                if entry_id in wanted and isinstance(stored, dict):
                    by_end[end].add((entry_id, str(stored.get("digest"))))
        if not by_end:
            return set()
        signed = await self._checkpoint_seqs(account_id, set(by_end))
        return {pair for end, pairs in by_end.items() if end in signed for pair in pairs}

    async def _checkpoint_seqs(self, account_id: str, sizes: set[int]) -> dict[int, int]:
        """Tree size → sequence number of the account's checkpoints of those sizes."""
        resp = await self.es.search(
            index=self.index, size=len(sizes), source_includes=["seq", "tree_size"],
            query={"bool": {"filter": [{"term": {"kind": "checkpoint"}},
                                       {"term": {"account_id": account_id}},
                                       {"terms": {"tree_size": sorted(sizes)}}]}},
        )  # fmt: skip
        return {int(h["_source"]["tree_size"]): int(h["_source"]["seq"])
                for h in resp["hits"]["hits"]}  # fmt: skip


SEGMENT_IDS = ["ids", "leaves.id"]
"""Where a segment's entry ids are: each leaf's ``id`` (indexed as ``leaves.id``); segments
written before that also list them apart, as ``ids``."""


def _segments_holding(account_id: str, entry_ids: list[str]) -> dict[str, Any]:
    """The account's segments holding any of ``entry_ids``."""
    segments = [{"term": {"kind": "segment"}}, {"term": {"account_id": account_id}}]
    holding = [{"terms": {field: entry_ids}} for field in SEGMENT_IDS]
    return {"bool": {"filter": segments, "should": holding, "minimum_should_match": 1}}


def _ids(source: dict[str, Any]) -> list[str]:
    """A segment's entry ids, in order (see :data:`SEGMENT_IDS`)."""
    listed = source.get("ids")
    if isinstance(listed, list):
        return listed
    leaves = source.get("leaves") or ()
    return [str(leaf.get("id")) for leaf in leaves if isinstance(leaf, dict)]
