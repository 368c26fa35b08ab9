"""The sealer on the real engine: a paused former holder cannot fork the log, a restart gives no
position twice, and entries stored before integrity existed are sealed once into a genesis."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from service.actions.sealer import Sealer
from service.actions.verify import verify_account
from service.config import Settings
from service.integrity.keys import create_keys, load_keys, public_pem
from service.runtime import Runtime
from service.search.accounts import Account, AccountStore
from service.search.client import make_client
from service.search.indices import IndexNames
from service.search.integrity_log import IntegrityLog, LogConflict
from service.search.leases import HeldLease, Leases
from service.search.setup import run_setup
from tests.helpers import delete_prefixed, entry, make_settings


@pytest.fixture
def alone(engine_url: str, es: Elasticsearch) -> Iterator[Settings]:
    """A deployment of its own, with no service running on it (the test drives the sealer)."""
    prefix = f"i{uuid.uuid4().hex[:8]}"
    yield make_settings(engine_url, prefix)
    delete_prefixed(es, prefix)


async def _runtime(settings: Settings) -> Runtime:
    es = make_client(settings, str(settings.es_url))
    await run_setup(es, settings)
    return Runtime(settings=settings, es=es, names=IndexNames(settings.index_prefix))


async def _held(runtime: Runtime, holder: str) -> HeldLease:
    leases = Leases(runtime.es, runtime.names, holder, 30)
    lease = await leases.acquire(f"test-{uuid.uuid4().hex}")  # a lease of the test's own
    assert lease is not None
    return HeldLease(leases, lease)


async def _ingest(runtime: Runtime, account_id: str, ids: list[str]) -> None:
    from ingest.pipeline import Item, ingest_items

    items = [Item(entry(id=i)) for i in ids]
    results = await ingest_items(runtime.ingest, items, dict.fromkeys(range(len(ids)), account_id))
    assert [r.status for r in results] == ["created"] * len(ids)


def test_a_paused_former_sealer_cannot_fork_the_log(alone: Settings) -> None:
    async def scenario() -> tuple[list[int], dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            await _ingest(runtime, "acct", ["a1", "a2"])
            held = await _held(runtime, "one")
            paused = Sealer(runtime, keys)
            await paused._account(held, "acct")  # reads the log, then stops for a while
            current = Sealer(runtime, keys)
            assert await current.seal_queued(held) == 2
            await _ingest(runtime, "acct", ["a3"])
            with pytest.raises(LogConflict):  # it would write position 0 and checkpoint 1 again
                await paused.seal_queued(held)
            assert await Sealer(runtime, keys).seal_queued(held) == 1  # a restart resumes
            log = IntegrityLog(runtime.es, runtime.names)
            starts = [int(s["start"]) async for s in log.segments("acct")]
            report = await verify_account(runtime, keys, "acct")
            return starts, report.to_dict()
        finally:
            await runtime.es.close()

    starts, report = asyncio.run(scenario())
    assert starts == [0, 2]  # positions 0, 1 then 2: none given twice
    assert report["ok"], json.dumps(report)
    assert report["tree_size"] == report["entries_checked"] == 3


@pytest.mark.slow
def test_entries_stored_before_integrity_are_sealed_once_into_a_genesis(
    alone: Settings, es: Elasticsearch
) -> None:
    names = IndexNames(alone.index_prefix)

    async def scenario() -> dict[str, Any]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            await AccountStore(runtime.es, names).create_account(Account("old", "Old", "UTC"))
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            for n in range(3):  # as an earlier version stored them: no digest, no MAC
                doc = {**entry(id=f"old{n}"), "account_id": "old", "ingested_at": stamp}
                index = names.entry_index_for_stamp("webhook", str(doc["timestamp"]))
                await runtime.es.index(index=index, id=f"old/old{n}", document=doc, refresh=True)
            held = await _held(runtime, "one")
            await Sealer(runtime, keys).genesis(held)
            await Sealer(runtime, keys).genesis(held)  # once per deployment
            head = await IntegrityLog(runtime.es, names).latest_checkpoint("old")
            assert head is not None and head["genesis"] and head["seq"] == 1
            return (await verify_account(runtime, keys, "old")).to_dict()
        finally:
            await runtime.es.close()

    report = asyncio.run(scenario())
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 3


@pytest.mark.slow
def test_after_a_key_rotation_old_checkpoints_still_verify(alone: Settings, tmp_path: Path) -> None:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    create_keys(old_dir)
    old = load_keys(old_dir)
    (new_dir / "previous").mkdir(parents=True)
    (new_dir / "previous" / "old.pem").write_text(public_pem(old.signing.public_key()))
    shutil.copy(old_dir / "mac.key", new_dir / "mac.key")  # entries keep their MACs
    create_keys(new_dir)  # a new signing key beside the kept MAC key
    new = load_keys(new_dir)
    assert new.key_id != old.key_id and set(new.public) == {old.key_id, new.key_id}

    async def scenario() -> dict[str, Any]:
        runtime = await _runtime(replace(alone, keys_dir=old_dir))
        try:
            await _ingest(runtime, "rot", ["r1"])
            held = await _held(runtime, "one")
            assert await Sealer(runtime, old).seal_queued(held) == 1
            runtime = Runtime(
                settings=replace(alone, keys_dir=new_dir), es=runtime.es, names=runtime.names
            )  # restarted with the new key
            await _ingest(runtime, "rot", ["r2"])
            assert await Sealer(runtime, new).seal_queued(held) == 1
            log = IntegrityLog(runtime.es, runtime.names)
            signers = [c["key_id"] async for c in log.checkpoints("rot")]
            assert signers == [old.key_id, new.key_id]
            with_old_only = await verify_account(runtime, old, "rot")
            assert with_old_only.broken.count == 1  # the new key is not one it trusts
            return (await verify_account(runtime, new, "rot")).to_dict()
        finally:
            await runtime.es.close()

    report = asyncio.run(scenario())
    assert report["ok"], json.dumps(report)
