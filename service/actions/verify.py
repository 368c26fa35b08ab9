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
from service.search.retention import expiring_families
from service.search.seal_queue import SealQueue
from service.search.unsealed import account_entries

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
    log = IntegrityLog(runtime.es, runtime.names)
    leaves: list[dict[str, str]] = []
    async for segment in log.segments(account_id):
        if int(segment["start"]) != len(leaves):
            report.broken.add(seq=None, reason=f"no segment at position {len(leaves)}")
            break
        leaves.extend(segment["leaves"])
    frontier, previous = Frontier(), ""
    async for checkpoint in log.checkpoints(account_id):
        report.checkpoints += 1
        seq = checkpoint["seq"]
        if not keys.verifies(
            checkpoint["key_id"], signed_part(checkpoint), checkpoint["signature"]
        ):
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
        report.tree_size = max(report.tree_size, size)
    position = {item["id"]: n for n, item in enumerate(leaves)}
    seen: set[str] = set()
    queued = await SealQueue(runtime.es, runtime.names).pending_ids()
    lag = timedelta(seconds=max(60.0, 10 * runtime.settings.seal_interval_s))
    async for source in account_entries(runtime.es, runtime.names, account_id):
        report.entries += 1
        entry_id = source["id"]
        n = position.get(entry_id)
        if n is None or n >= report.tree_size:
            age = now - _instant(str(source.get("ingested_at", "1970-01-01T00:00:00Z")))
            young = timedelta(0) <= age < lag  # an ingest time in the future is not young
            if young or f"{account_id}/{entry_id}" in queued:
                report.pending += 1
            else:
                report.unsealed.add(id=entry_id, ingested_at=source.get("ingested_at"))
            continue
        seen.add(entry_id)
        if entry_digest(source) != leaves[n]["digest"]:
            report.altered.add(id=entry_id, position=n)
    expiring = expiring_families(runtime.settings)
    for n, item in enumerate(leaves[: report.tree_size]):
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
