"""Writing entries: idempotent across indices, acknowledged or not reported created.

``(account_id, id)`` is unique. Each entry first claims its id in ``<prefix>-entry-ids`` with an
atomic ``create``; the claim records the index the entry goes to and when it was claimed.
Entries are then ``create``d in their routed index. Items the engine throttles (429) or fails
(5xx) are retried with backoff; whatever the engine never acknowledged is reported ``failed``
(safe to retry).

A claim that exists already is resolved without a second copy, whatever the timing:

- the entry it points at is stored: ``duplicate`` (nothing written);
- it is younger than :data:`CLAIM_LEASE_S` and points at the index this attempt writes to: the
  entry is ``create``d there (the engine's own ``_id`` check decides between ``created`` and
  ``duplicate``);
- younger, pointing at another index: the first attempt may still complete, so this one is
  ``failed`` with "retry";
- older than the lease (the first attempt died between claim and write): the claim is taken
  over by a conditional update (``if_seq_no``/``if_primary_term``: of the attempts taking it over
  at once, whatever their index, one wins and the others are ``failed`` with "retry"), then the
  entry is written.

No attempt that can still complete loses its claim (see :data:`CLAIM_LEASE_S`). The usual paths
write nothing more than the claim and the entry; a resend writes nothing.

A batch may carry a document the engine must create before any of its entries (the sealer's
queue record, :class:`Preceding`): it is sent first in the claims' request, and unless it is
created no entry is written (the engine overloaded: the batch is unavailable; refused: each entry
is ``failed``).

An id the service generated (``PreparedEntry.claim`` false) lives in a namespace no client can
send and is never resent, so its entry is written without a claim; a ``409`` for it can only be
this attempt's own earlier write of it, acknowledged late, so it is ``created``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from service.errors import EngineUnavailable, engine_unavailable
from service.search.client import ALL_CREATED, CLIENT_RETRIES, REQUEST_TIMEOUT_S
from service.search.indices import IndexNames

BULK_FIELDS = "errors,items.*.status,items.*.error"
RETRIES = 4
BULK_MAX_BYTES = 16 * 1024 * 1024
"""A bulk request's body at most (the engine refuses more than 100 MB; a batch of entries of
the largest size allowed would pass that)."""
BACKOFF_S = 0.5
WRITER_TIMEOUT_S = RETRIES * (CLIENT_RETRIES + 1) * REQUEST_TIMEOUT_S + BACKOFF_S * (
    2 ** (RETRIES - 1) - 1
)
"""The longest one batch's writes can take: :data:`RETRIES` bulk calls, each up to the client's
tries of :data:`REQUEST_TIMEOUT_S`, and the backoffs between them (363.5 s)."""
CLAIM_LEASE_S = 600.0
"""How long a claim whose entry is not stored yet belongs to the attempt that made it. An attempt
starts no entry write later than ``CLAIM_LEASE_S - WRITER_TIMEOUT_S`` after it claimed (on its
monotonic clock), and a write lasts at most :data:`WRITER_TIMEOUT_S`: no attempt that can still
complete loses its claim. Instances' wall clocks must agree to well under the difference (NTP)."""
IN_FLIGHT = (
    "an earlier request has claimed this id and may still be storing it: retry with the same "
    "entry (answered duplicate once stored), or after 10 minutes with another timestamp or category"
)
TOO_LATE = "not written: the batch took too long to reach its write; retry with the same id"
UNRECORDED = "not written: the batch could not be recorded for sealing; retry"


@dataclass(slots=True)
class PreparedEntry:
    doc_id: str
    index: str
    source: dict[str, Any]
    claim: bool = True
    """False for an id the service generated: no client can send it, so it needs no claim."""


@dataclass(slots=True)
class Preceding:
    """A document the engine must create before any entry of the batch is written (the
    sealer's queue record): sent in the claims' request, so it costs no round trip of its own.
    Unless the engine created it, no entry is written (see the module)."""

    op: bytes
    """Its bulk ``create`` lines (:func:`create_op`)."""
    also: bytes = b""
    """Bulk lines sent right after it, whose outcome does not matter to the batch (the seal
    queue's :data:`~service.search.seal_queue.WRITERS`)."""
    created: bool = False
    """Set once the engine created it."""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str = "failed"
    message: str = "not acknowledged by the engine"
    reclaimed: bool = False
    """Created under a claim that existed before this attempt (a retry's, or one taken over):
    the id may have been stored before, and removed since."""


