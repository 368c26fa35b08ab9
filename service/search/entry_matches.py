"""Which of some known entries of an account match a query: one search for a whole batch.

Streaming destinations filter entries by search text (``filter.q``). The delivery reads a page
of the feed (real-time gets), then asks the engine which of those entries the compiled query
matches: a search of the account's entries (the read alias and the ``account_id`` term, as every
search) restricted to the page's document ids, the query as a *named* clause, so that each hit
says whether it matched. An entry the search did not see at all was stored too recently to be
searchable yet: its indices are refreshed and the search is made again; one still not seen (the
search cannot find what the feed read: a document changed behind the service's back) counts as
matching: a destination receives an entry too many rather than stall at it.
"""

from __future__ import annotations

import logging
from typing import Any

from elasticsearch import AsyncElasticsearch

from service.search.engine_errors import engine_errors, engine_failures
from service.search.indices import IndexNames

log = logging.getLogger("auditlog")
MATCHED = "q"
"""The name of the query's clause: a hit lists it in ``matched_queries`` when it matched."""


def _document_id(account_id: str, entry_id: str) -> str:
    return f"{account_id}/{entry_id}"


async def _search(
    es: AsyncElasticsearch, names: IndexNames, account_id: str, doc_ids: list[str],
    query: dict[str, Any],
) -> dict[str, bool]:  # fmt: skip
    """Document id → whether the query matched it, of those the search sees."""
    named = {"bool": {"filter": [query], "_name": MATCHED}}
    body = {"bool": {"filter": [{"term": {"account_id": account_id}}, {"ids": {"values": doc_ids}}],
                     "should": [named]}}  # fmt: skip
    with engine_errors():  # the engine refusing the query is a 400 on q
        resp = await es.search(index=names.entries_alias, query=body, size=len(doc_ids),
                               source=False, track_total_hits=False)  # fmt: skip
    return {
        str(hit["_id"]): MATCHED in hit.get("matched_queries", ()) for hit in resp["hits"]["hits"]
    }


async def entries_matching(
    es: AsyncElasticsearch, names: IndexNames, *, account_id: str,
    entries: list[dict[str, Any]], query: dict[str, Any],
) -> set[str]:  # fmt: skip
    """The ids of those of ``entries`` (stored entries of ``account_id``, as the feed gives
    them) that ``query`` matches, and those the search cannot find even after a refresh of their
    index. A 400 (field ``q``) when the engine refuses the query."""
    if not entries:
        return set()
    doc_ids = [_document_id(account_id, str(e["id"])) for e in entries]
    seen = await _search(es, names, account_id, doc_ids, query)
    unseen = [e for e, doc_id in zip(entries, doc_ids, strict=True) if doc_id not in seen]
    if unseen:
        indices = sorted({names.entry_index_for_stamp(str(e["category"]), str(e["timestamp"]))
                          for e in unseen})  # fmt: skip
        with engine_failures():
            await es.indices.refresh(index=",".join(indices), ignore_unavailable=True)
        seen = await _search(es, names, account_id, doc_ids, query)
        lost = [doc_id for doc_id in doc_ids if doc_id not in seen]
        if lost:
            log.warning("%d entries a search does not find are delivered unfiltered: %s",
                        len(lost), lost[:3])  # fmt: skip
            seen.update(dict.fromkeys(lost, True))
    prefix = len(account_id) + 1
    return {doc_id[prefix:] for doc_id, matched in seen.items() if matched}
