"""Verifying an account's log against what the engine holds.

1. **The checkpoints**: each one's Ed25519 signature under a trusted key (the current key and
   ``previous/`` keys), each one's ``previous`` the hash of the one before, and each one's root
   the Merkle root of the leaves stored at positions 0 .. tree_size - 1.
2. **The entries**: every entry the account holds is recomputed to its digest and compared with
   its leaf: **altered** when they differ, **unsealed** when it is in no leaf though older than
   the sealing lag and not in the seal queue (indexed behind the service's back).
3. **The leaves**: a leaf whose entry is gone is **missing**, unless it is an entry of an expiring
   category past its retention (by the day of its event): **lawfully deleted**. The leaf keeps the
   category and timestamp, and they hash into the signed root, so that claim is checked too.

Leaves and checkpoints are read once, in order, as a stream; memory holds the account's
:class:`~service.integrity.leaf_index.LeafIndex` (65 bytes per leaf) and one page of entries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from service.integrity.canonical import entry_digest
from service.integrity.checkpoints import (
    checkpoint_hash,
    leaf_hash_of,
    leaf_of,
    signed_part,
    well_formed,
)
from service.integrity.keys import IntegrityKeys
from service.integrity.leaf_index import NEVER, LeafIndex
from service.integrity.merkle import Frontier
from service.runtime import Runtime
from service.search.integrity_log import IntegrityLog
from service.search.log_entries import account_entries
from service.search.retention import expiring_families
from service.search.seal_queue import SealQueue

if TYPE_CHECKING:
    from service.actions.verify_heads import HeadsCheck

SAMPLE = 100
"""Problems listed by entry, per kind (all are counted)."""
BATCH = 2000
"""Entries matched to their leaves at a time."""
Leaf = dict[str, str]
MALFORMED: Leaf = {"id": "", "category": "", "timestamp": "", "digest": "0" * 64}


@dataclass
class Problems:
    count: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **what: Any) -> None:
        self.count += 1
        if len(self.sample) < SAMPLE:
            self.sample.append(what)


@dataclass
class Report:
    account_id: str
    tree_size: int = 0
    checkpoints: int = 0
    entries: int = 0
    altered: Problems = field(default_factory=Problems)
    missing: Problems = field(default_factory=Problems)
    unsealed: Problems = field(default_factory=Problems)
    broken: Problems = field(default_factory=Problems)
    lawfully_deleted: int = 0
    pending: int = 0
    """Entries too young to be sealed yet, or still in the seal queue (not problems)."""
    heads: HeadsCheck | None = None
    """The heads a customer kept, when given (:mod:`.verify_heads`)."""

    @property
    def ok(self) -> bool:
        heads_ok = self.heads is None or self.heads.ok
        return heads_ok and not (self.altered.count or self.missing.count
                                 or self.unsealed.count or self.broken.count)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        problems = {name: {"count": p.count, "entries": p.sample}
                    for name, p in (("altered", self.altered), ("missing", self.missing),
                                    ("unsealed", self.unsealed))}  # fmt: skip
        broken = {"count": self.broken.count, "checkpoints": self.broken.sample}
        return {"account_id": self.account_id, "ok": self.ok, "tree_size": self.tree_size,
                "checkpoints": self.checkpoints, "entries_checked": self.entries, **problems,
                "broken": broken, "lawfully_deleted": self.lawfully_deleted,
                "pending": self.pending,
                **({} if self.heads is None else {"heads": self.heads.to_dict()})}  # fmt: skip


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def verify_account(
    runtime: Runtime, keys: IntegrityKeys, account_id: str, now: datetime | None = None
) -> Report:
    now = now or datetime.now(UTC)
    report = Report(account_id)
    queued = await SealQueue(runtime.es, runtime.names).pending_ids()  # before the log: see below
    log = IntegrityLog(runtime.es, runtime.names)
    head = await log.latest_checkpoint(account_id)  # the log as of now: later seals are ignored
    head_seq = int(head["seq"]) if head else 0
    report.tree_size = int(head["tree_size"]) if head else 0
    index = LeafIndex()
    expiring = expiring_families(runtime.settings)
    leaves = _leaves(report, log, account_id)
    await _check_checkpoints(report, keys, leaves, index, expiring, log.checkpoints(account_id),
                             head_seq)  # fmt: skip
    twice = index.freeze()
    lag = timedelta(seconds=max(60.0, 10 * runtime.settings.seal_interval_s))
    batch: list[dict[str, Any]] = []
    async for source in account_entries(runtime.es, runtime.names, account_id):
        batch.append(source)
        if len(batch) == BATCH:
            _check_entries(report, keys, index, batch, account_id, queued, now, lag)
            batch = []
    _check_entries(report, keys, index, batch, account_id, queued, now, lag)
    missing, report.lawfully_deleted = index.unseen(int(now.timestamp()))
    shown = missing[:SAMPLE].tolist()
    named = await _ids_at(log, account_id, {*shown, *twice})
    for position in twice:
        report.broken.add(seq=None, reason=f"entry {named.get(position)} is sealed twice")
    report.missing.count = len(missing)
    report.missing.sample = [{"id": named.get(p), "position": p} for p in shown]
    return report


async def _leaves(report: Report, log: IntegrityLog, account_id: str) -> AsyncIterator[Leaf]:
    """The stored leaves at positions 0 .. tree_size - 1, in order; a gap ends them (and is
    reported)."""
    position = 0
    async for segment in log.segments(account_id):
        if position >= report.tree_size:
            return
        stored = segment.get("leaves")
        if segment.get("start") != position or not isinstance(stored, list):
            report.broken.add(seq=None, reason=f"no segment at position {position}")
            return
        for item in stored[: report.tree_size - position]:
            yield item
            position += 1


async def _check_checkpoints(
    report: Report,
    keys: IntegrityKeys,
    leaves: AsyncIterator[Leaf],
    index: LeafIndex,
    expiring: dict[str, timedelta],
    checkpoints: AsyncIterator[dict[str, Any]],
    head_seq: int,
) -> None:
    """Signatures, the chain, and each root against the stored leaves, read once, in order (each
    leaf goes into ``index`` on the way)."""
    frontier, previous, more = Frontier(), "", True

    async def hash_up_to(size: int) -> bool:
        nonlocal more
        while more and frontier.size < size:
            item = await anext(leaves, None)
            if item is None:
                more = False
                break
            position = frontier.size
            if not well_formed(item):
                report.broken.add(seq=None, reason=f"the leaf at position {position} is not "
                                  "an id, category, timestamp and SHA-256 digest")  # fmt: skip
                entry_id = item.get("id") if isinstance(item, dict) else None
                # hashes to no root; its entry (if its id is still there) reads as altered
                item = {**MALFORMED, "id": entry_id if isinstance(entry_id, str) else ""}
            frontier.append(leaf_hash_of(item))
            index.add(item["id"], item["digest"], _lawful_from(item, expiring))
        return frontier.size == size

    async for checkpoint in checkpoints:
        if int(checkpoint["seq"]) > head_seq:
            break
        report.checkpoints += 1
        seq = checkpoint["seq"]
        signature = checkpoint["signature"]
        if not keys.verifies(checkpoint["key_id"], signed_part(checkpoint), signature):
            report.broken.add(seq=seq, reason="the signature does not verify")
        if checkpoint["previous"] != previous:
            report.broken.add(seq=seq, reason="it does not follow the checkpoint before it")
        size = int(checkpoint["tree_size"])
        if size < frontier.size or not await hash_up_to(size):
            report.broken.add(seq=seq, reason=f"its tree size {size} is not in the stored log")
        elif frontier.root().hex() != checkpoint["root"]:
            report.broken.add(seq=seq, reason="the stored leaves do not hash to its root")
        previous = checkpoint_hash(checkpoint)
    await hash_up_to(report.tree_size)  # leaves no checkpoint reached are still matched


def _lawful_from(item: Leaf, expiring: dict[str, timedelta]) -> int:
    """The Unix second from which the leaf's entry may be gone: its event's day plus the
    retention of its category (by the day of its event), or never."""
    max_age = expiring.get(item["category"])
    if max_age is None:
        return NEVER
    try:
        event = _instant(item["timestamp"])
    except ValueError:
        return NEVER  # not a time: its entry may never be gone
    return int((datetime(event.year, event.month, event.day, tzinfo=UTC) + max_age).timestamp())


def _check_entries(
    report: Report,
    keys: IntegrityKeys,
    index: LeafIndex,
    batch: list[dict[str, Any]],
    account_id: str,
    queued: set[str],
    now: datetime,
    lag: timedelta,
) -> None:
    """Each entry against its leaf: altered when its digest differs; in no leaf, unsealed unless
    it is still in flight; a second copy of a sealed entry, unsealed."""
    ids = [str(source.get("id")) for source in batch]
    for source, entry_id, at in zip(batch, ids, index.positions(ids), strict=True):
        report.entries += 1
        if at < 0:
            _unsealed(report, keys, source, account_id, queued, now, lag)
        elif index.seen[at]:
            report.unsealed.add(id=entry_id, ingested_at=source.get("ingested_at"),
                                why="a second copy of a sealed entry")  # fmt: skip
        else:
            index.seen[at] = True
            if bytes.fromhex(entry_digest(source)) != index.digest_at(at):
                report.altered.add(id=entry_id, position=at)


async def _ids_at(log: IntegrityLog, account_id: str, positions: set[int]) -> dict[int, str]:
    """The entry ids of the leaves at ``positions`` (a second read of the segments, as far as
    the last of them)."""
    out: dict[int, str] = {}
    if not positions:
        return out
    last = max(positions)
    async for segment in log.segments(account_id):
        start, stored = segment.get("start"), segment.get("leaves")
        if not isinstance(start, int) or not isinstance(stored, list) or start > last:
            break
        for n, item in enumerate(stored):
            if start + n in positions and isinstance(item, dict):
                out[start + n] = str(item.get("id"))
    return out


def _unsealed(
    report: Report,
    keys: IntegrityKeys,
    source: dict[str, Any],
    account_id: str,
    queued: set[str],
    now: datetime,
    lag: timedelta,
) -> None:
    """An entry in no leaf: pending while the service's own (its MAC checks out) and young or
    queued; otherwise unsealed. Queue and ingest time are in the engine, so only an entry the
    service authenticated may be pending."""
    entry_id = str(source.get("id"))
    stamp = source.get("integrity")
    authentic = (
        isinstance(stamp, dict)
        and stamp.get("digest") == entry_digest(source)
        and keys.mac_matches(account_id, leaf_of(source, stamp["digest"]), str(stamp.get("mac")))
    )
    age = now - _instant(str(source.get("ingested_at", "1970-01-01T00:00:00Z")))
    in_flight = timedelta(0) <= age < lag or f"{account_id}/{entry_id}" in queued
    if authentic and in_flight:
        report.pending += 1
    else:
        why = "sealed late" if authentic else "not stored by the service"
        report.unsealed.add(id=entry_id, ingested_at=source.get("ingested_at"), why=why)