CREATED = Outcome("created", "")
RECLAIMED = Outcome("created", "", reclaimed=True)
DUPLICATE = Outcome("duplicate", "")
NOT_ACKNOWLEDGED = Outcome()
_UNSENT: dict[str, Any] = {"status": 503}
_CREATED_RESULT: dict[str, Any] = {"status": 201}
"""The results of an op not sent and of one created (shared: results are only read)."""


def _overloaded(e: ApiError) -> bool:
    return e.meta.status == 429 or e.meta.status >= 500


def doc_id_for(account_id: str, entry_id: str) -> str:
    return f"{account_id}/{entry_id}"


def _retryable(item: dict[str, Any]) -> bool:
    status = int(item.get("status", 500))
    return status == 429 or status >= 500


def _action(index: str, doc_id: str) -> bytes:
    return orjson.dumps({"create": {"_index": index, "_id": doc_id}})


def index_op(index: str, doc_id: str, doc: dict[str, Any]) -> bytes:
    """The two NDJSON lines of one bulk ``index`` (create or replace)."""
    return b"%b\n%b\n" % (
        orjson.dumps({"index": {"_index": index, "_id": doc_id}}),
        orjson.dumps(doc),
    )


def create_op(index: str, doc_id: str, doc: dict[str, Any]) -> bytes:
    """The two NDJSON lines of one bulk ``create``, serialised once (retries reuse them);
    ``TypeError`` for a value JSON cannot carry (an integer outside 64 bits)."""
    return _create_lines(index, doc_id, orjson.dumps(doc))


def _create_lines(index: str, doc_id: str, document: bytes) -> bytes:
    return b"%b\n%b\n" % (_action(index, doc_id), document)


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
    es: AsyncElasticsearch,
    ops: list[bytes],
    max_bytes: int = BULK_MAX_BYTES,
    start_by: float | None = None,
) -> list[dict[str, Any]]:
    """Send each ``create`` op (or ``index``), in requests of at most ``max_bytes``; return each
    item's final result, retrying throttling. Once the engine refuses a whole request, the ops
    not yet sent are not sent (reported 503); when nothing at all was acknowledged, the engine
    is unavailable.
    No request starts after ``start_by`` (``time.monotonic()``): its ops are reported 503 unsent.
    """
    if start_by is not None and time.monotonic() > start_by:
        return [_UNSENT] * len(ops)
    if sum(map(len, ops)) <= max_bytes:  # the usual case: one request
        return await _bulk_group(es, ops) if ops else []
    results: list[dict[str, Any]] = [_UNSENT] * len(ops)
    for n, group in enumerate(_groups(ops, max_bytes)):
        if start_by is not None and time.monotonic() > start_by:
            break
        try:
            for i, result in zip(
                group, await _bulk_group(es, [ops[i] for i in group]), strict=True
            ):
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
            if attempt == 0 and len(pending) == len(ops):  # nothing acknowledged: a 503
                raise engine_unavailable(detail=str(e)) from e
            continue
        if resp.body.get(ALL_CREATED) == len(pending):
            for i in pending:
                results[i] = _CREATED_RESULT
            break
        answered = [next(iter(item.values())) for item in resp["items"]]  # create, or index
        for i, result in zip(pending, answered, strict=True):
            results[i] = result
        if not resp["errors"]:
            break
        pending = [i for i, result in zip(pending, answered, strict=True) if _retryable(result)]
    return results


@dataclass(frozen=True, slots=True)
class _Claim:
    index: str
    claimed_at: datetime
    seq_no: int
    primary_term: int


async def _claims(
    es: AsyncElasticsearch, names: IndexNames, doc_ids: list[str]
) -> dict[str, _Claim]:
    """The stored claims of ``doc_ids`` (a claim deleted meanwhile is absent)."""
    found = await es.mget(index=names.entry_ids, ids=doc_ids)
    return {
        c["_id"]: _Claim(
            index=c["_source"]["index"],
            claimed_at=_instant(c["_source"]["claimed_at"]),
            seq_no=c["_seq_no"],
            primary_term=c["_primary_term"],
        )
        for c in found["docs"]
        if c.get("found")
    }


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _stored(es: AsyncElasticsearch, docs: list[tuple[str, str]]) -> tuple[set[str], set[str]]:
    """Those of ``(index, doc_id)`` whose entry is stored, and those the engine could not tell
    (a shard failed, the index is closed); a missing index holds nothing."""
    if not docs:
        return set(), set()
    body = [{"_index": index, "_id": doc_id} for index, doc_id in docs]
    entries = await es.options(ignore_status=404).mget(docs=body)
    stored = {d["_id"] for d in entries["docs"] if d.get("found")}
    unknown = {
        d["_id"]
        for d in entries["docs"]
        if "error" in d and d["error"].get("type") != "index_not_found_exception"
    }
    return stored, unknown


