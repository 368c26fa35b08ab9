"""The sealer: appends what the service stored to each account's log and signs a checkpoint.

One process of the deployment seals at a time, the holder of the ``sealer`` lease. Every
``AUDITLOG_SEAL_INTERVAL_S`` it reads the oldest records of the seal queue. An entry the engine
created is sealed from its record, which carries the service's MAC over its leaves or which this
process kept in memory (the entries of a record forged or changed in the engine, or of one naming
its entries only, are looked up instead); an entry whose write has no known
outcome is fetched once the write deadline passed and sealed only if its digest matches its content
and its MAC is the service's: an entry indexed behind the service's back has neither and is never
sealed. For each account it appends the entries' leaves as one segment at the next positions and
signs a checkpoint over the whole tree; segment and checkpoint are created with fixed ids, so a
former holder cannot fork the log. Positions follow the order the queue recorded the batches in
(ingest order, not event time); a batch still being written when a later one is sealed comes after
it, and an entry whose write had no known outcome comes when it is looked up. A restart resumes from
the last checkpoint: a segment without its checkpoint is removed and sealed again; an entry already
in the log is never appended twice. A holder checks every entry of its first round against the
logs; once a round ended with each of its records removed, it is **settled**: an entry the engine
created under a claim of its own, for a record made after this sealer started and in the last 20
minutes (its MAC covers when, or this process kept it) that it has not sealed from, is new to the
logs (a record is removed once sealed; one copied back into the queue is one it sealed from, or
older), so only the other entries are checked, and a round of new writes neither searches the logs
nor refreshes their index.

**Genesis.** Entries stored before integrity existed carry no MAC. The first sealer of a
deployment seals each account's such entries, in ingest order, into a checkpoint marked
``genesis``: they are proven from that moment on, not before.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from service.errors import EngineUnavailable, ServiceError
from service.integrity.canonical import entry_digest
from service.integrity.checkpoints import (
    checkpoint_hash,
    leaf,
    leaf_hash_of,
    leaf_of,
    new_checkpoint,
    signed_part,
)
from service.integrity.keys import IntegrityKeys
from service.integrity.merkle import Frontier
from service.runtime import Runtime
from service.search.accounts import AccountStore
from service.search.integrity_log import IntegrityLog, LogConflict
from service.search.leases import HeldLease, LeaseLost, Leases, hold
from service.search.log_entries import entries_without_mac, fetch_entries
from service.search.seal_queue import FORMAT, WRITE_DEADLINE_S, Queued, QueuedEntry, SealQueue
from service.search.shared_state import done_once, mark_done

log = logging.getLogger("auditlog")
LEASE = "sealer"
QUEUE_BATCH = 1000
"""Queue records read per round (records whose writes are still under way stay at the head)."""
ROUND_MAX = 20_000
"""Entries sealed per round, at most (a round renews the lease before each append)."""
REPLAY_WINDOW_S = 2 * WRITE_DEADLINE_S
"""A record made longer ago than this has its entries checked against the logs (a record being
written is sealed well within its write deadline)."""
CLOCKS_DIFFER_S = 5.0
"""How far apart the instances' clocks may be, at most (NTP keeps them within milliseconds; the
leases assume a small fraction of their lifetime)."""
EARLIER_RECORDS_EVERY_S = 60.0
"""How often a settled sealer also reads the queue records made before the queue had an index of
its own (in the logs' index; an instance of an earlier version may still write them there)."""
SEGMENT_MAX = 5000
"""Leaves per segment document, at most (about 1 MB)."""
LIST_EVERY_S = 10.0
"""How often a settled holder lists the queue in the engine though nothing says a record is there
that it does not keep (see :mod:`service.search.seal_queue`): records of an instance of an earlier
version, one whose ``WRITERS`` write failed, deferred ones of a former holder. Once a listing
found such a record, or ``WRITERS`` moved, the holder lists every round for this long."""


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class AccountLog:
    """The sealer's view of one account's log: its right edge and last checkpoint."""

    seq: int = 0
    previous: str = ""
    frontier: Frontier = field(default_factory=Frontier)


def hmac_ok(keys: IntegrityKeys, record: Queued) -> bool:
    """The record's outcome carries the service's MAC."""
    expected = keys.outcome_mac(record.record_id, record.created or [], record.unsure)
    return hmac.compare_digest(expected, record.outcome_mac)


def vouches(keys: IntegrityKeys, record: Queued) -> bool:
    """The record carries the service's MAC over its leaves (a record of an earlier version
    carries one per leaf instead: see :meth:`Sealer._leaves`)."""
    return bool(record.mac) and hmac.compare_digest(keys.queue_mac(record.signed), record.mac)


@dataclass
class SealRound:
    """What one round takes from the queue, and what becomes of each entry."""

    taken: list[tuple[Queued, list[QueuedEntry]]] = field(default_factory=list)
    """Records, each with the entries to look up later (the record is then deferred)."""
    by_account: dict[str, list[QueuedEntry]] = field(default_factory=lambda: defaultdict(list))
    lookups: list[QueuedEntry] = field(default_factory=list)
    """Entries sealed only if the engine holds them as the service stored them."""
    vouched: set[str] = field(default_factory=set)
    """Created entries of records that carry the service's MAC or that this process kept in
    memory (sealed from the record)."""
    new: set[str] = field(default_factory=set)
    """Of those, the entries new to the logs (:meth:`Sealer._new`)."""
    refused: set[str] = field(default_factory=set)
    """Created entries of records that do not carry the service's MAC (changed in the engine,
    or naming the entries only): looked up, and reported if gone."""


def _all_created(record: Queued) -> bool:
    """A record this process kept, every entry of which the engine created (the usual one):
    its entries are sealed from it with no lookup and no set of ids built for it. The outcome
    lists distinct ids of the record's entries (an id sent twice in a batch is created once)."""
    created = record.created
    return (record.local and created is not None and not record.unsure
            and len(created) == len(record.entries))  # fmt: skip


class LogDamaged(Exception):
    """The account's stored log does not check out: it is not extended until it is repaired."""


class Sealer:
    def __init__(self, runtime: Runtime, keys: IntegrityKeys) -> None:
        self.runtime, self.keys = runtime, keys
        self.log = IntegrityLog(runtime.es, runtime.names)
        self.queue = SealQueue(runtime.es, runtime.names, runtime.sealing_here)
        self.accounts: dict[str, AccountLog] = {}
        self.settled = False
        """Every record this sealer sealed from is removed (see the module)."""
        self.sealed_from: dict[str, float] = {}
        """Records sealed from in the last :data:`REPLAY_WINDOW_S`, by id (loop time, in order)."""
        self.earlier_read_at = -EARLIER_RECORDS_EVERY_S
        self.started = datetime.now(UTC)
        self.listed_at = -LIST_EVERY_S
        """When this sealer last listed the queue in the engine (loop time)."""
        self.writers: tuple[int, int] | None = None
        """Where the queue's ``WRITERS`` stood when last read."""
        self.others_at = -LIST_EVERY_S
        """When ``WRITERS`` last moved, or a listing last found a record this process does not
        keep (loop time)."""
        self.deferred_until: list[datetime] = []
        """The write deadlines of the records this sealer deferred (listed once passed)."""

    async def _account(self, held: HeldLease, account_id: str) -> AccountLog:
        """The account's log as stored (read once per lease: another holder may have sealed),
        its last checkpoint checked: signed by a trusted key, its right edge hashing to its
        root. A segment past it was never checkpointed and is removed (by the holder only)."""
        if account_id in self.accounts:
            return self.accounts[account_id]
        latest = await self.log.latest_checkpoint(account_id)
        state = AccountLog()
        if latest is not None:
            frontier = Frontier(
                int(latest["tree_size"]), [bytes.fromhex(h) for h in latest["frontier"]]
            )
            signed = self.keys.verifies(latest["key_id"], signed_part(latest), latest["signature"])
            if not signed or frontier.root().hex() != latest["root"]:
                raise LogDamaged(f"{account_id}: its last checkpoint does not check out")
            state = AccountLog(int(latest["seq"]), checkpoint_hash(latest), frontier)
        orphans = await self.log.segments_from(account_id, state.frontier.size)
        if orphans:
            await held.renew()  # the fence: a former holder must not remove the holder's work
            for start in orphans:
                await self.log.delete_segment(account_id, start)
        self.accounts[account_id] = state
        return state

    async def _append(
        self, held: HeldLease, account_id: str, leaves: list[dict[str, str]], genesis: bool = False
    ) -> None:
        for start in range(0, len(leaves), SEGMENT_MAX):
            await self._append_segment(
                held, account_id, leaves[start : start + SEGMENT_MAX], genesis
            )

    async def _append_segment(
        self, held: HeldLease, account_id: str, leaves: list[dict[str, str]], genesis: bool
    ) -> None:
        state = await self._account(held, account_id)
        frontier = Frontier(state.frontier.size, list(state.frontier.hashes))
        frontier.extend([leaf_hash_of(item) for item in leaves])
        checkpoint = new_checkpoint(self.keys, account_id, state.seq + 1, frontier.size,
                                    frontier.root(), state.previous, _stamp(datetime.now(UTC)),
                                    genesis)  # fmt: skip
        stored = {**checkpoint, "kind": "checkpoint",
                  "frontier": [h.hex() for h in frontier.hashes]}  # fmt: skip
        await held.renew()  # the fence: only the holder appends
        await self.log.append(account_id, state.frontier.size, leaves, stored)
        self.accounts[account_id] = AccountLog(state.seq + 1, checkpoint_hash(checkpoint), frontier)
        self.runtime.counters["sealed_entries"] += len(leaves)

    async def seal_queued(self, held: HeldLease) -> int:
        """Seal the oldest queued writes (at most :data:`ROUND_MAX` entries); how many entries
        were sealed. A created entry is sealed from its record (the record's outcome and the
        leaf's MAC checked); an entry the engine may or may not have stored is looked up once
        the write deadline passed (until then its record is deferred, out of the queue's way).
        A record is removed only once each of its entries is sealed, refused or never written."""
        clock = asyncio.get_running_loop().time()
        earlier = not self.settled or clock - self.earlier_read_at >= EARLIER_RECORDS_EVERY_S
        if earlier:
            self.earlier_read_at = clock
        memory = self.queue.kept
        if memory is not None and not await self._lists(clock, earlier):
            records, dropped = memory.oldest(QUEUE_BATCH, ROUND_MAX), 0
        else:
            records, dropped = await self.queue.oldest(QUEUE_BATCH, ROUND_MAX, earlier=earlier)
            if any(not r.local for r in records):  # a backlog of them is listed round by round
                self.others_at = clock
        if dropped:
            self.runtime.counters["seal_queue_malformed"] += dropped
            log.error("sealer: %d malformed seal queue records removed", dropped)
        now = datetime.now(UTC)
        round_ = self._round([plan for r in records if (plan := self._plan(r, now)) is not None],
                             now)  # fmt: skip
        if not round_.taken:
            self.settled = True
            return 0
        self.settled = False  # until this round's records are removed
        # an index that does not exist holds no entry: its write never happened (or retention
        # deleted it), and either way there is nothing to seal; an error stays an error
        lookups = round_.lookups
        found = await fetch_entries(self.runtime.es, [(e.index, e.doc_id) for e in lookups],
                                    gone=set())  # fmt: skip
        looked_up = {e.doc_id for e in lookups}
        sealed, damaged = 0, set()
        try:
            for account_id, entries in round_.by_account.items():
                try:
                    await self._account(held, account_id)  # removes an orphan segment first
                except LogDamaged as e:
                    self.runtime.counters["seal_damaged_logs"] += 1
                    log.error("sealer: %s; not sealing it", e)
                    damaged.add(account_id)  # its records stay queued
                    continue
                leaves = await self._leaves(account_id, entries, looked_up, found, round_)
                if leaves:
                    await self._append(held, account_id, leaves)
                    sealed += len(leaves)
        finally:
            if sealed:  # before the records go: a reader finding one gone sees its checkpoint;
                # and should a later append fail, what was appended is shown all the same
                with contextlib.suppress(EngineUnavailable):
                    await self.log.refresh()
        done, kept = [], False
        for record, later in round_.taken:
            if damaged and any(e.doc_id.split("/", 1)[0] in damaged for e in record.entries):
                kept = True  # read again: its entries of other accounts are in the logs now
                continue
            if later:
                await self.queue.defer(record, later)
                self.deferred_until.append(record.write_by)
            else:
                done.append(record)
        absent = [e.doc_id for e in lookups if e.doc_id not in found]
        gone = [doc_id for doc_id in absent if doc_id in round_.refused]  # created, not found
        if gone:
            self.runtime.counters["seal_refused"] += len(gone)
            log.error("sealer: %d entries the engine created are not in it (of changed queue "
                      "records or of records naming their entries only); not sealed",
                      len(gone))  # fmt: skip
        if len(absent) > len(gone):
            self.runtime.counters["seal_never_written"] += len(absent) - len(gone)
            log.warning("sealer: %d queued entries were never written; dropped",
                        len(absent) - len(gone))  # fmt: skip
        await self.queue.remove(done)
        self._sealed_from([record for record, _ in round_.taken], clock)
        self.settled = not kept
        return sealed

    async def _lists(self, clock: float, earlier: bool) -> bool:
        """Whether this round lists the queue in the engine rather than taking the records this
        process kept (see :mod:`service.search.seal_queue`); a listing is noted as made."""
        kept = self.queue.kept
        assert kept is not None
        listing = earlier or not (self.settled and kept.active) or kept.missing
        listing = listing or clock - self.listed_at >= LIST_EVERY_S
        now = datetime.now(UTC)
        listing = listing or any(at < now for at in self.deferred_until)
        if not listing:
            writers = await self.queue.writers()
            if writers != self.writers:
                self.writers, self.others_at = writers, clock
            # a record written with the move may be indexed after the listing's refresh, and
            # more may follow one found: listed again for a while
            listing = clock - self.others_at < LIST_EVERY_S
        if listing:
            self.listed_at, kept.missing = clock, False
            self.deferred_until = [at for at in self.deferred_until if at >= now]
        return listing

    def _round(
        self, plans: list[tuple[Queued, list[QueuedEntry], list[QueuedEntry]]], now: datetime
    ) -> SealRound:
        """The records a round takes, and what becomes of each of their entries."""
        round_ = SealRound()
        seen: set[str] = set()
        for record, sealable, later in plans:
            if len(seen) >= ROUND_MAX and round_.taken:
                break
            round_.taken.append((record, later))
            if _all_created(record) and seen.isdisjoint(ids := [e.doc_id for e in sealable]):
                # the usual record: each of its entries as the slower way below takes it
                seen.update(ids)
                round_.vouched.update(ids)
                if self._new(record, now):
                    round_.new.update(ids)
                for e in sealable:
                    round_.by_account[e.doc_id.split("/", 1)[0]].append(e)
                continue
            created = set(record.created or ())
            vouched = record.local
            if created and record.signed and not vouched:
                vouched = vouches(self.keys, record)
                if not vouched:
                    self.runtime.counters["seal_record_refused"] += 1
                    log.error("sealer: queue record %s is not as the service wrote it; its "
                              "entries are looked up", record.record_id)  # fmt: skip
                    round_.refused |= created
                    created = set()
            new = self._new(record, now)
            unsure = set(record.unsure)
            for e in sealable:
                if e.doc_id not in seen:
                    seen.add(e.doc_id)
                    round_.by_account[e.doc_id.split("/", 1)[0]].append(e)
                    if e.doc_id not in created:
                        round_.lookups.append(e)
                    elif not (vouched or e.mac):  # a record naming its entries only: created,
                        round_.lookups.append(e)  # so an entry gone since was deleted
                        round_.refused.add(e.doc_id)
                    elif vouched:
                        round_.vouched.add(e.doc_id)
                        if new and e.doc_id not in unsure:
                            round_.new.add(e.doc_id)
        return round_

    def _new(self, record: Queued, now: datetime) -> bool:
        """Whether the entries the engine created for ``record`` under claims of their own are
        new to the logs: this sealer is settled and has not sealed from the record, which was
        made (its MAC covers when; or this process made it) after this sealer started, by more
        than the instances' clocks may differ (a former holder may have sealed from an earlier
        one without removing it), and within :data:`REPLAY_WINDOW_S` (a record of the service
        copied back into the queue is one this sealer sealed from, or older)."""
        if not self.settled or record.record_id in self.sealed_from:
            return False
        if record.format != FORMAT and not record.local:
            return False
        made = datetime.fromisoformat(record.created_at.replace("Z", "+00:00"))
        if made.tzinfo is None or made < self.started + timedelta(seconds=CLOCKS_DIFFER_S):
            return False
        return (now - made).total_seconds() < REPLAY_WINDOW_S

    def _sealed_from(self, records: list[Queued], clock: float) -> None:
        """Remember the records of this round for :data:`REPLAY_WINDOW_S`."""
        for record in records:
            self.sealed_from[record.record_id] = clock
        while self.sealed_from:
            record_id, at = next(iter(self.sealed_from.items()))
            if clock - at < REPLAY_WINDOW_S:
                break
            del self.sealed_from[record_id]

    def _plan(
        self, record: Queued, now: datetime
    ) -> tuple[Queued, list[QueuedEntry], list[QueuedEntry]] | None:
        """What to do with a record now: the entries to seal (from the record, or looked up),
        and those to look up later (the record is then deferred); ``None`` while its batch is
        being written."""
        overdue = now > record.write_by
        outcome = record.created is not None and (record.local or hmac_ok(self.keys, record))
        if not outcome:
            if record.created is not None:
                self.runtime.counters["seal_outcome_refused"] += 1
            return (record, list(record.entries), []) if overdue else None
        if _all_created(record):
            return record, record.entries, []
        created, unsure = set(record.created or ()), set(record.unsure)
        sealable = [e for e in record.entries if e.doc_id in created]
        maybe = [e for e in record.entries if e.doc_id in unsure and e.doc_id not in created]
        if overdue:
            return record, [*sealable, *maybe], []
        return record, sealable, maybe

    async def _leaves(
        self,
        account_id: str,
        entries: list[QueuedEntry],
        looked_up: set[str],
        found: dict[str, dict[str, Any]],
        round_: SealRound,
    ) -> list[dict[str, str]]:
        """The leaves to append for ``entries``: not sealed already (an entry new to the logs is
        not looked for there), and authentic (sealed from its record: the record's MAC is the
        service's (``vouched``), or in a record of an earlier version the leaf's own; looked
        up: the stored entry checks out)."""
        ids = [e.leaf["id"] for e in entries if e.doc_id not in round_.new]
        if not ids:  # every entry new to the logs, so sealed from its record (``vouched``)
            return [e.leaf for e in entries]
        # a settled sealer's queue read did not refresh the logs (see SealQueue.oldest)
        already = await self.log.sealed_among(account_id, ids, fresh=True) if ids else set()
        leaves = []
        vouched = round_.vouched  # never looked up
        for e in entries:
            if already and e.leaf["id"] in already:
                continue
            if e.doc_id in vouched:
                leaves.append(e.leaf)
                continue
            item: dict[str, str] | None = e.leaf
            if e.doc_id not in looked_up:
                authentic = bool(e.mac) and self.keys.mac_matches(account_id, e.leaf, e.mac)
            elif (source := found.get(e.doc_id)) is None:
                continue  # never written
            else:
                authentic = self._authentic(source, e.doc_id)
                item = leaf_of(source, (source.get("integrity") or {}).get("digest"))
            if authentic and item is not None:
                leaves.append(item)
            else:
                self.runtime.counters["seal_refused"] += 1
                log.error("sealer: %s is not as the service stored it; not sealed", e.doc_id)
        return leaves

    def _authentic(self, source: dict[str, Any], doc_id: str) -> bool:
        """The stored entry is as the service wrote it: its digest matches its content and its
        MAC is the service's."""
        stamp = source.get("integrity")
        if not isinstance(stamp, dict) or stamp.get("digest") != entry_digest(source):
            return False
        account_id, entry_id = doc_id.split("/", 1)
        if source.get("account_id") != account_id or source.get("id") != entry_id:
            return False
        return self.keys.mac_matches(account_id, leaf_of(source, stamp["digest"]),
                                     str(stamp.get("mac")))  # fmt: skip

    async def genesis(self, held: HeldLease) -> None:
        """Seal, once per deployment, every account's entries stored without a digest (before
        integrity existed); a genesis cut short is finished by the next, never doubled."""
        names = self.runtime.names
        if await done_once(self.runtime.es, names, "integrity-genesis"):
            return
        for account in await AccountStore(self.runtime.es, names).list_accounts():
            batch: list[dict[str, Any]] = []
            async for source in entries_without_mac(self.runtime.es, names, account.id):
                batch.append(source)
                if len(batch) == SEGMENT_MAX:
                    await self._genesis_batch(held, account.id, batch)
                    batch = []
            if batch:
                await self._genesis_batch(held, account.id, batch)
        await self.log.refresh()
        await mark_done(self.runtime.es, names, "integrity-genesis")

    async def _genesis_batch(
        self, held: HeldLease, account_id: str, batch: list[dict[str, Any]]
    ) -> None:
        already = await self.log.sealed_among(account_id, [s["id"] for s in batch], fresh=True)
        leaves = [leaf(s["id"], s["category"], s["timestamp"], entry_digest(s))
                  for s in batch if s["id"] not in already]  # fmt: skip
        if leaves:
            await self._append(held, account_id, leaves, genesis=True)


async def sealer_loop(runtime: Runtime, keys: IntegrityKeys) -> None:
    """Hold or wait for the ``sealer`` lease; while held, seal every
    ``AUDITLOG_SEAL_INTERVAL_S``."""
    settings = runtime.settings
    leases = Leases(runtime.es, runtime.names, runtime.holder, settings.lease_ttl_s)
    held: HeldLease | None = None
    sealer = Sealer(runtime, keys)
    try:
        while True:
            if runtime.setup_done:
                try:
                    taken = held is None
                    held = await hold(leases, LEASE, held)
                    if held is None:
                        runtime.sealing_here.stop()
                    elif taken:
                        sealer = Sealer(runtime, keys)  # read the logs afresh: a former holder
                        runtime.sealing_here.start()  # sealed; the records written from now on
                    if held is not None:
                        await sealer.genesis(held)  # until it is done once
                        while await sealer.seal_queued(held):
                            pass
                except (LeaseLost, LogConflict):
                    log.warning("sealer: another process seals now")
                    held = None
                    runtime.sealing_here.stop()
                except ServiceError as e:
                    log.warning("sealing failed: %s", e)
                    sealer = Sealer(runtime, keys)  # read the logs again: a write may have landed
                except Exception:  # a bug must not stop sealing for good: log it, go on
                    log.exception("sealer: unexpected failure")
                    sealer = Sealer(runtime, keys)
            await asyncio.sleep(settings.seal_interval_s)
    finally:
        runtime.sealing_here.stop()
        if held is not None:
            with contextlib.suppress(EngineUnavailable):
                await asyncio.shield(held.release())
