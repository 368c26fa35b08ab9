"""Writing entries: idempotent across indices, acknowledged or not reported created.

``(account_id, id)`` is unique. Each entry first claims its id in ``<prefix>-entry-ids`` with an
atomic ``create``; the claim records the index the entry goes to. A claim that exists already
means a duplicate — unless the entry it points at is missing (an earlier attempt died between
claim and write), in which case the claim is taken over and the entry written. Entries are then
``create``d in their routed index. Items the engine throttles (429) or fails (5xx) are retried
with backoff; whatever the engine never acknowledged is reported ``failed`` (safe to retry).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from service.search.client import ALL_CREATED
from service.search.indices import IndexNames

BULK_FIELDS = "errors,items.*.status,items.*.error"
RETRIES = 4
BULK_MAX_BYTES = 16 * 1024 * 1024
"""A bulk request's body at most (the engine refuses more than 100 MB; a batch of entries of
the largest size allowed would pass that)."""
BACKOFF_S = 0.5


@dataclass(slots=True)
class PreparedEntry:
    doc_id: str
    index: str
    source: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str = "failed"
    message: str = "not acknowledged by the engine"


CREATED = Outcome("created", "")
DUPLICATE = Outcome("duplicate", "")
NOT_ACKNOWLEDGED = Outcome()
_UNSENT: dict[str, Any] = {"status": 503}
_CREATED_RESULT: dict[str, Any] = {"status": 201}
"""The results of an op not sent and of one created (shared: results are only read)."""


class EngineUnavailable(TransportError):
    """The engine refused a whole request (429, 5xx): like an unreachable engine, retry later."""


def _overloaded(e: ApiError) -> bool:
    return e.meta.status == 429 or e.meta.status >= 500


def doc_id_for(account_id: str, entry_id: str) -> str:
    return f"{account_id}/{entry_id}"


def _retryable(item: dict[str, Any]) -> bool:
    status = int(item.get("status", 500))
    return status == 429 or status >= 500


def _action(index: str, doc_id: str) -> bytes:
    return orjson.dumps({"create": {"_index": index, "_id": doc_id}})


def create_op(index: str, doc_id: str, doc: dict[str, Any]) -> bytes:
    """The two NDJSON lines of one bulk ``create``, serialised once (retries reuse them);
    ``TypeError`` for a value JSON cannot carry (an integer outside 64 bits)."""
    return b"%b\n%b\n" % (_action(index, doc_id), orjson.dumps(doc))


def _groups(ops: list[bytes], max_bytes: int) -> list[list[int]]:
    """Positions of ``ops`` in consecutive groups of at most ``max_bytes`` (one op at least)."""
    groups: list[list[int]] = []
    size = max_bytes
    for i, op in enumerate(ops):
        if size + len(op) > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += len(op)
    return groups


async def _bulk_create(
    es: AsyncElasticsearch, ops: list[bytes], max_bytes: int = BULK_MAX_BYTES
) -> list[dict[str, Any]]:
    """Send each ``create`` op, in requests of at most ``max_bytes``; return each item's final
    result, retrying throttling. Once the engine refuses a whole request, the ops not yet sent
    are not sent (reported 503); when nothing at all was acknowledged, the engine is unavailable.
    """
    if sum(map(len, ops)) <= max_bytes:  # the usual case: one request
        return await _bulk_group(es, ops) if ops else []
    results: list[dict[str, Any]] = [_UNSENT] * len(ops)
    for n, group in enumerate(_groups(ops, max_bytes)):
        try:
            for i, result in zip(group, await _bulk_group(es, [ops[i] for i in group]),
                                 strict=True):  # fmt: skip
                results[i] = result
        except EngineUnavailable:
            if n == 0:
                raise
            break
    return results


async def _bulk_group(es: AsyncElasticsearch, ops: list[bytes]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [_UNSENT] * len(ops)
    pending = list(range(len(ops)))
    for attempt in range(RETRIES):
        if not pending:
            break
        if attempt:
            await asyncio.sleep(BACKOFF_S * 2 ** (attempt - 1))
        body = b"".join(ops) if attempt == 0 else b"".join([ops[i] for i in pending])
        try:
            # the client sends bytes as they are (its NDJSON serialiser passes them through)
            resp = await es.bulk(operations=body, filter_path=BULK_FIELDS)  # type: ignore[arg-type]
        except (TransportError, ApiError) as e:
            if isinstance(e, ApiError) and not _overloaded(e):
                raise
            if attempt == 0 and len(pending) == len(ops):
                raise EngineUnavailable(
                    str(e)
                ) from e  # nothing acknowledged: the caller answers 503
            continue
        if resp.body.get(ALL_CREATED) == len(pending):
            for i in pending:
                results[i] = _CREATED_RESULT
            break
        answered = [item["create"] for item in resp["items"]]
        for i, result in zip(pending, answered, strict=True):
            results[i] = result
        if not resp["errors"]:
            break
        pending = [i for i, result in zip(pending, answered, strict=True) if _retryable(result)]
    return results


async def _existing(es: AsyncElasticsearch, names: IndexNames, doc_ids: list[str]) -> set[str]:
    """Those of ``doc_ids`` whose claimed entry is really stored."""
    claims = await es.mget(index=names.entry_ids, ids=doc_ids)
    docs = [
        {"_index": c["_source"]["index"], "_id": c["_id"]} for c in claims["docs"] if c.get("found")
    ]
    if not docs:
        return set()
    entries = await es.options(ignore_status=404).mget(docs=docs)
    return {d["_id"] for d in entries["docs"] if d.get("found")}


async def store_entries(
    es: AsyncElasticsearch, names: IndexNames, entries: list[PreparedEntry]
) -> list[Outcome]:
    """Store ``entries``; one outcome per entry, in order. A repeated id is a duplicate."""
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        first.setdefault(entry.doc_id, i)
    unique_at = sorted(first.values())
    try:
        if len(unique_at) == len(entries):  # no id twice (the usual case)
            return await _store_unique(es, names, entries)
        outcomes_unique = await _store_unique(es, names, [entries[i] for i in unique_at])
    except ApiError as e:
        if _overloaded(e):
            raise EngineUnavailable(str(e)) from e
        raise
    stored = dict(zip(unique_at, outcomes_unique, strict=True))
    outcomes = []
    for i, entry in enumerate(entries):
        original = stored[first[entry.doc_id]]
        if i == first[entry.doc_id]:
            outcomes.append(original)
        elif original.status in ("created", "duplicate"):
            outcomes.append(DUPLICATE)
        else:
            outcomes.append(original)
    return outcomes


async def _store_unique(
    es: AsyncElasticsearch, names: IndexNames, entries: list[PreparedEntry]
) -> list[Outcome]:
    outcomes = [NOT_ACKNOWLEDGED] * len(entries)
    now = datetime.now(UTC).isoformat()
    entry_ops: dict[int, bytes] = {}
    claim_ops = []
    claim_sources: dict[str, bytes] = {}  # the same for every entry of an index
    for i, e in enumerate(entries):
        try:
            entry_ops[i] = create_op(e.index, e.doc_id, e.source)
        except TypeError as error:  # a value JSON cannot carry: refused before anything is written
            outcomes[i] = Outcome("rejected", f"cannot be stored: {error}")
            continue
        claim = claim_sources.get(e.index)
        if claim is None:
            claim = claim_sources[e.index] = orjson.dumps({"index": e.index, "claimed_at": now})
        claim_ops.append(b"%b\n%b\n" % (_action(names.entry_ids, e.doc_id), claim))
    storable = list(entry_ops)
    claims = await _bulk_create(es, claim_ops)
    to_write: list[int] = []
    conflicts: list[int] = []
    for i, result in zip(storable, claims, strict=True):
        status = int(result.get("status", 500))
        if status in (200, 201):
            to_write.append(i)
        elif status == 409:
            conflicts.append(i)
        else:
            outcomes[i] = Outcome("failed", _reason(result))
    if conflicts:
        stored = await _existing(es, names, [entries[i].doc_id for i in conflicts])
        orphans = []
        for i in conflicts:
            if entries[i].doc_id in stored:
                outcomes[i] = DUPLICATE
            else:
                orphans.append(i)
        await _take_over(es, names, [entries[i] for i in orphans], now)
        to_write += orphans
        to_write.sort()
    written = await _bulk_create(es, [entry_ops[i] for i in to_write])
    for i, result in zip(to_write, written, strict=True):
        status = int(result.get("status", 500))
        if status in (200, 201):
            outcomes[i] = CREATED
        elif status == 409:
            outcomes[i] = DUPLICATE
        elif status == 400:
            outcomes[i] = Outcome("rejected", _reason(result))
        else:
            outcomes[i] = Outcome("failed", _reason(result))
    return outcomes


async def _take_over(
    es: AsyncElasticsearch, names: IndexNames, orphans: list[PreparedEntry], now: str
) -> None:
    """Point claims whose entry was never stored at the index this attempt writes to."""
    if not orphans:
        return
    body: list[dict[str, Any]] = []
    for entry in orphans:
        body += [{"index": {"_index": names.entry_ids, "_id": entry.doc_id}},
                 {"index": entry.index, "claimed_at": now}]  # fmt: skip
    await es.bulk(operations=body)


def _reason(result: dict[str, Any]) -> str:
    error = result.get("error")
    if isinstance(error, dict):
        return f"engine: {error.get('type')}: {error.get('reason')}"
    return f"engine status {result.get('status')}"