async def store_entries(
    es: AsyncElasticsearch,
    names: IndexNames,
    entries: list[PreparedEntry],
    created: dict[str, int] | None = None,
    first: Preceding | None = None,
) -> list[Outcome]:
    """Store ``entries``; one outcome per entry, in order. A repeated id is a duplicate.
    :class:`EngineUnavailable` when the engine could not be asked or refused the whole request
    (429, 5xx, unreachable) before anything of it was acknowledged. With ``created``, each entry
    this call made the engine create is added to it: document id → its size as stored (bytes of
    JSON). With ``first``, no entry is written unless the engine creates it first."""
    at: dict[str, int] = {}
    for i, entry in enumerate(entries):
        at.setdefault(entry.doc_id, i)
    unique_at = sorted(at.values())
    try:
        if len(unique_at) == len(entries):  # no id twice (the usual case)
            return await _store_unique(es, names, entries, created, first)
        outcomes_unique = await _store_unique(
            es, names, [entries[i] for i in unique_at], created, first
        )
    except ApiError as e:
        if _overloaded(e):
            raise engine_unavailable(detail=str(e)) from e
        raise
    except TransportError as e:
        raise engine_unavailable(detail=str(e)) from e
    stored = dict(zip(unique_at, outcomes_unique, strict=True))
    outcomes = []
    for i, entry in enumerate(entries):
        original = stored[at[entry.doc_id]]
        if i == at[entry.doc_id]:
            outcomes.append(original)
        elif original.status in ("created", "duplicate"):
            outcomes.append(DUPLICATE)
        else:
            outcomes.append(original)
    return outcomes


async def _store_unique(
    es: AsyncElasticsearch,
    names: IndexNames,
    entries: list[PreparedEntry],
    created: dict[str, int] | None,
    first: Preceding | None,
) -> list[Outcome]:
    outcomes = [NOT_ACKNOWLEDGED] * len(entries)
    now = datetime.now(UTC)
    write_by = time.monotonic() + CLAIM_LEASE_S - WRITER_TIMEOUT_S  # see CLAIM_LEASE_S
    entry_ops: dict[int, bytes] = {}
    sizes: dict[int, int] = {}
    claim_ops = []
    claim_sources: dict[str, bytes] = {}  # the same for every entry of an index
    for i, e in enumerate(entries):
        try:
            document = orjson.dumps(e.source)
        except TypeError as error:  # a value JSON cannot carry: refused before anything is written
            outcomes[i] = Outcome("rejected", f"cannot be stored: {error}")
            continue
        entry_ops[i] = _create_lines(e.index, e.doc_id, document)
        sizes[i] = len(document)
        if not e.claim:
            continue
        claim = claim_sources.get(e.index)
        if claim is None:
            claim = claim_sources[e.index] = _claim_source(e.index, now)
        claim_ops.append(b"%b\n%b\n" % (_action(names.entry_ids, e.doc_id), claim))
    claimed = [i for i in entry_ops if entries[i].claim]
    head = [first.op, *([first.also] if first.also else [])] if first and entry_ops else []
    sent = await _bulk_create(es, [*head, *claim_ops]) if head or claim_ops else []
    claims = sent[len(head) :]
    if head and first is not None:
        # a 409 is this attempt's own create, answered late and sent again: the document's id
        # is drawn afresh for each batch
        first.created = int(sent[0].get("status", 500)) in (201, 409)
        if not first.created:  # its claims stay: a retry of the same entries goes on with them
            if _retryable(sent[0]):  # overloaded: the batch is unavailable, as a whole
                raise engine_unavailable(detail=f"{UNRECORDED}: {_reason(sent[0])}")
            for i in entry_ops:
                outcomes[i] = Outcome("failed", f"{UNRECORDED} ({_reason(sent[0])})")
            return outcomes
    to_write = [i for i in entry_ops if not entries[i].claim]
    conflicts: list[int] = []
    for i, result in zip(claimed, claims, strict=True):
        status = int(result.get("status", 500))
        if status in (200, 201):
            to_write.append(i)
        elif status == 409:
            conflicts.append(i)
        else:
            outcomes[i] = Outcome("failed", _reason(result))
    reclaimed: set[int] = set()
    if conflicts:
        reclaimed = set(await _resolve_conflicts(es, names, entries, conflicts, outcomes, now))
        to_write += reclaimed
    to_write.sort()
    written = await _bulk_create(es, [entry_ops[i] for i in to_write], start_by=write_by)
    for i, result in zip(to_write, written, strict=True):
        if result is _UNSENT and time.monotonic() > write_by:
            outcomes[i] = Outcome("failed", TOO_LATE)
            continue
        status = int(result.get("status", 500))
        if status in (200, 201):
            outcomes[i] = RECLAIMED if i in reclaimed else CREATED
            if created is not None:
                created[entries[i].doc_id] = sizes[i]
        elif status == 409:
            outcomes[i] = DUPLICATE if entries[i].claim else CREATED
        elif status == 400:
            outcomes[i] = Outcome("rejected", _reason(result))
        else:
            outcomes[i] = Outcome("failed", _reason(result))
    return outcomes


