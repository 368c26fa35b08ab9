"""From raw items to per-entry results: validate, route, store — the one ingest path.

The HTTP endpoints, ``auditlog import`` and the demo loader all go through
:func:`ingest_items`, so they share validation, routing and idempotency.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.validation import EntryChecks, Rejected, ValidEntry, is_generated
from service.config import Settings
from service.errors import EngineUnavailable
from service.integrity.canonical import entry_digest
from service.integrity.checkpoints import leaf_of
from service.integrity.keys import IntegrityKeys, KeysError, load_keys
from service.search.client import Engine
from service.search.engine_errors import engine_failures
from service.search.indices import IndexNames
from service.search.seal_queue import KeptRecords, QueuedEntry, Recording, SealQueue
from service.search.writer import Outcome, PreparedEntry, doc_id_for, store_entries

log = logging.getLogger("auditlog")


@dataclass(slots=True)
class EntryResult:
    id: str | None
    status: str
    field: str | None = None
    message: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.line is not None:
            out["line"] = self.line
        if self.status in ("rejected", "failed"):
            out["error"] = {"field": self.field, "message": self.message}
        return out


@dataclass(slots=True)
class Item:
    """One entry as received: its parsed JSON (or a parse error), its line, and the bytes it took
    in the input (imports bound their chunks by them)."""

    raw: object
    line: int | None = None
    error: Rejected | None = None
    size: int = 0


@dataclass(frozen=True)
class IngestContext:
    es: Engine
    names: IndexNames
    templates_dir: Path
    max_skew_s: int
    batch_size: int
    counters: Counter[str] = field(default_factory=Counter)
    """Where failures are counted (the service's ``/metrics`` counters)."""
    keys: IntegrityKeys | None = None
    """Each stored entry carries its digest and a MAC under these keys (none: unauthenticated,
    never sealed)."""
    sealing: bool = True
    """Record each write in the sealer's queue (off: entries are authenticated, not sealed)."""
    restoring: bool = False
    """An import: ids the service generated earlier (an export's) are kept (see
    :func:`_stored_elsewhere`)."""
    streamed: Callable[[], Collection[str]] | None = None
    """The accounts whose entries this process streams now: each entry created for one of them
    is handed to :attr:`written`."""
    written: Callable[[dict[str, tuple[dict[str, Any], int]]], None] | None = None
    """Takes entries just created: document id → the document as stored and its size in bytes
    of JSON (the feed serves them from memory)."""
    kept_records: KeptRecords | None = None
    """The queue records this process's sealer takes from memory (see :class:`KeptRecords`)."""

    @classmethod
    def for_settings(
        cls, es: Engine, settings: Settings, counters: Counter[str] | None = None
    ) -> IngestContext:
        """The context of the service, the command line and the demo loader alike."""
        return cls(
            es=es,
            names=IndexNames(settings.index_prefix),
            templates_dir=settings.templates_dir,
            max_skew_s=settings.max_future_skew_s,
            batch_size=settings.bulk_batch_size,
            counters=Counter() if counters is None else counters,
            keys=load_keys(_keys_dir(settings)),
            sealing=settings.sealing,
        )


async def _store(
    ctx: IngestContext, prepared: list[PreparedEntry], later: list[Coroutine[Any, Any, None]] | None
) -> list[Outcome]:
    """Authenticate (and queue for sealing) and write one batch; its outcomes, in order (their
    record for the sealer left in ``later``, if given)."""
    recording = _authenticate(ctx, ctx.keys, prepared) if ctx.keys is not None else None
    streamed = ctx.streamed() if ctx.streamed is not None else ()
    wanted: dict[str, dict[str, Any]] = {}
    for e in prepared if streamed else ():
        if e.source["account_id"] in streamed:
            wanted.setdefault(e.doc_id, e.source)  # an id sent twice: the first is stored
    created: dict[str, int] | None = {} if wanted and ctx.written is not None else None
    first = recording.stored if recording is not None else None
    try:
        outcomes = await store_entries(ctx.es, ctx.names, prepared, created, first)
    finally:
        if recording is not None and not recording.stored.created:
            _queue(ctx).forget(recording)
    if created and ctx.written is not None:
        ctx.written({doc_id: (wanted[doc_id], size) for doc_id, size in created.items()
                     if doc_id in wanted})  # fmt: skip
    if recording is not None and recording.stored.created:
        _queue(ctx).recorded(recording)
        outcome = _record_outcome(ctx, recording.record_id, prepared, outcomes)
        if later is None:
            await outcome
        else:
            later.append(outcome)
    return outcomes


def _queue(ctx: IngestContext) -> SealQueue:
    return SealQueue(ctx.es, ctx.names, ctx.kept_records)


async def _stored_elsewhere(ctx: IngestContext, batch: list[PreparedEntry]) -> set[str]:
    """Document ids of the batch's imported generated ids that the account already holds. A
    generated id has no claim, so an entry stored under one is found by a search: the import
    of an export whose timestamp or category was edited would otherwise store it twice."""
    if not ctx.restoring:
        return set()
    wanted = [p for p in batch if p.claim and is_generated(str(p.source["id"]))]
    if not wanted:
        return set()
    pairs = [{"bool": {"filter": [{"term": {"account_id": p.source["account_id"]}},
                                  {"term": {"id": p.source["id"]}}]}} for p in wanted]  # fmt: skip
    with engine_failures():
        found = await ctx.es.search(
            index=ctx.names.entries_alias, size=len(pairs), source_includes=["account_id", "id"],
            query={"bool": {"should": pairs, "minimum_should_match": 1}},
        )  # fmt: skip
    hits = found["hits"]["hits"]
    return {doc_id_for(h["_source"]["account_id"], h["_source"]["id"]) for h in hits}


def _authenticate(
    ctx: IngestContext, keys: IntegrityKeys, batch: list[PreparedEntry]
) -> Recording | None:
    """Give each entry its digest and MAC; when sealing is on, the batch's record for the
    sealer's queue, which the writer creates before any entry (an entry written without it
    would never be sealed)."""
    queued = []
    for entry in batch:
        source = entry.source
        digest = entry_digest(source)
        leaf = leaf_of(source, digest)
        assert leaf is not None  # a validated entry has every field
        mac = keys.mac(source["account_id"], leaf)
        source["integrity"] = {"digest": digest, "mac": mac}
        queued.append(QueuedEntry(entry.index, entry.doc_id, leaf))
    return _queue(ctx).record(queued, keys.queue_mac) if ctx.sealing else None


async def _record_outcome(
    ctx: IngestContext, record_id: str, batch: list[PreparedEntry], outcomes: list[Outcome]
) -> None:
    """Tell the sealer, under the MAC key, which entries the engine created (sealed straight
    from the record) and which it failed or found already there (looked up later). Not
    recorded, the sealer looks every entry up once the write deadline passed: sealing is late,
    never lost, so the entries stay acknowledged."""
    pairs = list(zip(batch, outcomes, strict=True))
    created = [e.doc_id for e, o in pairs if o.status == "created"]
    # a duplicate may be this request's own write, retried after a timeout: look it up; one
    # created under an earlier claim may have been stored (and sealed) before: sealed from the
    # record, but checked against the log (created and unsure)
    unsure = [e.doc_id for e, o in pairs if o.status in ("failed", "duplicate") or o.reclaimed]
    assert ctx.keys is not None
    mac = ctx.keys.outcome_mac(record_id, created, unsure)
    try:
        await _queue(ctx).written(
            record_id, created, unsure, mac, everything=len(created) == len(batch)
        )
    except EngineUnavailable as e:
        ctx.counters["seal_outcome_failures"] += 1
        log.warning("the outcome of seal queue record %s was not recorded: %s", record_id, e)


def _keys_dir(settings: Settings) -> Path:
    if settings.keys_dir is None:
        raise KeysError(
            "AUDITLOG_KEYS_DIR is not set: every stored entry is authenticated with the integrity "
            "keys (create them once with `auditlog integrity init-keys DIR`)"
        )
    return settings.keys_dir


def summarize(results: list[EntryResult]) -> dict[str, Any]:
    counts = Counter(r.status for r in results)
    return {
        "results": [r.to_dict() for r in results],
        "created": counts["created"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "failed": counts["failed"],
    }


def _raw_id(raw: object) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return str(raw["id"])
    return None


def validate_items(
    ctx: IngestContext, items: list[Item], account_of: dict[int, str | Rejected]
) -> tuple[list[EntryResult], list[tuple[int, ValidEntry]]]:
    """Results with rejections filled in, and the valid entries by position."""
    checks = EntryChecks(datetime.now(UTC), ctx.max_skew_s, ctx.templates_dir, ctx.restoring)
    results: list[EntryResult] = []
    valid: list[tuple[int, ValidEntry]] = []
    for i, item in enumerate(items):
        account = account_of.get(i)
        try:
            if item.error is not None:
                raise item.error
            if isinstance(account, Rejected):
                raise account
            assert account is not None
            entry = checks.entry(item.raw, account)
        except Rejected as e:
            rejected = EntryResult(_raw_id(item.raw), "rejected", e.field, e.message, item.line)
            results.append(rejected)
        else:
            results.append(EntryResult(entry.id, "failed", line=item.line))
            valid.append((i, entry))
    return results, valid


async def ingest_items(
    ctx: IngestContext,
    items: list[Item],
    account_of: dict[int, str | Rejected],
    later: list[Coroutine[Any, Any, None]] | None = None,
) -> list[EntryResult]:
    """Validate and store ``items``; one result per item, in order. With ``later``, the
    batches' outcomes for the sealer are recorded by the coroutines left there, for the caller
    to run once it has answered: they only let the sealer seal sooner (an outcome never recorded
    has the sealer look the batch's entries up after the write deadline), so a client need not
    wait for them."""
    results, valid = validate_items(ctx, items, account_of)
    index_for = ctx.names.entry_index_for_stamp
    for start in range(0, len(valid), ctx.batch_size):
        batch = valid[start : start + ctx.batch_size]
        prepared = [
            PreparedEntry(
                doc_id_for(e.account_id, e.id),
                index_for(e.source["category"], e.source["timestamp"]),
                e.source,
                claim=not e.generated,
            )
            for _, e in batch
        ]
        try:
            elsewhere = await _stored_elsewhere(ctx, prepared)
            if elsewhere:  # an import of an edited export: stored already, nothing to write
                for (i, _), entry in zip(batch, prepared, strict=True):
                    if entry.doc_id in elsewhere:
                        results[i].status = "duplicate"
                kept = [k for k, entry in enumerate(prepared) if entry.doc_id not in elsewhere]
                batch, prepared = [batch[k] for k in kept], [prepared[k] for k in kept]
            outcomes = await _store(ctx, prepared, later) if prepared else []
        except EngineUnavailable:
            if start == 0:
                raise  # nothing stored: the whole request is unavailable
            for i, _ in valid[start:]:
                results[i].message = "the engine became unavailable; retry with the same id"
            break
        for (i, _), outcome in zip(batch, outcomes, strict=True):
            results[i].status = outcome.status
            if outcome.status in ("failed", "rejected"):
                results[i].message = outcome.message
    return results
