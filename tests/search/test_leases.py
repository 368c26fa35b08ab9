"""Leases on the real engine: one holder at a time, take-over after expiry with a larger fencing
token, a replaced holder finds out at its next renewal, a released lease is free at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.config import Settings
from service.search.client import make_client
from service.search.indices import IndexNames
from service.search.leases import HeldLease, LeaseLost, Leases
from service.search.setup import run_setup


@pytest.fixture(scope="module")
def lease_settings(settings: Settings) -> Settings:
    async def setup() -> None:
        es = make_client(settings, str(settings.es_url))
        try:
            await run_setup(es, settings)
        finally:
            await es.close()

    asyncio.run(setup())
    return settings


def _leases(settings: Settings, ttl_s: float, holders: int) -> list[Leases]:
    """``holders`` contenders on one client (each test names its own lease)."""
    es = make_client(settings, str(settings.es_url))
    names = IndexNames(settings.index_prefix)
    return [Leases(es, names, f"holder-{n}", ttl_s) for n in range(holders)]


def test_of_many_contenders_exactly_one_gets_the_lease(lease_settings: Settings) -> None:
    async def contend() -> list[bool]:
        leases = _leases(lease_settings, 30, 6)
        try:
            got = await asyncio.gather(*(lease.acquire("contended") for lease in leases))
            return [g is not None for g in got]
        finally:
            await leases[0].es.close()

    assert sorted(asyncio.run(contend())) == [False] * 5 + [True]


def test_an_expired_lease_changes_hands_once_and_the_old_holder_is_fenced_off(
    lease_settings: Settings,
) -> None:
    async def scenario() -> None:
        first, second, third = _leases(lease_settings, 1.0, 3)
        try:
            held = await first.acquire("expiring")
            assert held is not None and held.token == 1
            assert await second.acquire("expiring") is None  # not expired yet
            await asyncio.sleep(1.2)
            taken = await asyncio.gather(second.acquire("expiring"), third.acquire("expiring"))
            winners = [t for t in taken if t is not None]
            assert len(winners) == 1 and winners[0].token == 2
            with pytest.raises(LeaseLost):
                await first.renew(held)  # paused past its expiry: it must stop
            stored = await first.holder_of("expiring")
            assert stored is not None and stored["holder"] == winners[0].holder
        finally:
            await first.es.close()

    asyncio.run(scenario())


def test_renewal_keeps_the_lease_and_release_frees_it_at_once(lease_settings: Settings) -> None:
    async def scenario() -> None:
        owner, other = _leases(lease_settings, 1.0, 2)
        try:
            lease = await owner.acquire("renewed")
            assert lease is not None
            held = HeldLease(owner, lease)
            for _ in range(3):  # 1.5 s in all, longer than the lease: renewals keep it
                await asyncio.sleep(0.5)
                await held.renew()
                assert await other.acquire("renewed") is None
            started = time.monotonic()
            await held.release()
            again = await other.acquire("renewed")
            assert again is not None and again.token == 2
            assert time.monotonic() - started < 1.0  # not after the expiry: at once
            with pytest.raises(LeaseLost):
                await held.renew()
        finally:
            await owner.es.close()

    asyncio.run(scenario())