def _claim_source(index: str, now: datetime) -> bytes:
    return orjson.dumps({"index": index, "claimed_at": now.isoformat()})


async def _resolve_conflicts(
    es: AsyncElasticsearch,
    names: IndexNames,
    entries: list[PreparedEntry],
    conflicts: list[int],
    outcomes: list[Outcome],
    now: datetime,
) -> list[int]:
    """Settle the entries whose id was claimed already (the module's rules): their outcomes are
    set, and those to write into their index are returned."""
    claims = await _claims(es, names, [entries[i].doc_id for i in conflicts])
    claim_of = {i: claims.get(entries[i].doc_id) for i in conflicts}
    lapsed = {
        i
        for i, claim in claim_of.items()
        if claim is not None and (now - claim.claimed_at).total_seconds() > CLAIM_LEASE_S
    }
    looked_up = [  # a young claim into this attempt's own index needs no look-up
        (claim.index, entries[i].doc_id)
        for i, claim in claim_of.items()
        if claim is not None and (i in lapsed or claim.index != entries[i].index)
    ]
    stored, unknown = await _stored(es, looked_up)
    to_write: list[int] = []
    expired: list[int] = []
    for i, claim in claim_of.items():
        if claim is None or entries[i].doc_id in unknown:  # deleted meanwhile, or unreadable
            outcomes[i] = Outcome("failed", IN_FLIGHT)
        elif entries[i].doc_id in stored:
            outcomes[i] = DUPLICATE
        elif i in lapsed:  # taken over even into its own index: one taker wins, whatever the index
            expired.append(i)
        elif claim.index == entries[i].index:
            to_write.append(i)
        else:
            outcomes[i] = Outcome("failed", IN_FLIGHT)
    if expired:
        abandoned = [(entries[i], claims[entries[i].doc_id]) for i in expired]
        for i, won in zip(expired, await _take_over(es, names, abandoned, now), strict=True):
            if won:
                to_write.append(i)
            else:
                outcomes[i] = Outcome("failed", IN_FLIGHT)
    return to_write


async def _take_over(
    es: AsyncElasticsearch,
    names: IndexNames,
    abandoned: list[tuple[PreparedEntry, _Claim]],
    now: datetime,
) -> list[bool]:
    """Point each abandoned claim at the index this attempt writes to, provided nobody changed
    it since it was read; whether each was taken."""
    ops = []
    for entry, claim in abandoned:
        target = {"_index": names.entry_ids, "_id": entry.doc_id}
        condition = {"if_seq_no": claim.seq_no, "if_primary_term": claim.primary_term}
        action = {"index": {**target, **condition}}
        ops.append(b"%b\n%b\n" % (orjson.dumps(action), _claim_source(entry.index, now)))
    body = b"".join(ops)  # sent as it is (see _bulk_group)
    resp = await es.bulk(operations=body, filter_path="items.*.status")  # type: ignore[arg-type]
    return [item["index"]["status"] in (200, 201) for item in resp["items"]]


def _reason(result: dict[str, Any]) -> str:
    error = result.get("error")
    if isinstance(error, dict):
        return f"engine: {error.get('type')}: {error.get('reason')}"
    return f"engine status {result.get('status')}"
