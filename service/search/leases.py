"""Leases: which instance of a deployment does a piece of background work, with a fencing token.

A lease is one document ``lease:<name>`` in ``<prefix>-state``: its holder, its expiry and a
**fencing token** that grows by one each time the lease changes hands. Every change is
conditional on the sequence number the writer last saw (``if_seq_no``/``if_primary_term``), so of
several instances trying at once exactly one wins, and a holder that was paused past its expiry
and replaced finds out at its next renewal (:class:`LeaseLost`) instead of working on beside the
new holder. Work that must not run twice renews the lease right before each step that changes
something (the retention sweeper before each index it deletes): the renewal is the fence.

Leases are read by id (a real-time get sees every write at once), so writing one never forces
the index to refresh: the sealer renews its lease every round.

Expiry is compared with each instance's clock; the instances' clocks are assumed to agree within
a small fraction of the lease's lifetime (NTP). A holder that stops cleanly releases its lease,
so another instance takes over at once; one that dies is replaced once its lease expired.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from service.search.engine_errors import translated
from service.search.indices import IndexNames


class LeaseLost(Exception):
    """Another instance holds the lease now: stop the work it guards."""


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    token: int
    """The fencing token: 1 for the first holder, one more for each holder after it."""
    expires_at: datetime
    seq_no: int
    primary_term: int


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Leases:
    """Leases held by ``holder`` (one per process), each lasting ``ttl_s`` from its last renewal."""

    def __init__(self, es: AsyncElasticsearch, names: IndexNames, holder: str, ttl_s: float):
        self.es, self.index, self.holder, self.ttl = (
            es,
            names.state,
            holder,
            timedelta(seconds=ttl_s),
        )

    def _body(self, name: str, token: int, expires_at: datetime) -> dict[str, Any]:
        return {
            "kind": "lease",
            "name": name,
            "holder": self.holder,
            "token": token,
            "expires_at": _stamp(expires_at),
        }

    def _lease(self, name: str, token: int, expires_at: datetime, resp: Any) -> Lease:
        return Lease(name, self.holder, token, expires_at, resp["_seq_no"], resp["_primary_term"])

    @translated
    async def acquire(self, name: str) -> Lease | None:
        """The lease, when it is free or expired; ``None`` while another holder has it."""
        now = datetime.now(UTC)
        expires = now + self.ttl
        doc_id = f"lease:{name}"
        try:
            resp = await self.es.create(
                index=self.index, id=doc_id, document=self._body(name, 1, expires)
            )
            return self._lease(name, 1, expires, resp)
        except ConflictError:
            pass
        current = await self.es.get(index=self.index, id=doc_id)
        held = current["_source"]
        if _instant(held["expires_at"]) > now:
            return None
        token = int(held["token"]) + 1
        try:
            resp = await self.es.index(
                index=self.index,
                id=doc_id,
                document=self._body(name, token, expires),
                if_seq_no=current["_seq_no"],
                if_primary_term=current["_primary_term"],
            )
        except ConflictError:
            return None  # another instance took it first
        return self._lease(name, token, expires, resp)

    @translated
    async def renew(self, lease: Lease) -> Lease:
        """The lease for another ``ttl_s``; :class:`LeaseLost` if it changed hands meanwhile."""
        expires = datetime.now(UTC) + self.ttl
        try:
            resp = await self.es.index(
                index=self.index,
                id=f"lease:{lease.name}",
                document=self._body(lease.name, lease.token, expires),
                if_seq_no=lease.seq_no,
                if_primary_term=lease.primary_term,
            )
        except (ConflictError, NotFoundError) as e:
            raise LeaseLost(lease.name) from e
        return self._lease(lease.name, lease.token, expires, resp)

    @translated
    async def release(self, lease: Lease) -> None:
        """Let another instance take the lease at once (nothing happens if it was lost)."""
        with contextlib.suppress(ConflictError, NotFoundError):
            await self.es.index(
                index=self.index,
                id=f"lease:{lease.name}",
                document=self._body(lease.name, lease.token, datetime.now(UTC)),
                if_seq_no=lease.seq_no,
                if_primary_term=lease.primary_term,
            )

    @translated
    async def holder_of(self, name: str) -> dict[str, Any] | None:
        """The stored lease (holder, token, expiry), expired or not."""
        try:
            resp = await self.es.get(index=self.index, id=f"lease:{name}")
        except NotFoundError:
            return None
        return dict(resp["_source"])


class HeldLease:
    """A lease this process holds, renewed in place: :meth:`renew` is the fence of the work."""

    def __init__(self, leases: Leases, lease: Lease) -> None:
        self.leases, self.lease = leases, lease

    async def renew(self) -> None:
        """Extend the lease; :class:`LeaseLost` when another process holds it now."""
        self.lease = await self.leases.renew(self.lease)

    async def release(self) -> None:
        await self.leases.release(self.lease)


async def hold(leases: Leases, name: str, held: HeldLease | None) -> HeldLease | None:
    """The lease ``name`` as this process holds it now: ``held`` renewed, or taken if it is free
    (``None`` while another process holds it). :class:`LeaseLost` if ``held`` changed hands."""
    if held is None:
        lease = await leases.acquire(name)
        return HeldLease(leases, lease) if lease else None
    await held.renew()
    return held
