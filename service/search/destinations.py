"""The accounts' streaming destinations as stored (``<prefix>-destinations``, one document each).

A destination's document holds where and what to send, its secrets as the streaming package
encrypted them (this module never sees them in clear), and its delivery state: the last position
the receiver acknowledged, the failures since the last success and the health figures.
"""

from __future__ import annotations

from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, ConflictError, NotFoundError, TransportError

from service.search.engine_errors import translated
from service.search.indices import IndexNames

MAX_PER_ACCOUNT = 20
"""Destinations an account may have."""
Version = tuple[int, int]
"""A document's sequence number and primary term."""


class DestinationStore:
    def __init__(self, es: AsyncElasticsearch, names: IndexNames) -> None:
        self.es, self.index = es, names.destinations

    @translated
    async def create(self, document: dict[str, Any]) -> bool:
        """Store a new destination; False if its id is taken."""
        try:
            await self.es.create(index=self.index, id=document["id"], document=document,
                                 refresh=True)  # fmt: skip
        except ConflictError:
            return False
        return True

    @translated
    async def get(self, destination_id: str) -> dict[str, Any] | None:
        try:
            resp = await self.es.get(index=self.index, id=destination_id)
        except NotFoundError:
            return None
        return dict(resp["_source"])

    @translated
    async def get_versioned(
        self, destination_id: str, realtime: bool = True
    ) -> tuple[dict[str, Any], Version] | None:
        """The destination and the version it was read at (for :meth:`update_if`). Not
        ``realtime``: as of the index's last refresh (every write but a delivery's position
        refreshes it at once), without making the engine refresh it for a write not visible
        yet."""
        try:
            resp = await self.es.get(index=self.index, id=destination_id, realtime=realtime)
        except NotFoundError:
            return None
        return dict(resp["_source"]), (int(resp["_seq_no"]), int(resp["_primary_term"]))

    @translated
    async def update_if(self, destination_id: str, changes: dict[str, Any],
                        version: Version, refresh: bool = True) -> Version | None:  # fmt: skip
        """Apply ``changes`` if the destination is still as read at ``version``; the version
        written, or ``None`` when a person changed it meanwhile (or deleted it): their change
        wins. Without ``refresh`` (a delivery's position, written every round), listings show
        the change after the index's next refresh (:meth:`of_account` makes one)."""
        try:
            resp = await self.es.update(index=self.index, id=destination_id, doc=changes,
                                        refresh=refresh, if_seq_no=version[0],
                                        if_primary_term=version[1])  # fmt: skip
        except (ConflictError, NotFoundError):
            return None
        return int(resp["_seq_no"]), int(resp["_primary_term"])

    @translated
    async def of_account(self, account_id: str) -> list[dict[str, Any]]:
        """The account's destinations, their positions as the deliveries last wrote them."""
        await self.es.indices.refresh(index=self.index)
        resp = await self.es.search(
            index=self.index, size=MAX_PER_ACCOUNT, sort=[{"created_at": "asc"}],
            query={"term": {"account_id": account_id}},
        )  # fmt: skip
        return [dict(h["_source"]) for h in resp["hits"]["hits"]]

    @translated
    async def delivering(self) -> list[str]:
        """Ids of the destinations of every account that are to be delivered to. A status is
        written with a refresh (a delivery's position is not): no refresh is needed here."""
        ids: list[str] = []
        after: list[Any] | None = None
        while True:
            resp = await self.es.search(
                index=self.index, size=1000, source=False, sort=[{"id": "asc"}],
                query={"terms": {"status": ["active", "failing"]}}, search_after=after,
            )  # fmt: skip
            hits = resp["hits"]["hits"]
            ids += [h["_id"] for h in hits]
            if len(hits) < 1000:
                return ids
            after = hits[-1]["sort"]

    @translated
    async def some(self, destination_ids: list[str]) -> list[dict[str, Any]]:
        """The destinations of these ids that exist."""
        if not destination_ids:
            return []
        resp = await self.es.mget(index=self.index, ids=destination_ids)
        return [dict(d["_source"]) for d in resp["docs"] if d.get("found")]

    @translated
    async def count_by_status(self) -> dict[str, int]:
        """How many destinations of every account are in each status."""
        resp = await self.es.search(
            index=self.index, size=0, aggs={"by": {"terms": {"field": "status", "size": 10}}},
        )  # fmt: skip
        return {str(b["key"]): int(b["doc_count"]) for b in resp["aggregations"]["by"]["buckets"]}

    @translated
    async def paused(self) -> list[dict[str, Any]]:
        """The paused destinations of every account (the oldest pauses first)."""
        resp = await self.es.search(
            index=self.index, size=1000, sort=[{"paused_at": "asc"}],
            query={"term": {"status": "paused"}},
        )  # fmt: skip
        return [dict(h["_source"]) for h in resp["hits"]["hits"]]

    @translated
    async def replace_if(self, document: dict[str, Any], version: Version) -> bool:
        """Store ``document`` (the destination whole, so that an object such as ``filter`` is
        replaced, not merged as a partial update would) if it is still as read at ``version``;
        False when it changed meanwhile (a delivery's position, another change) or is gone."""
        try:
            await self.es.index(index=self.index, id=document["id"], document=document,
                                refresh=True, if_seq_no=version[0],
                                if_primary_term=version[1])  # fmt: skip
        except ConflictError:
            return False
        return True

    @translated
    async def delete(self, destination_id: str) -> bool:
        try:
            await self.es.delete(index=self.index, id=destination_id, refresh=True)
        except NotFoundError:
            return False
        return True


async def node_http_urls(es: AsyncElasticsearch) -> list[str]:
    """Every node's HTTP address as the cluster publishes it (``http://ip:port``), so that no
    destination points at the service's own cluster; empty when the engine does not say."""
    try:
        info = await es.nodes.info(metric="http")
    except (ApiError, TransportError):
        return []
    urls = []
    for node in info.get("nodes", {}).values():
        address = str((node.get("http") or {}).get("publish_address") or "")
        if address:
            urls.append(f"http://{address.rsplit('/', 1)[-1]}")
    return urls
