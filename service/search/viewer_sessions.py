"""Viewer links and viewer sessions as documents of ``<prefix>-state``, by the hash of their token.

A **link** (``viewer-link:<sha256 of its token>``) is minted for one person and opened once: it is
consumed with a conditional update (``if_seq_no``/``if_primary_term``), so of two clicks, or two
instances, exactly one gets a session. A **session** (``viewer-session:<sha256 of its token>``) is
what the person's cookie names. Only hashes of tokens are stored: a copy of the index opens
nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from service.search.engine_errors import translated
from service.search.indices import IndexNames


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _link(token: str) -> str:
    return f"viewer-link:{token_hash(token)}"


def _session(token: str) -> str:
    return f"viewer-session:{token_hash(token)}"


def _plain(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """The document without the engine's version fields."""
    if stored is None:
        return None
    return {k: v for k, v in stored.items() if k not in ("_seq_no", "_primary_term")}


class ViewerStore:
    def __init__(self, es: AsyncElasticsearch, names: IndexNames) -> None:
        self.es, self.index = es, names.state

    async def _get(self, doc_id: str) -> dict[str, Any] | None:
        try:
            stored = await self.es.get(index=self.index, id=doc_id)
        except NotFoundError:
            return None
        return {**stored["_source"], "_seq_no": stored["_seq_no"],
                "_primary_term": stored["_primary_term"]}  # fmt: skip

    @translated
    async def put_link(self, token: str, link: dict[str, Any]) -> None:
        await self.es.create(index=self.index, id=_link(token),
                             document={"kind": "viewer_link", **link})  # fmt: skip

    @translated
    async def get_link(self, token: str) -> dict[str, Any] | None:
        return _plain(await self._get(_link(token)))

    @translated
    async def consume_link(self, token: str, used_at: str) -> tuple[str, dict[str, Any] | None]:
        """Mark the link used, once: ``("ok", link)``; ``("used", link)`` when it was used
        already (by this request's rival too); ``("unknown", None)``."""
        stored = await self._get(_link(token))
        link = _plain(stored)
        if stored is None or link is None:
            return "unknown", None
        if link.get("used_at"):
            return "used", link
        try:
            await self.es.index(
                index=self.index, id=_link(token), document={**link, "used_at": used_at},
                if_seq_no=stored["_seq_no"], if_primary_term=stored["_primary_term"],
            )  # fmt: skip
        except ConflictError:
            return "used", link
        return "ok", link

    @translated
    async def put_session(self, token: str, session: dict[str, Any]) -> None:
        await self.es.create(index=self.index, id=_session(token),
                             document={"kind": "viewer_session", **session})  # fmt: skip

    @translated
    async def get_session(self, token: str) -> dict[str, Any] | None:
        return _plain(await self._get(_session(token)))

    @translated
    async def end_session(self, token: str) -> None:
        await self.es.options(ignore_status=404).delete(index=self.index, id=_session(token))

    @translated
    async def delete_expired(self, before: str) -> int:
        """Delete up to 1,000 links and sessions that expired before ``before`` (a
        housekeeping round; the next takes the rest); how many."""
        query = {"bool": {"filter": [{"terms": {"kind": ["viewer_link", "viewer_session"]}},
                                     {"range": {"expires_at": {"lt": before}}}]}}  # fmt: skip
        await self.es.indices.refresh(index=self.index)  # it is never refreshed on a schedule
        resp = await self.es.search(index=self.index, query=query, size=1000, source=False)
        hits = resp["hits"]["hits"]
        if hits:
            operations = [{"delete": {"_index": self.index, "_id": h["_id"]}} for h in hits]
            await self.es.bulk(operations=operations)
        return len(hits)
