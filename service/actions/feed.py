"""The feed: an account's entries in the order of its log, by position, without gaps.

A **position** is an entry's place in the account's log, counted from 1: the sealer gives each
stored entry the next one, in the order the service wrote them (ingest order, not event time, so
an entry ingested late with an old timestamp comes at the end). A reader asks for the entries
after the last position it has and gets the next ones in order, each with its position, and the
position to continue from. Only positions under the latest signed checkpoint are served: every
entry of a smaller position was in the log before it, so a reader that resumes from its last
position never misses one, whatever the writers and instances do meanwhile. The feed lags ingest
by the sealing (at most ``AUDITLOG_SEAL_INTERVAL_S`` plus the time a seal takes, and a second).

An entry deleted by retention (CRM integration entries after 30 days: retention deletes their
whole daily index) keeps its position, and is left out: the positions served may skip. Any other
entry the log holds but the engine does not is served as what the log knows of it, marked
``missing`` (never silently skipped: that is what the log is there to show). Each entry carries
the digest its leaf holds (``entry_digest``), so a reader can check it against the log's proofs.
A log whose checkpoint covers positions no segment holds is damaged: the read is refused (503
``log_damaged``) rather than stalled or skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from service.errors import bad_request
from service.integrity.checkpoints import public
from service.runtime import Runtime
from service.search.entries import HIDDEN_FIELDS
from service.search.integrity_log import IntegrityLog
from service.search.log_entries import fetch_entries
from service.vocabulary import EXPIRING_CATEGORIES, STORED_TIMESTAMP

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class FeedPage:
    entries: list[dict[str, Any]]
    next_after: int
    """The position to ask for entries after next time (the last one read, or ``after``)."""
    head: int
    """The log's size under its latest signed checkpoint: positions up to it can be read."""
    checkpoint: dict[str, Any] | None = None
    """That checkpoint, as ``GET /v1/integrity/head`` shows it."""

    @property
    def more(self) -> bool:
        return self.next_after < self.head

    def to_dict(self) -> dict[str, Any]:
        return {"entries": self.entries, "next_after": self.next_after, "head": self.head,
                "more": self.more}  # fmt: skip


def _local_time(stamp: str, tz: ZoneInfo) -> str:
    if tz.key == "UTC" and STORED_TIMESTAMP.fullmatch(stamp):
        return stamp[:-1] + "+00:00"
    instant = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return instant.astimezone(tz).isoformat(timespec="milliseconds")


def _shown(source: dict[str, Any], position: int, digest: str, tz: ZoneInfo) -> dict[str, Any]:
    entry = {"position": position, **source}  # copied whole, then trimmed: a delivery shapes
    for hidden in HIDDEN_FIELDS:  # every entry it sends, and a dict comprehension costs more
        entry.pop(hidden, None)
    entry["local_time"] = _local_time(str(source["timestamp"]), tz)
    entry["entry_digest"] = digest
    return entry


def _missing(account_id: str, leaf: dict[str, str], position: int, tz: ZoneInfo) -> dict[str, Any]:
    """What the log knows of an entry the engine no longer holds, as an entry a reader can
    show: an error, saying so."""
    return {
        "position": position, "id": leaf["id"], "account_id": account_id,
        "timestamp": leaf["timestamp"], "category": leaf["category"], "type": "error",
        "actor": {"type": "system", "id": "auditlog", "name": "auditlog"},
        "action": "auditlog.entry_missing",
        "message": f"The entry {leaf['id']} is in the account's log but no longer stored: it "
                   "was deleted or altered outside the service",
        "metadata": {}, "missing": True, "entry_digest": leaf["digest"],
        "local_time": _local_time(leaf["timestamp"], tz),
    }  # fmt: skip


def _size(checkpoint: dict[str, Any] | None) -> int:
    return int(checkpoint["tree_size"]) if checkpoint else 0


async def read_feed(
    runtime: Runtime, account_id: str, *, after: int, limit: int, tz: ZoneInfo
) -> FeedPage:
    """The account's entries of positions ``after + 1`` to ``after + limit`` that exist; a 400
    naming ``after`` past the head (no reader was given such a position: resuming from it would
    skip the entries sealed up to it)."""
    log = IntegrityLog(runtime.es, runtime.names)
    # as of the last scheduled refresh: a checkpoint visible means its segment is (written first)
    latest = await log.latest_checkpoint(account_id, fresh=False)
    if after > _size(latest):  # a head another read saw may be newer than the last refresh
        latest = await log.latest_checkpoint(account_id, fresh=True)
        if after > _size(latest):
            message = (
                f"after is past the account's log ({_size(latest)} positions sealed): "
                "give 0 or a next_after the feed returned"
            )
            raise bad_request(message, field="after")
    head = _size(latest)
    end = min(head, after + limit)
    leaves = await log.leaves_between(account_id, after, end, runtime.segments)
    names = runtime.names
    docs = [
        (names.entry_index_for_stamp(leaf["category"], leaf["timestamp"]),
         f"{account_id}/{leaf['id']}")
        for leaf in leaves
    ]  # fmt: skip
    gone: set[str] = set()
    # an account delivered here: entries this process wrote for it are in memory; with several
    # destinations, each entry fetched is kept for the others
    delivered = sum(1 for account in runtime.delivering.values() if account == account_id)
    found = await fetch_entries(runtime.es, docs, gone,
                                runtime.feed_entries if delivered else None,
                                keep=delivered > 1)  # fmt: skip
    entries = []
    for offset, (leaf, (_, doc_id)) in enumerate(zip(leaves, docs, strict=True)):
        position = after + 1 + offset
        if doc_id in found:
            entries.append(_shown(found[doc_id], position, leaf["digest"], tz))
        elif not (doc_id in gone and leaf["category"] in EXPIRING_CATEGORIES):
            entries.append(_missing(account_id, leaf, position, tz))
    return FeedPage(entries, after + len(leaves), head, public(latest) if latest else None)
