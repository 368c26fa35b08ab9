"""From raw items to per-entry results: validate, route, store — the one ingest path.

The HTTP endpoints, ``auditlog import`` and the demo loader all go through
:func:`ingest_items`, so they share validation, routing and idempotency.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.validation import EntryChecks, Rejected, ValidEntry
from service.config import Settings
from service.errors import EngineUnavailable
from service.integrity.canonical import entry_digest
from service.integrity.keys import IntegrityKeys, KeysError, load_keys
from service.search.client import Engine
from service.search.indices import IndexNames
from service.search.seal_queue import SealQueue
from service.search.writer import PreparedEntry, doc_id_for, store_entries


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


async def _authenticate(
    ctx: IngestContext, keys: IntegrityKeys, batch: list[PreparedEntry]
) -> None:
    """Give each entry its digest and MAC, and, before any is written, queue the batch for the
    sealer (an entry written without its queue record would never be sealed)."""
    for entry in batch:
        source = entry.source
        digest = entry_digest(source)
        mac = keys.mac(source["account_id"], source["id"], digest)
        source["integrity"] = {"digest": digest, "mac": mac}
    if ctx.sealing:
        await SealQueue(ctx.es, ctx.names).add([(e.index, e.doc_id) for e in batch])


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
    checks = EntryChecks(datetime.now(UTC), ctx.max_skew_s, ctx.templates_dir)
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
    ctx: IngestContext, items: list[Item], account_of: dict[int, str | Rejected]
) -> list[EntryResult]:
    """Validate and store ``items``; one result per item, in order."""
    results, valid = validate_items(ctx, items, account_of)
    index_for = ctx.names.entry_index_for_stamp
    for start in range(0, len(valid), ctx.batch_size):
        batch = valid[start : start + ctx.batch_size]
        prepared = [
            PreparedEntry(
                doc_id_for(e.account_id, e.id),
                index_for(e.source["category"], e.source["timestamp"]),
                e.source,
            )
            for _, e in batch
        ]
        try:
            if ctx.keys is not None:
                await _authenticate(ctx, ctx.keys, prepared)
            outcomes = await store_entries(ctx.es, ctx.names, prepared)
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
