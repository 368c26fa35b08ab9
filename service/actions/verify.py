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

Memory grows with the account's leaf count (a dictionary entry per leaf).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from service.integrity.canonical import entry_digest
from service.integrity.checkpoints import checkpoint_hash, leaf_hash_of, signed_part
from service.integrity.keys import IntegrityKeys
from service.integrity.merkle import Frontier
from service.runtime import Runtime
from service.search.integrity_log import IntegrityLog
from service.search.log_entries import account_entries
from service.search.retention import expiring_families
from service.search.seal_queue import SealQueue

SAMPLE = 100
"""Problems listed by entry, per kind (all are counted)."""


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

    @property
    def ok(self) -> bool:
        return not (self.altered.count or self.missing.count or self.unsealed.count
                    or self.broken.count)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        problems = {name: {"count": p.count, "entries": p.sample}
                    for name, p in (("altered", self.altered), ("missing", self.missing),
                                    ("unsealed", self.unsealed))}  # fmt: skip
        broken = {"count": self.broken.count, "checkpoints": self.broken.sample}
        return {"account_id": self.account_id, "ok": self.ok, "tree_size": self.tree_size,
                "checkpoints": self.checkpoints, "entries_checked": self.entries, **problems,
                "broken": broken, "lawfully_deleted": self.lawfully_deleted,
                "pending": self.pending}  # fmt: skip


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
    leaves: list[dict[str, str]] = []
    async for segment in log.segments(account_id):
        if len(leaves) >= report.tree_size:
            break
        if int(segment["start"]) != len(leaves):
            report.broken.add(seq=None, reason=f"no segment at position {len(leaves)}")
            break
        leaves.extend(segment["leaves"])
    leaves = leaves[: report.tree_size]
    _check_checkpoints(report, keys, leaves, [c async for c in log.checkpoints(account_id)
                                              if int(c["seq"]) <= head_seq])  # fmt: skip
    position: dict[str, int] = {}
    for n, item in enumerate(leaves):
        if item["id"] in position:
            report.broken.add(seq=None, reason=f"entry {item['id']} is sealed twice")
        position[item["id"]] = n
    seen: set[str] = set()
    lag = timedelta(seconds=max(60.0, 10 * runtime.settings.seal_interval_s))
    async for source in account_entries(runtime.es, runtime.names, account_id):
        report.entries += 1
        entry_id = str(source.get("id"))
        at = position.get(entry_id)
        if at is None:
            _unsealed(report, keys, source, account_id, queued, now, lag)
            continue
        seen.add(entry_id)
        if entry_digest(source) != leaves[at]["digest"]:
            report.altered.add(id=entry_id, position=at)
    expiring = expiring_families(runtime.settings)
    for n, item in enumerate(leaves):
        if item["id"] in seen:
            continue
        max_age = expiring.get(item["category"])
        event = _instant(item["timestamp"])
        day = datetime(event.year, event.month, event.day, tzinfo=UTC)
        if max_age is not None and day + max_age <= now:
            report.lawfully_deleted += 1
        else:
            report.missing.add(id=item["id"], position=n)
    return report


def _check_checkpoints(
    report: Report, keys: IntegrityKeys, leaves: list[dict[str, str]], checkpoints: list[Any]
) -> None:
    """Signatures, the chain, and each root against the stored leaves."""
    frontier, previous = Frontier(), ""
    for checkpoint in checkpoints:
        report.checkpoints += 1
        seq = checkpoint["seq"]
        signature = checkpoint["signature"]
        if not keys.verifies(checkpoint["key_id"], signed_part(checkpoint), signature):
            report.broken.add(seq=seq, reason="the signature does not verify")
        if checkpoint["previous"] != previous:
            report.broken.add(seq=seq, reason="it does not follow the checkpoint before it")
        size = int(checkpoint["tree_size"])
        if size > len(leaves) or size < frontier.size:
            report.broken.add(seq=seq, reason=f"its tree size {size} is not in the stored log")
        else:
            while frontier.size < size:
                frontier.append(leaf_hash_of(leaves[frontier.size]))
            if frontier.root().hex() != checkpoint["root"]:
                report.broken.add(seq=seq, reason="the stored leaves do not hash to its root")
        previous = checkpoint_hash(checkpoint)


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
        and keys.mac_matches(account_id, entry_id, str(stamp["digest"]), str(stamp.get("mac")))
    )
    age = now - _instant(str(source.get("ingested_at", "1970-01-01T00:00:00Z")))
    in_flight = timedelta(0) <= age < lag or f"{account_id}/{entry_id}" in queued
    if authentic and in_flight:
        report.pending += 1
    else:
        why = "sealed late" if authentic else "not stored by the service"
        report.unsealed.add(id=entry_id, ingested_at=source.get("ingested_at"), why=why)
