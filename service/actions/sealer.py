"""The sealer: appends what the service stored to each account's log and signs a checkpoint.

One process of the deployment seals at a time, the holder of the ``sealer`` lease. Every
``AUDITLOG_SEAL_INTERVAL_S`` it reads the oldest records of the seal queue, fetches their entries
(real-time gets) and keeps those whose digest matches their content and whose MAC is the
service's: an entry indexed behind the service's back has neither and is never sealed. For each
account it appends the entries' leaves as one segment at the next positions and signs a checkpoint
over the whole tree; segment and checkpoint are created with fixed ids, so a former holder cannot
fork the log. Positions follow the order the queue recorded the writes in (ingest order, not event
time). A restart resumes from the last checkpoint: a segment without its checkpoint is removed and
sealed again; an entry already in the log is never appended twice.

**Genesis.** Entries stored before integrity existed carry no MAC. The first sealer of a
deployment seals each account's such entries, in ingest order, into a checkpoint marked
``genesis``: they are proven from that moment on, not before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.errors import EngineUnavailable, ServiceError
from service.integrity.canonical import entry_digest
from service.integrity.checkpoints import checkpoint_hash, leaf, leaf_hash_of, new_checkpoint
from service.integrity.keys import IntegrityKeys
from service.integrity.merkle import Frontier
from service.runtime import Runtime
from service.search.accounts import AccountStore
from service.search.integrity_log import IntegrityLog, LogConflict
from service.search.leases import HeldLease, LeaseLost, Leases
from service.search.seal_queue import Queued, SealQueue
from service.search.shared_state import done_once, mark_done
from service.search.unsealed import entries_without_mac, fetch_entries

log = logging.getLogger("auditlog")
LEASE = "sealer"
QUEUE_BATCH = 200
GENESIS_SEGMENT = 5000


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class AccountLog:
    """The sealer's view of one account's log: its right edge and last checkpoint."""

    seq: int = 0
    previous: str = ""
    frontier: Frontier = field(default_factory=Frontier)


class Sealer:
    def __init__(self, runtime: Runtime, keys: IntegrityKeys) -> None:
        self.runtime, self.keys = runtime, keys
        self.log = IntegrityLog(runtime.es, runtime.names)
        self.queue = SealQueue(runtime.es, runtime.names)
        self.accounts: dict[str, AccountLog] = {}

    async def _account(self, account_id: str) -> AccountLog:
        """The account's log as stored (read once per lease: another holder may have sealed)."""
        if account_id in self.accounts:
            return self.accounts[account_id]
        latest = await self.log.latest_checkpoint(account_id)
        state = AccountLog()
        if latest is not None:
            hashes = [bytes.fromhex(h) for h in latest["frontier"]]
            frontier = Frontier(int(latest["tree_size"]), hashes)
            state = AccountLog(int(latest["seq"]), checkpoint_hash(latest), frontier)
        for start in await self.log.segments_from(account_id, state.frontier.size):
            await self.log.delete_segment(account_id, start)  # never checkpointed: sealed again
        self.accounts[account_id] = state
        return state

    async def _append(
        self, held: HeldLease, account_id: str, leaves: list[dict[str, str]], genesis: bool = False
    ) -> None:
        state = await self._account(account_id)
        frontier = Frontier(state.frontier.size, list(state.frontier.hashes))
        for item in leaves:
            frontier.append(leaf_hash_of(item))
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
        """Seal the oldest queued writes; how many entries were sealed."""
        records = await self.queue.oldest(QUEUE_BATCH)
        if not records:
            return 0
        by_account: dict[str, list[tuple[str, str]]] = defaultdict(list)
        seen: set[str] = set()
        for record in records:
            for index, doc_id in record.entries:
                if doc_id not in seen:
                    seen.add(doc_id)
                    by_account[doc_id.split("/", 1)[0]].append((index, doc_id))
        found = await fetch_entries(self.runtime.es, [e for es in by_account.values() for e in es])
        sealed = 0
        for account_id, entries in by_account.items():
            already = await self.log.sealed_among(
                account_id, [d.split("/", 1)[1] for _, d in entries]
            )
            leaves = []
            for _, doc_id in entries:
                source = found.get(doc_id)
                if source is None or source["id"] in already:
                    continue
                if self._authentic(source):
                    leaves.append(leaf(source["id"], source["category"], source["timestamp"],
                                       source["integrity"]["digest"]))  # fmt: skip
                else:
                    self.runtime.counters["seal_refused"] += 1
                    log.error("sealer: %s is not as the service stored it; not sealed", doc_id)
            if leaves:
                await self._append(held, account_id, leaves)
                sealed += len(leaves)
        now = datetime.now(UTC)
        done = [r.record_id for r in records if self._resolved(r, found, now)]
        await self.queue.remove(done)
        return sealed

    @staticmethod
    def _resolved(record: Queued, found: dict[str, Any], now: datetime) -> bool:
        """Every entry of the record was found (and dealt with), or will never be written."""
        return now > record.write_by or all(doc_id in found for _, doc_id in record.entries)

    def _authentic(self, source: dict[str, Any]) -> bool:
        stamp = source.get("integrity")
        if not isinstance(stamp, dict) or stamp.get("digest") != entry_digest(source):
            return False
        mac = str(stamp.get("mac", ""))
        return self.keys.mac_matches(source["account_id"], source["id"], stamp["digest"], mac)

    async def genesis(self, held: HeldLease) -> None:
        """Seal, once per deployment, every account's entries stored without a MAC."""
        names = self.runtime.names
        if await done_once(self.runtime.es, names, "integrity-genesis"):
            return
        for account in await AccountStore(self.runtime.es, names).list_accounts():
            batch: list[dict[str, str]] = []
            async for source in entries_without_mac(self.runtime.es, names, account.id):
                batch.append(leaf(source["id"], source["category"], source["timestamp"],
                                  entry_digest(source)))  # fmt: skip
                if len(batch) == GENESIS_SEGMENT:
                    await self._append(held, account.id, batch, genesis=True)
                    batch = []
            if batch:
                await self._append(held, account.id, batch, genesis=True)
        await mark_done(self.runtime.es, names, "integrity-genesis")


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
                    if held is None:
                        lease = await leases.acquire(LEASE)
                        if lease is not None:
                            held, sealer = HeldLease(leases, lease), Sealer(runtime, keys)
                            await sealer.genesis(held)
                    else:
                        await held.renew()
                    if held is not None:
                        while await sealer.seal_queued(held) and held is not None:
                            pass
                except (LeaseLost, LogConflict):
                    log.warning("sealer: another process seals now")
                    held = None
                except ServiceError as e:
                    log.warning("sealing failed: %s", e)
                    sealer = Sealer(runtime, keys)  # read the logs again: a write may have landed
            await asyncio.sleep(settings.seal_interval_s)
    finally:
        if held is not None:
            with contextlib.suppress(EngineUnavailable):
                await asyncio.shield(held.release())
