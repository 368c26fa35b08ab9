"""The sealer on the real engine: a paused former holder cannot fork the log, a restart gives no
position twice, and entries stored before integrity existed are sealed once into a genesis."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from service.actions.sealer import Sealer
from service.actions.verify import verify_account
from service.config import Settings
from service.integrity.canonical import entry_digest
from service.integrity.keys import IntegrityKeys, create_keys, load_keys, public_pem
from service.runtime import Runtime
from service.search.accounts import Account, AccountStore
from service.search.client import make_client
from service.search.indices import IndexNames
from service.search.integrity_log import IntegrityLog, LogConflict
from service.search.leases import HeldLease, Leases
from service.search.setup import run_setup
from service.search.writer import CLAIM_LEASE_S
from service.zones import zone
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


def test_an_answer_need_not_wait_for_the_outcome_the_sealer_seals_from(alone: Settings) -> None:
    """With ``later``, ingest returns once the engine stored the batch, the outcome for the
    sealer left to run afterwards (an HTTP answer is sent first): until it runs, the batch is in
    flight and nothing is sealed; once it ran, the batch is sealed straight from its record."""
    from ingest.pipeline import Item, ingest_items

    async def scenario() -> tuple[list[str], int, int, int]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            later: list[Coroutine[Any, Any, None]] = []
            items = [Item(entry(id=f"l{i}")) for i in range(3)]
            results = await ingest_items(runtime.ingest, items, dict.fromkeys(range(3), "acct"),
                                         later)  # fmt: skip
            held = await _held(runtime, "one")
            sealer = Sealer(runtime, keys)
            before = await sealer.seal_queued(held)
            for recording in later:
                await recording
            return [r.status for r in results], len(later), before, await sealer.seal_queued(held)
        finally:
            await runtime.es.close()

    statuses, pending, before, after = asyncio.run(scenario())
    assert statuses == ["created"] * 3 and pending == 1
    assert before == 0 and after == 3


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
            await runtime.es.indices.refresh(index=runtime.names.integrity)
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
            await runtime.es.indices.refresh(index=runtime.names.integrity)
            signers = [c["key_id"] async for c in log.checkpoints("rot")]
            assert signers == [old.key_id, new.key_id]
            with_old_only = await verify_account(runtime, old, "rot")
            assert with_old_only.broken.count == 1  # the new key is not one it trusts
            return (await verify_account(runtime, new, "rot")).to_dict()
        finally:
            await runtime.es.close()

    report = asyncio.run(scenario())
    assert report["ok"], json.dumps(report)


def test_an_entry_changed_before_it_is_sealed_is_reported_altered(
    alone: Settings, es: Elasticsearch
) -> None:
    """The sealer seals what the service wrote (the leaf of the queue record), not what the
    engine holds when it seals: a change made in between is found, not sealed."""

    async def scenario() -> dict[str, Any]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            await _ingest(runtime, "early", ["c1", "c2"])
            hit = await _stored(runtime, "c1")
            await runtime.es.update(index=hit["_index"], id=hit["_id"], refresh=True,
                                    doc={"message": "rewritten"})  # fmt: skip
            assert await Sealer(runtime, keys).seal_queued(await _held(runtime, "one")) == 2
            return (await verify_account(runtime, keys, "early")).to_dict()
        finally:
            await runtime.es.close()

    report = asyncio.run(scenario())
    assert [(e["id"], e["position"]) for e in report["altered"]["entries"]] == [("c1", 0)]
    assert report["unsealed"]["count"] == report["missing"]["count"] == 0


def test_a_write_with_no_recorded_outcome_is_looked_up_after_its_deadline(
    alone: Settings, es: Elasticsearch
) -> None:
    """A process that stopped between writing a batch and recording its outcome: once the
    write deadline passed, the sealer seals the entries that were written (their content and MAC
    checked), and drops those that never were."""
    from ingest.pipeline import _authenticate
    from service.search.writer import PreparedEntry, doc_id_for, store_entries

    async def scenario() -> tuple[int, int, dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            sources = [{**entry(id=i), "account_id": "cut", "ingested_at": _now()}
                       for i in ("w1", "w2", "never")]  # fmt: skip
            prepared = [PreparedEntry(doc_id_for("cut", str(s["id"])),
                                      names.entry_index_for_stamp("webhook", str(s["timestamp"])),
                                      s) for s in sources]  # fmt: skip
            recording = _authenticate(runtime.ingest, keys, prepared)
            assert recording is not None
            record_id = recording.record_id
            # then the process stops
            await store_entries(runtime.es, names, prepared[:2], first=recording.stored)
            sealer = Sealer(runtime, keys)
            held = await _held(runtime, "one")
            assert await sealer.seal_queued(held) == 0  # in flight: the deadline is ahead
            past = _now(-1)
            await runtime.es.update(index=names.seal_queue, id=f"q:{record_id}", refresh=True,
                                    doc={"created_at": _now(-2), "write_by": past})  # fmt: skip
            sealed = await sealer.seal_queued(held)
            assert runtime.counters["seal_never_written"] == 1
            return (sealed, *await _left_and_verified(runtime, keys, "cut", names.seal_queue))
        finally:
            await runtime.es.close()

    sealed, left, report = asyncio.run(scenario())
    assert sealed == 2 and left == 0
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 2


def test_a_second_copy_of_a_sealed_entry_is_reported(alone: Settings, es: Elasticsearch) -> None:
    async def scenario() -> dict[str, Any]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            await _ingest(runtime, "copy", ["k1"])
            assert await Sealer(runtime, keys).seal_queued(await _held(runtime, "one")) == 1
            hit = await _stored(runtime, "k1")
            other = runtime.names.entry_index_for_stamp("webhook", "2026-01-02T00:00:00.000Z")
            await runtime.es.index(index=other, id=hit["_id"], document=hit["_source"])
            return (await verify_account(runtime, keys, "copy")).to_dict()
        finally:
            await runtime.es.close()

    report = asyncio.run(scenario())
    assert report["unsealed"]["count"] == 1
    assert report["unsealed"]["entries"][0]["why"] == "a second copy of a sealed entry"
    assert report["altered"]["count"] == report["missing"]["count"] == 0


async def _stored(runtime: Runtime, entry_id: str) -> dict[str, Any]:
    await runtime.es.indices.refresh(index=runtime.names.entries_alias)
    query = {"term": {"id": entry_id}}
    resp = await runtime.es.search(index=runtime.names.entries_alias, query=query)
    return dict(resp["hits"]["hits"][0])


async def _left_and_verified(
    runtime: Runtime, keys: IntegrityKeys, account_id: str, queues: str
) -> tuple[int, dict[str, Any]]:
    """How many queue records are left in ``queues``, and the account's verify report."""
    await runtime.es.indices.refresh(index=queues)
    left = await runtime.es.count(index=queues, query={"term": {"kind": "queued"}})
    return int(left["count"]), (await verify_account(runtime, keys, account_id)).to_dict()


def _now(offset_s: float = 0) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=offset_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_forged_outcome_or_a_planted_record_neither_seals_nor_stops_sealing(
    alone: Settings,
) -> None:
    """An outcome rewritten in the engine (no valid MAC) counts as none: nothing is sealed from
    its record before the deadline. A record naming a planted document without a category, past
    its deadline, is refused and removed; sealing goes on."""
    from ingest.pipeline import _authenticate
    from service.search.writer import PreparedEntry, doc_id_for, store_entries

    async def scenario() -> dict[str, Any]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            source = {**entry(id="f1"), "account_id": "forge", "ingested_at": _now()}
            index = names.entry_index_for_stamp("webhook", str(source["timestamp"]))
            prepared = [PreparedEntry(doc_id_for("forge", "f1"), index, source)]
            recording = _authenticate(runtime.ingest, keys, prepared)
            assert recording is not None
            record_id = recording.record_id
            await store_entries(runtime.es, names, prepared, first=recording.stored)
            outcome = {"kind": "written", "created": ["forge/f1"], "unsure": [], "mac": "0" * 64}
            await runtime.es.index(index=names.seal_queue, id=f"w:{record_id}", document=outcome)
            held = await _held(runtime, "one")
            assert await Sealer(runtime, keys).seal_queued(held) == 0
            assert runtime.counters["seal_outcome_refused"] == 1
            planted = {**entry(id="p1"), "account_id": "forge", "ingested_at": _now()}
            del planted["category"]
            await runtime.es.index(index=index, id="forge/p1", document=planted, refresh=True)
            row = [index, "forge/p1", "webhook", planted["timestamp"], "0" * 64, "0" * 64]
            record = {"kind": "queued", "created_at": _now(-3), "write_by": _now(-2),
                      "count": 1, "entries": [row]}  # fmt: skip
            # where records were kept before the queue had an index of its own
            await runtime.es.index(index=names.integrity, id="q:planted", document=record)
            await _ingest(runtime, "forge", ["after"])
            sealer = Sealer(runtime, keys)
            assert await sealer.seal_queued(held) == 1  # "after"; the planted one refused
            assert runtime.counters["seal_refused"] == 1
            assert not await runtime.es.exists(index=names.integrity, id="q:planted")
            return (await verify_account(runtime, keys, "forge")).to_dict()
        finally:
            await runtime.es.close()

    report = asyncio.run(scenario())
    assert sorted(e["id"] for e in report["unsealed"]["entries"]) == ["p1"]
    assert report["pending"] == 1  # f1: authentic, queued, waiting for its lookup


def test_a_malformed_leaf_is_reported_broken(alone: Settings) -> None:
    async def scenario() -> dict[str, Any]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            await _ingest(runtime, "bad", ["b1", "b2"])
            assert await Sealer(runtime, keys).seal_queued(await _held(runtime, "one")) == 2
            names = runtime.names
            segment = (await runtime.es.get(index=names.integrity, id="seg:bad:0"))["_source"]
            segment["leaves"][1]["digest"] = "not hex"
            await runtime.es.index(index=names.integrity, id="seg:bad:0", document=segment,
                                   refresh=True)  # fmt: skip
            return (await verify_account(runtime, keys, "bad")).to_dict()
        finally:
            await runtime.es.close()

    report = asyncio.run(scenario())
    reasons = [c["reason"] for c in report["broken"]["checkpoints"]]
    assert "the leaf at position 1 is not an id, category, timestamp and SHA-256 digest" in reasons
    assert "the stored leaves do not hash to its root" in reasons
    assert [e["id"] for e in report["altered"]["entries"]] == ["b2"]


def test_a_write_into_an_index_that_never_existed_is_dropped_and_sealing_goes_on(
    alone: Settings,
) -> None:
    """A record whose write had no known outcome, naming an index that does not exist (the
    write never happened, or retention deleted it), is given up at its deadline: it used to fail
    every round, and stop the deployment's sealing for good."""

    async def scenario() -> tuple[int, int, bool]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            index = names.entry_index_for_stamp("api", "1992-05-01T00:00:00.000Z")
            row = [index, "acme/ghost", "api", "1992-05-01T00:00:00.000Z", "0" * 64, "0" * 64]
            record = {"kind": "queued", "created_at": _now(-3), "write_by": _now(-2),
                      "count": 1, "entries": [row]}  # fmt: skip
            await runtime.es.index(index=names.integrity, id="q:ghost", document=record)
            await _ingest(runtime, "acme", ["after-ghost"])
            held = await _held(runtime, "one")
            sealed = await Sealer(runtime, keys).seal_queued(held)
            gone = not await runtime.es.exists(index=names.integrity, id="q:ghost")
            return sealed, runtime.counters["seal_never_written"], gone
        finally:
            await runtime.es.close()

    sealed, never_written, gone = asyncio.run(scenario())
    assert (sealed, never_written, gone) == (1, 1, True)


def test_a_round_stopped_before_removing_its_records_seals_nothing_twice(
    alone: Settings, es: Elasticsearch
) -> None:
    """The sealer appended a batch's leaves, then stopped before it removed the batch's queue
    records: the next round finds their entries in the account's log and appends none of them
    again. The records come back where they were kept before the queue had an index of its
    own: they are read and removed there."""

    async def scenario() -> tuple[int, int, dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            await _ingest(runtime, "again", ["a1", "a2", "a3"])
            await _ingest(runtime, "other", ["o1"])
            await runtime.es.indices.refresh(index=names.seal_queue)
            kept = (await runtime.es.search(index=names.seal_queue, size=100, query={
                "terms": {"kind": ["queued", "written"]}}))["hits"]["hits"]  # fmt: skip
            assert len(kept) == 4  # two records, two outcomes
            held = await _held(runtime, "one")
            assert await Sealer(runtime, keys).seal_queued(held) == 4
            for doc in kept:  # as if the round had stopped before removing them
                await runtime.es.index(index=names.integrity, id=doc["_id"],
                                       document=doc["_source"])  # fmt: skip
            again = await Sealer(runtime, keys).seal_queued(held)
            queues = f"{names.integrity},{names.seal_queue}"
            return (again, *await _left_and_verified(runtime, keys, "again", queues))
        finally:
            await runtime.es.close()

    again, left, report = asyncio.run(scenario())
    assert again == 0 and left == 0
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 3


def _running_sealer(runtime: Runtime, keys: IntegrityKeys) -> Sealer:
    """A sealer started a minute ago: the records made from now on are new to it."""
    sealer = Sealer(runtime, keys)
    sealer.started -= timedelta(minutes=1)
    return sealer


def test_a_record_copied_back_into_the_queue_seals_nothing_twice_for_a_settled_sealer(
    alone: Settings,
) -> None:
    """A settled sealer appends the entries the engine created without looking for them in the
    logs, but not those of a record it sealed from: a copy of it put back into the queue (the
    service's own MACs, so authentic) adds no position, nor does one dated anew."""

    async def scenario() -> tuple[list[int], int, dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            held = await _held(runtime, "one")
            sealer = _running_sealer(runtime, keys)
            assert await sealer.seal_queued(held) == 0 and sealer.settled
            await _ingest(runtime, "replayed", ["r1", "r2"])
            await runtime.es.indices.refresh(index=names.seal_queue)
            kept = (await runtime.es.search(index=names.seal_queue, size=100, query={
                "terms": {"kind": ["queued", "written"]}}))["hits"]["hits"]  # fmt: skip
            counts = [await sealer.seal_queued(held)]
            for doc in kept:  # put back as they were
                await runtime.es.index(index=names.seal_queue, id=doc["_id"],
                                       document=doc["_source"])  # fmt: skip
            await _ingest(runtime, "replayed", ["r3"])
            counts.append(await sealer.seal_queued(held))
            sealer.sealed_from.clear()  # as 20 minutes later: the record is old...
            for doc in kept:  # ...and put back as if made just now (its MAC covers when)
                dated = {**doc["_source"], "created_at": _now()}
                await runtime.es.index(index=names.seal_queue, id=doc["_id"], document=dated)
            counts.append(await sealer.seal_queued(held))
            return (counts, *await _left_and_verified(runtime, keys, "replayed", names.seal_queue))
        finally:
            await runtime.es.close()

    counts, left, report = asyncio.run(scenario())
    assert counts == [2, 1, 0] and left == 0
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 3


def test_a_settled_sealer_seals_new_writes_without_searching_the_logs(
    alone: Settings, es: Elasticsearch
) -> None:
    async def scenario() -> tuple[int, dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            held = await _held(runtime, "one")
            sealer = _running_sealer(runtime, keys)
            await _ingest(runtime, "quiet", ["q1"])
            await _ingest(runtime, "loud", ["l1"])
            assert await sealer.seal_queued(held) == 2  # the first round checks every entry
            await _ingest(runtime, "quiet", ["q2", "q3"])
            await _ingest(runtime, "loud", ["l2"])
            before = _searches(es, runtime.names.integrity)
            sealed = await sealer.seal_queued(held)
            assert _searches(es, runtime.names.integrity) == before
            return sealed, (await verify_account(runtime, keys, "quiet")).to_dict()
        finally:
            await runtime.es.close()

    sealed, report = asyncio.run(scenario())
    assert sealed == 3
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 3


def _searches(es: Elasticsearch, index: str) -> int:
    stats = es.indices.stats(index=index, metric="search")["indices"][index]["total"]
    return int(stats["search"]["query_total"])


def test_an_entry_stored_again_under_its_old_claim_is_checked_against_the_log(
    alone: Settings, es: Elasticsearch
) -> None:
    """An entry sealed, then removed from the engine with its index (as retention removes a
    day), and sent again once its id's claim lapsed, is created again: a settled sealer checks it
    against the log, where it is already (one position, the stored entry matching it)."""

    async def scenario() -> tuple[list[int], dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            held = await _held(runtime, "one")
            sealer = _running_sealer(runtime, keys)
            await _ingest(runtime, "again", ["x1"])
            counts = [await sealer.seal_queued(held)]
            stored = await _stored(runtime, "x1")
            await runtime.es.indices.delete(index=stored["_index"])
            claim = await runtime.es.get(index=names.entry_ids, id="again/x1")
            lapsed = datetime.now(UTC) - timedelta(seconds=CLAIM_LEASE_S + 60)
            old_claim = {**claim["_source"], "claimed_at": lapsed.isoformat()}
            await runtime.es.index(index=names.entry_ids, id="again/x1", document=old_claim)
            await _ingest(runtime, "again", ["x1"])  # created again
            counts.append(await sealer.seal_queued(held))
            return counts, (await verify_account(runtime, keys, "again")).to_dict()
        finally:
            await runtime.es.close()

    counts, report = asyncio.run(scenario())
    assert counts == [1, 0]
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 1


def test_a_queue_record_changed_in_the_engine_is_looked_up_and_an_earlier_one_still_seals(
    alone: Settings,
) -> None:
    """A record carries one MAC over all its leaves: a digest changed in the engine breaks it,
    and the record's entries are then read back and sealed as stored (the change neither seals a
    false leaf nor keeps a true entry out of the log). A record of the earlier version (a MAC
    per leaf, the index named in each row) is still sealed from its rows."""

    async def scenario() -> tuple[int, int, list[dict[str, str]], dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            await _ingest(runtime, "rec", ["r1", "r2"])
            await runtime.es.indices.refresh(index=names.seal_queue)
            [record] = (await runtime.es.search(index=names.seal_queue, query={
                "term": {"kind": "queued"}}))["hits"]["hits"]  # fmt: skip
            source = record["_source"]
            assert source["format"] == 3 and "mac" in source and len(source["entries"][0]) == 5
            source["entries"][1][4] = "0" * 64  # r2's digest
            await runtime.es.index(index=names.seal_queue, id=record["_id"], document=source)
            stored = (await runtime.es.get(index=source["indices"][0], id="rec/r1"))["_source"]
            earlier = {**entry(id="e1"), "account_id": "rec", "ingested_at": _now()}
            index = names.entry_index_for_stamp(earlier["category"], earlier["timestamp"])
            digest = entry_digest(earlier)
            leaf = {"id": "e1", "category": earlier["category"],
                    "timestamp": earlier["timestamp"], "digest": digest}  # fmt: skip
            earlier["integrity"] = {"digest": digest, "mac": keys.mac("rec", leaf)}
            await runtime.es.index(index=index, id="rec/e1", document=earlier)
            row = [index, "rec/e1", leaf["category"], leaf["timestamp"], digest,
                   keys.mac("rec", leaf)]  # fmt: skip
            await runtime.es.index(index=names.seal_queue, id="q:earlier", document={
                "kind": "queued", "created_at": _now(1), "write_by": _now(30), "count": 1,
                "entries": [row]})  # fmt: skip
            outcome = {"kind": "written", "created": ["rec/e1"], "unsure": [],
                       "mac": keys.outcome_mac("earlier", ["rec/e1"], [])}  # fmt: skip
            await runtime.es.index(index=names.seal_queue, id="w:earlier", document=outcome)
            sealed = await Sealer(runtime, keys).seal_queued(await _held(runtime, "one"))
            await runtime.es.indices.refresh(index=names.integrity)
            leaves = await IntegrityLog(runtime.es, names).leaves_between("rec", 0, 3)
            assert stored["integrity"]["digest"] == leaves[0]["digest"]
            report = (await verify_account(runtime, keys, "rec")).to_dict()
            return sealed, runtime.counters["seal_record_refused"], leaves, report
        finally:
            await runtime.es.close()

    sealed, refused, leaves, report = asyncio.run(scenario())
    assert (sealed, refused) == (3, 1)
    assert [leaf["id"] for leaf in leaves] == ["r1", "r2", "e1"]
    assert "0" * 64 not in {leaf["digest"] for leaf in leaves}
    assert report["ok"] and report["tree_size"] == 3


def test_a_batch_whose_queue_record_the_engine_refuses_writes_no_entry(alone: Settings) -> None:
    """The queue record goes to the engine in the claims' request: unless it is created, no
    entry of the batch is written (each is failed, to retry), and the retry is stored and
    sealed."""
    from ingest.pipeline import Item, ingest_items

    async def scenario() -> tuple[list[tuple[str, str]], int, list[str], int, dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        accounts = dict.fromkeys(range(2), "unrecorded")
        try:
            await runtime.es.indices.close(index=names.seal_queue)
            refused = await ingest_items(runtime.ingest, [Item(entry(id=i)) for i in "ab"],
                                         accounts)  # fmt: skip
            present = {"index": names.entries_alias, "ignore_unavailable": True}
            await runtime.es.indices.refresh(**present)
            stored = (await runtime.es.count(**present))["count"]
            await runtime.es.indices.open(index=names.seal_queue)
            await runtime.es.cluster.health(index=names.seal_queue, wait_for_status="yellow")
            again = await ingest_items(runtime.ingest, [Item(entry(id=i)) for i in "ab"],
                                       accounts)  # fmt: skip
            sealed = await Sealer(runtime, keys).seal_queued(await _held(runtime, "one"))
            report = (await verify_account(runtime, keys, "unrecorded")).to_dict()
            return ([(r.status, r.message) for r in refused], stored,
                    [r.status for r in again], sealed, report)  # fmt: skip
        finally:
            await runtime.es.close()

    refused, stored, again, sealed, report = asyncio.run(scenario())
    assert [status for status, _ in refused] == ["failed", "failed"]
    assert all("could not be recorded for sealing" in message for _, message in refused)
    assert stored == 0
    assert again == ["created", "created"] and sealed == 2
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 2


def test_a_queue_record_the_engine_created_for_a_resent_request_counts_as_created(
    alone: Settings,
) -> None:
    """The claims' request is sent again after the engine applied it (its answer lost): the
    record answers 409, which can only be this batch's own (its id is drawn for each batch), so
    the entries are written. An outcome the engine did not store is not kept in memory either:
    the sealer never holds an outcome the queue lacks."""
    from ingest.pipeline import _authenticate
    from service.search.seal_queue import SealQueue
    from service.search.writer import PreparedEntry, doc_id_for, store_entries

    async def scenario() -> tuple[list[str], bool, bool, bool]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            runtime.sealing_here.start()
            sources = [{**entry(id=i), "account_id": "resent", "ingested_at": _now()}
                       for i in ("s1", "s2")]  # fmt: skip
            prepared = [PreparedEntry(doc_id_for("resent", str(s["id"])),
                                      names.entry_index_for_stamp("webhook", str(s["timestamp"])),
                                      s) for s in sources]  # fmt: skip
            recording = _authenticate(runtime.ingest, keys, prepared)
            assert recording is not None
            record = json.loads(recording.stored.op.split(b"\n")[1])
            await runtime.es.index(index=names.seal_queue, id=f"q:{recording.record_id}",
                                   document=record)  # the first sending, applied  # fmt: skip
            outcomes = await store_entries(runtime.es, names, prepared, first=recording.stored)
            queue = SealQueue(runtime.es, names, runtime.sealing_here)
            queue.recorded(recording)
            kept = runtime.sealing_here.get(recording.record_id) is not None
            await runtime.es.indices.close(index=names.seal_queue)
            created = [p.doc_id for p in prepared]
            with pytest.raises(Exception):  # noqa: B017 (whatever the engine's refusal)
                await queue.written(
                    recording.record_id,
                    created,
                    [],
                    keys.outcome_mac(recording.record_id, created, []),
                )
            held = runtime.sealing_here.get(recording.record_id)
            return ([o.status for o in outcomes], recording.stored.created, kept,
                    held is not None and held.created is None)  # fmt: skip
        finally:
            await runtime.es.close()

    statuses, recorded, kept, outcome_not_kept = asyncio.run(scenario())
    assert statuses == ["created", "created"] and recorded and kept
    assert outcome_not_kept


def test_the_lease_holder_seals_the_records_it_wrote_without_reading_them_back(
    alone: Settings, es: Elasticsearch
) -> None:
    """While its sealer holds the lease, a process seals the queue records it wrote from memory,
    and the engine's copy of each names the entries only (no leaves, no MAC): only another
    process's record is read from the engine, a copy changed in the engine seals what the
    service wrote, and nothing is kept once sealed or while the lease is not held."""

    async def scenario() -> tuple[int, int, list[int], list[dict[str, str]], dict[str, Any]]:
        runtime, other = await _runtime(alone), await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            await _ingest(runtime, "mem", ["before"])  # the lease not held yet: not kept
            kept = [len(runtime.sealing_here)]
            runtime.sealing_here.start()  # as the sealer's loop does once it holds the lease
            await _ingest(runtime, "mem", ["m1", "m2"])
            await _ingest(other, "mem", ["o1"])
            kept.append(len(runtime.sealing_here))
            await runtime.es.indices.refresh(index=names.seal_queue)
            records = (await runtime.es.search(index=names.seal_queue, size=10, query={
                "terms": {"kind": ["queued", "queued_ids"]}}))["hits"]["hits"]  # fmt: skip
            kinds = sorted((r["_source"]["kind"], len(r["_source"]["entries"])) for r in records)
            assert kinds == [("queued", 1), ("queued", 1), ("queued_ids", 2)]
            [mine] = [r for r in records if r["_source"]["kind"] == "queued_ids"]
            source = mine["_source"]
            assert "mac" not in source and source["entries"] == [[0, "mem/m1"], [0, "mem/m2"]]
            source["entries"][0][1] = "mem/before"  # in the engine's copy only
            await runtime.es.index(index=names.seal_queue, id=mine["_id"], document=source)
            gets = _gets(es, names.seal_queue)
            sealed = await Sealer(runtime, keys).seal_queued(await _held(runtime, "one"))
            read = _gets(es, names.seal_queue) - gets
            kept.append(len(runtime.sealing_here))
            await runtime.es.indices.refresh(index=names.integrity)
            leaves = await IntegrityLog(runtime.es, names).leaves_between("mem", 0, 4)
            report = (await verify_account(runtime, keys, "mem")).to_dict()
            assert runtime.counters["seal_record_refused"] == 0
            return sealed, read, kept, leaves, report
        finally:
            await runtime.es.close()
            await other.es.close()

    sealed, read, kept, leaves, report = asyncio.run(scenario())
    assert sealed == 4 and read == 4  # the two records not kept, and their outcomes
    assert kept == [0, 1, 0]
    assert sorted(leaf["id"] for leaf in leaves) == ["before", "m1", "m2", "o1"]
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 4


def _refreshes(es: Elasticsearch, index: str) -> int:
    stats = es.indices.stats(index=index, metric="refresh")["_all"]["total"]["refresh"]
    return int(stats["total"])


async def _queue_left(runtime: Runtime) -> int:
    """Documents left in the seal queue (records and outcomes)."""
    await runtime.es.indices.refresh(index=runtime.names.seal_queue)
    left = await runtime.es.count(index=runtime.names.seal_queue, query={"match_all": {}})
    return int(left["count"])


async def _settled_holder(
    runtime: Runtime, keys: IntegrityKeys, account_id: str
) -> tuple[HeldLease, Sealer, int]:
    """The lease holder's process, its sealer settled after a first round over one entry of
    ``account_id`` (``<account>-first``): the lease, the sealer and what that round sealed."""
    runtime.sealing_here.start()
    held = await _held(runtime, "one")
    sealer = _running_sealer(runtime, keys)
    await _ingest(runtime, account_id, [f"{account_id}-first"])
    return held, sealer, await sealer.seal_queued(held)


def test_a_settled_holder_seals_its_own_writes_without_refreshing_the_queue(
    alone: Settings, es: Elasticsearch
) -> None:
    """Once settled, the lease holder takes the records its own process wrote from memory: it
    neither refreshes the queue's index nor searches it, and still removes each record (and its
    outcome) once sealed."""

    async def scenario() -> tuple[list[int], int, int, dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            held, sealer, first = await _settled_holder(runtime, keys, "own")
            counts = [first]  # the first round lists the queue
            await _ingest(runtime, "own", ["w2", "w3"])
            await _ingest(runtime, "own", ["w4"])
            before = _refreshes(es, names.seal_queue)
            counts.append(await sealer.seal_queued(held))
            refreshed = _refreshes(es, names.seal_queue) - before
            left = await _queue_left(runtime)
            return counts, refreshed, left, (await verify_account(runtime, keys, "own")).to_dict()
        finally:
            await runtime.es.close()

    counts, refreshed, left, report = asyncio.run(scenario())
    assert counts == [1, 3] and refreshed == 0 and left == 0
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 4


def test_a_settled_holder_lists_the_queue_once_another_process_wrote_to_it(
    alone: Settings, es: Elasticsearch
) -> None:
    """A record written by a process whose sealer does not hold the lease moves the queue's
    ``WRITERS`` document in the same request: the holder, reading that document by id, lists
    the queue in the engine at its next round and seals that record with its own."""

    async def scenario() -> tuple[list[int], list[int], dict[str, Any]]:
        runtime, other = await _runtime(alone), await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            held, sealer, first = await _settled_holder(runtime, keys, "both")
            counts = [first]
            await _ingest(runtime, "both", ["h2"])
            counts.append(await sealer.seal_queued(held))  # from memory
            refreshes = [_refreshes(es, names.seal_queue)]
            await _ingest(other, "both", ["o1"])
            await _ingest(runtime, "both", ["h3"])
            counts.append(await sealer.seal_queued(held))  # listed
            refreshes.append(_refreshes(es, names.seal_queue))
            assert await _queue_left(runtime) == 0
            return counts, refreshes, (await verify_account(runtime, keys, "both")).to_dict()
        finally:
            await runtime.es.close()
            await other.es.close()

    counts, refreshes, report = asyncio.run(scenario())
    assert counts == [1, 1, 2] and refreshes[1] > refreshes[0]
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 4


def test_a_record_nothing_announces_is_listed_within_the_listing_period(
    alone: Settings,
) -> None:
    """A record that does not move ``WRITERS`` (written by an instance of an earlier version, or
    by a former holder that has not yet learnt it lost the lease) waits for the holder's
    periodic listing, at most ``LIST_EVERY_S`` after the last one; then it is sealed (its
    entries looked up, the record naming them only), and the holder lists every round for a
    while: the next such record waits no longer."""
    from service.actions.sealer import LIST_EVERY_S

    async def scenario() -> list[int]:
        runtime, former = await _runtime(alone), await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            former.sealing_here.start()  # it believes it still holds the lease
            held, sealer, first = await _settled_holder(runtime, keys, "quiet")
            counts = [first]
            await _ingest(former, "quiet", ["f1"])
            counts.append(await sealer.seal_queued(held))  # not listed yet
            sealer.listed_at -= LIST_EVERY_S  # as if the period went by
            counts.append(await sealer.seal_queued(held))
            await _ingest(former, "quiet", ["f2"])
            counts.append(await sealer.seal_queued(held))
            assert await _queue_left(runtime) == 0
            return counts
        finally:
            await runtime.es.close()
            await former.es.close()

    assert asyncio.run(scenario()) == [1, 0, 1, 1]


def test_a_record_the_holder_could_not_keep_is_read_from_the_queue(alone: Settings) -> None:
    """A record of the holder's own process that is not kept in memory (no room for it) is
    listed in the engine at the next round, not left for the periodic listing."""

    async def scenario() -> tuple[list[int], dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            held, sealer, first = await _settled_holder(runtime, keys, "big")
            counts = [first]
            runtime.sealing_here.max_entries = 1
            await _ingest(runtime, "big", ["b2", "b3"])  # no room: written with its leaves
            counts.append(await sealer.seal_queued(held))
            assert await _queue_left(runtime) == 0
            return counts, (await verify_account(runtime, keys, "big")).to_dict()
        finally:
            await runtime.es.close()

    counts, report = asyncio.run(scenario())
    assert counts == [1, 2]
    assert report["ok"] and report["tree_size"] == report["entries_checked"] == 3


def test_a_round_that_sealed_shows_its_checkpoint_to_readers_that_do_not_refresh(
    alone: Settings, es: Elasticsearch
) -> None:
    """The log's index has no scheduled refresh: the sealer refreshes it once a round appended,
    so the head and the feed (which read without refreshing) show the new checkpoint at once,
    and a round that sealed nothing refreshes nothing."""

    async def scenario() -> tuple[list[int], list[int | None], list[int]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        log = IntegrityLog(runtime.es, runtime.names)
        try:
            held, sealer, first = await _settled_holder(runtime, keys, "seen")
            counts, sizes, refreshes = [first], [], [_refreshes(es, runtime.names.integrity)]
            for ids in (["s2", "s3"], []):
                if ids:
                    await _ingest(runtime, "seen", ids)
                counts.append(await sealer.seal_queued(held))
                head = await log.latest_checkpoint("seen", fresh=False)
                sizes.append(None if head is None else int(head["tree_size"]))
                refreshes.append(_refreshes(es, runtime.names.integrity))
            return counts, sizes, refreshes
        finally:
            await runtime.es.close()

    counts, sizes, refreshes = asyncio.run(scenario())
    assert counts == [1, 2, 0] and sizes == [3, 3]
    assert refreshes[1] == refreshes[0] + 1 and refreshes[2] == refreshes[1]


def test_a_record_naming_its_entries_only_is_sealed_by_the_next_holder_from_the_entries(
    alone: Settings, es: Elasticsearch
) -> None:
    """The lease holder's records name their entries only; should it lose the lease before
    sealing them, the next holder looks each entry up and seals it as stored when it checks out:
    an entry changed in the engine meanwhile is not sealed, one the outcome says was created and
    that is gone is reported (not dropped as never written), and an entry with no known outcome
    is deferred, then sealed once its write deadline passed."""

    async def scenario() -> tuple[list[int], tuple[int, int], list[dict[str, str]], dict[str, Any]]:
        writer, holder = await _runtime(alone), await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = writer.names
        try:
            writer.sealing_here.start()
            await _ingest(writer, "ids", ["a1", "a2", "a3", "a4"])
            writer.sealing_here.stop()  # the lease lost before its sealer took the record
            await writer.es.indices.refresh(index=names.seal_queue)
            [record] = (await writer.es.search(index=names.seal_queue, query={
                "term": {"kind": "queued_ids"}}))["hits"]["hits"]  # fmt: skip
            token = record["_id"][2:]
            index = record["_source"]["indices"][0]
            changed = (await writer.es.get(index=index, id="ids/a2"))["_source"]
            changed["action"] = "changed.behind_the_service"
            await writer.es.index(index=index, id="ids/a2", document=changed, refresh=True)
            await writer.es.delete(index=index, id="ids/a4", refresh=True)
            created, unsure = ["ids/a1", "ids/a2", "ids/a4"], ["ids/a3"]
            outcome = {"kind": "written", "created": created, "unsure": unsure,
                       "mac": keys.outcome_mac(token, created, unsure)}  # fmt: skip
            await writer.es.index(index=names.seal_queue, id=f"w:{token}", document=outcome)
            sealer = Sealer(holder, keys)
            sealed = [await sealer.seal_queued(await _held(holder, "next"))]
            await holder.es.indices.refresh(index=names.seal_queue)
            deferred = (await holder.es.get(index=names.seal_queue, id=f"q:{token}"))["_source"]
            assert deferred["deferred"] and deferred["entries"] == [[0, "ids/a3"]]
            deferred["write_by"] = _now(-1)  # its write deadline passed
            await holder.es.index(index=names.seal_queue, id=f"q:{token}", document=deferred)
            sealed.append(await sealer.seal_queued(await _held(holder, "next")))
            await holder.es.indices.refresh(index=f"{names.integrity},{names.seal_queue}")
            leaves = await IntegrityLog(holder.es, names).leaves_between("ids", 0, 2)
            left = await holder.es.count(index=names.seal_queue, query={"match_all": {}})
            assert left["count"] == 0
            report = (await verify_account(holder, keys, "ids")).to_dict()
            counted = (holder.counters["seal_refused"], holder.counters["seal_never_written"])
            return sealed, counted, leaves, report
        finally:
            await writer.es.close()
            await holder.es.close()

    sealed, counted, leaves, report = asyncio.run(scenario())
    assert sealed == [1, 1] and counted == (2, 0)  # a2 changed, a4 gone
    assert [leaf["id"] for leaf in leaves] == ["a1", "a3"]
    assert not report["ok"] and report["tree_size"] == 2


def test_the_lease_holders_record_listed_while_its_batch_is_written_is_not_read_back(
    alone: Settings, es: Elasticsearch
) -> None:
    """The sealer lists a record as soon as the claims' request created it, before the batch's
    entries are written: the lease holder's own is taken from memory then too (it waits for its
    outcome), and one the engine did not create is dropped from memory."""
    from service.search.seal_queue import QueuedEntry, SealQueue

    async def scenario() -> tuple[list[tuple[str, bool, bool]], int, int]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            runtime.sealing_here.start()
            queue = SealQueue(runtime.es, names, runtime.sealing_here)
            leaf = {"id": "x", "category": "api", "timestamp": _now(), "digest": "a" * 64}
            index = names.entry_index_for_stamp("api", leaf["timestamp"])
            written = queue.record([QueuedEntry(index, "acc/x", leaf)], keys.queue_mac)
            await runtime.es.bulk(operations=written.stored.op)  # type: ignore[arg-type]
            refused = queue.record([QueuedEntry(index, "acc/y", leaf)], keys.queue_mac)
            queue.forget(refused)  # as the ingest path does when the engine did not create it
            gets = _gets(es, names.seal_queue)
            records, _ = await queue.oldest(10)
            read = _gets(es, names.seal_queue) - gets
            listed = [(r.record_id, r.local, r.created is None) for r in records]
            return listed, read, len(runtime.sealing_here)
        finally:
            await runtime.es.close()

    listed, read, kept = asyncio.run(scenario())
    assert len(listed) == 1 and listed[0][1:] == (True, True)
    assert read == 0 and kept == 1


def test_the_sealer_loop_keeps_records_in_memory_only_while_it_holds_the_lease(
    alone: Settings,
) -> None:
    """The loop starts keeping this process's queue records once it holds the sealer's lease,
    and drops them all when it stops holding it."""
    from service.actions.sealer import sealer_loop

    async def scenario() -> tuple[bool, bool, int, bool, int]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        before = runtime.sealing_here.active
        runtime.setup_done = True
        loop = asyncio.create_task(sealer_loop(runtime, keys))
        try:
            for _ in range(100):
                if runtime.sealing_here.active:
                    break
                await asyncio.sleep(0.1)
            holding = runtime.sealing_here.active
            await _ingest(runtime, "looped", ["l1", "l2"])
            log = IntegrityLog(runtime.es, runtime.names)
            size = 0
            for _ in range(100):
                latest = await log.latest_checkpoint("looped")
                size = int(latest["tree_size"]) if latest else 0
                if size >= 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            await runtime.es.close()
        return before, holding, size, runtime.sealing_here.active, len(runtime.sealing_here)

    before, holding, size, after, kept = asyncio.run(scenario())
    assert not before and holding and size == 2
    assert not after and kept == 0


def test_segments_written_before_leaf_ids_were_indexed_are_still_found_by_id(
    alone: Settings, es: Elasticsearch
) -> None:
    """Segments used to list their entries' ids apart (``ids``), in an index where the leaves'
    ids were not indexed. After the upgrade the old segments and the new ones (the ids indexed
    in the leaves only) are both found by entry id: a round that stopped before removing its
    queue records seals none of their entries again, and the page's seals name the right
    checkpoints."""
    names = IndexNames(alone.index_prefix)
    earlier = {"dynamic": False, "properties": {
        "kind": {"type": "keyword"}, "account_id": {"type": "keyword"}, "seq": {"type": "long"},
        "start": {"type": "long"}, "tree_size": {"type": "long"}, "created_at": {"type": "date"},
        "ids": {"type": "keyword"}, "write_by": {"type": "date"},
        "deferred": {"type": "boolean"}}}  # fmt: skip

    def kept(index: str, kinds: list[str]) -> list[dict[str, Any]]:
        es.indices.refresh(index=index)
        hits = es.search(index=index, size=100, query={"terms": {"kind": kinds}})["hits"]["hits"]
        return [{"_id": h["_id"], **h["_source"]} for h in hits]

    def put(index: str, docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            document = {k: v for k, v in doc.items() if k != "_id"}
            es.index(index=index, id=doc["_id"], document=document, refresh=True)

    async def first() -> list[dict[str, Any]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            await _ingest(runtime, "up", ["u1", "u2"])
            queued = kept(names.seal_queue, ["queued", "written"])
            assert await Sealer(runtime, keys).seal_queued(await _held(runtime, "one")) == 2
            return queued
        finally:
            await runtime.es.close()

    queued = asyncio.run(first())
    log_docs = kept(names.integrity, ["segment", "checkpoint"])
    for doc in log_docs:
        if doc["kind"] == "segment":
            doc["ids"] = [leaf["id"] for leaf in doc["leaves"]]
    es.indices.delete(index=names.integrity)  # as an earlier version made the index and the log
    es.indices.delete_index_template(name=names.resource("integrity"))  # its mapping, not ours
    es.indices.create(index=names.integrity, mappings=earlier)
    put(names.integrity, log_docs)
    before = es.indices.get_mapping(index=names.integrity)[names.integrity]["mappings"]
    assert "leaves" not in before["properties"]  # the old segments' leaf ids are not indexed

    async def upgraded() -> tuple[int, set[str], dict[str, int], dict[str, Any]]:
        runtime = await _runtime(alone)  # setup maps the leaves' ids
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        try:
            put(names.seal_queue, queued)  # a round stopped before it removed them
            await _ingest(runtime, "up", ["u3"])
            sealed = await Sealer(runtime, keys).seal_queued(await _held(runtime, "one"))
            await runtime.es.indices.refresh(index=names.integrity)
            log = IntegrityLog(runtime.es, names)
            found = await log.sealed_among("up", ["u1", "u2", "u3", "u4"])
            seals = await log.sealing_checkpoints("up", ["u1", "u3", "u4"])
            report = (await verify_account(runtime, keys, "up")).to_dict()
            return sealed, found, seals, report
        finally:
            await runtime.es.close()

    sealed, found, seals, report = asyncio.run(upgraded())
    mapping = es.indices.get_mapping(index=names.integrity)[names.integrity]["mappings"]
    assert mapping["properties"]["leaves"]["properties"]["id"]["type"] == "keyword"
    assert sealed == 1  # u3 only
    assert found == {"u1", "u2", "u3"}
    assert seals == {"u1": 1, "u3": 2}
    assert report["ok"] and report["tree_size"] == 3


def test_records_with_a_mac_or_times_no_service_writes_are_dropped_and_sealing_goes_on(
    alone: Settings,
) -> None:
    """A record whose MAC is not hex, or whose times have no offset, is not one the service
    wrote: it is removed as malformed (comparing it failed every round, and held the queue)."""

    async def scenario() -> tuple[int, int]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        try:
            await _ingest(runtime, "odd", ["o1"])
            await runtime.es.indices.refresh(index=names.seal_queue)
            [record] = (await runtime.es.search(index=names.seal_queue, query={
                "term": {"kind": "queued"}}))["hits"]["hits"]  # fmt: skip
            source = record["_source"]
            await runtime.es.index(index=names.seal_queue, id=record["_id"],
                                   document={**source, "mac": "é" * 64})  # fmt: skip
            naive = {**source, "created_at": "2026-12-01T00:00:00",
                     "write_by": "2026-12-01T00:00:05"}  # fmt: skip
            await runtime.es.index(index=names.seal_queue, id="q:naive", document=naive)
            await _ingest(runtime, "odd", ["o2"])
            sealed = await Sealer(runtime, keys).seal_queued(await _held(runtime, "one"))
            return sealed, runtime.counters["seal_queue_malformed"]
        finally:
            await runtime.es.close()

    assert asyncio.run(scenario()) == (1, 2)  # o2 sealed; both records dropped


async def _sealed(runtime: Runtime, keys: IntegrityKeys, account_id: str, ids: list[str]) -> None:
    """Store and seal ``ids``, the log's index refreshed for the feed."""
    await _ingest(runtime, account_id, ids)
    assert await Sealer(runtime, keys).seal_queued(await _held(runtime, "one")) == len(ids)
    await runtime.es.indices.refresh(index=runtime.names.integrity)


def test_the_feed_reads_a_sealed_segment_from_the_engine_once_for_every_reader(
    alone: Settings,
) -> None:
    """Pages of the feed within one sealed segment, read by one reader after another (an
    account's destinations), come from the segment read first: with the segment gone from the
    engine after the first page, the next pages still read; a process that never read it finds
    the log damaged."""
    from service.actions.feed import read_feed
    from service.errors import ServiceError

    async def scenario() -> tuple[list[int], list[int], int, int]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        utc = zone("UTC", "tz")
        try:
            await _sealed(runtime, keys, "feed", [f"p{i}" for i in range(30)])
            first = await read_feed(runtime, "feed", after=0, limit=10, tz=utc)
            await runtime.es.delete(index=names.integrity, id="seg:feed:0", refresh=True)
            second = await read_feed(runtime, "feed", after=10, limit=10, tz=utc)
            third = await read_feed(runtime, "feed", after=20, limit=10, tz=utc)
            other = Runtime(settings=alone, es=runtime.es, names=names)  # another process
            with pytest.raises(ServiceError) as damaged:
                await read_feed(other, "feed", after=10, limit=10, tz=utc)
            positions = [e["position"] for page in (first, second, third) for e in page.entries]
            ids = [e["id"] for page in (first, second, third) for e in page.entries]
            assert ids == [f"p{i}" for i in range(30)]
            return (
                positions,
                [third.next_after, third.head],
                damaged.value.status,
                len(runtime.segments.segments),
            )
        finally:
            await runtime.es.close()

    positions, (next_after, head), status, held = asyncio.run(scenario())
    assert positions == list(range(1, 31))
    assert next_after == head == 30
    assert status == 503 and held == 1


def test_the_feed_fetches_an_entry_from_the_engine_once_for_every_reader(
    alone: Settings, es: Elasticsearch
) -> None:
    """An account's destinations read the same positions one after the other: the second reads
    each entry from the first's fetch (the engine's get count does not move); a process that
    never read them fetches them, and one delivering to a single destination of the account
    keeps nothing."""
    from service.actions.feed import read_feed

    async def scenario() -> tuple[list[int], list[str], list[str]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        utc = zone("UTC", "tz")
        try:
            await _sealed(runtime, keys, "shared", [f"s{i}" for i in range(12)])
            runtime.delivering = {"webhook": "shared", "syslog": "shared", "other": "o"}
            gets = [_gets(es, names.entries_alias)]
            first = await read_feed(runtime, "shared", after=0, limit=12, tz=utc)
            gets.append(_gets(es, names.entries_alias))
            second = await read_feed(runtime, "shared", after=4, limit=8, tz=utc)
            gets.append(_gets(es, names.entries_alias))
            other = Runtime(settings=alone, es=runtime.es, names=names)  # another process
            await read_feed(other, "shared", after=0, limit=12, tz=utc)
            gets.append(_gets(es, names.entries_alias))
            other.delivering = {"webhook": "shared"}  # one destination: nothing to share
            await read_feed(other, "shared", after=0, limit=12, tz=utc)
            await read_feed(other, "shared", after=0, limit=12, tz=utc)
            gets.append(_gets(es, names.entries_alias))
            fetched = [b - a for a, b in itertools.pairwise(gets)]
            return fetched, [e["id"] for e in first.entries], [e["id"] for e in second.entries]
        finally:
            await runtime.es.close()

    fetched, first, second = asyncio.run(scenario())
    assert first == [f"s{i}" for i in range(12)] and second == first[4:]
    assert fetched == [12, 0, 12, 24]


def test_the_feed_serves_what_this_process_wrote_for_an_account_it_delivers_from_memory(
    alone: Settings, es: Elasticsearch
) -> None:
    """Entries a process creates for an account it delivers are read by its feed without an
    engine get, and read exactly as another process reads them from the engine; those of an
    account delivered elsewhere, or written before the delivery began, are fetched."""
    from service.actions.feed import read_feed

    async def scenario() -> tuple[list[int], list[dict[str, Any]], list[dict[str, Any]]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        names = runtime.names
        utc = zone("UTC", "tz")
        try:
            await _sealed(runtime, keys, "here", ["h0", "h1"])  # before the delivery began
            runtime.delivering = {"webhook": "here"}
            await _sealed(runtime, keys, "here", [f"h{i}" for i in range(2, 10)])
            await _sealed(runtime, keys, "there", [f"t{i}" for i in range(4)])
            gets = [_gets(es, names.entries_alias)]
            mine = await read_feed(runtime, "here", after=2, limit=8, tz=utc)
            gets.append(_gets(es, names.entries_alias))
            await read_feed(runtime, "here", after=0, limit=2, tz=utc)
            await read_feed(runtime, "there", after=0, limit=4, tz=utc)
            gets.append(_gets(es, names.entries_alias))
            other = Runtime(settings=alone, es=runtime.es, names=names)  # another process
            theirs = await read_feed(other, "here", after=2, limit=8, tz=utc)
            fetched = [b - a for a, b in itertools.pairwise(gets)]
            return fetched, mine.entries, theirs.entries
        finally:
            await runtime.es.close()

    fetched, mine, theirs = asyncio.run(scenario())
    assert fetched == [0, 6]
    assert [e["id"] for e in mine] == [f"h{i}" for i in range(2, 10)]
    assert mine == theirs


def test_an_id_sent_twice_in_a_batch_is_served_from_memory_as_stored(
    alone: Settings,
) -> None:
    """The engine stores the first of two entries sent with one id in a request: the feed of
    the process that wrote it serves that one from memory, as another process reads it."""
    from ingest.pipeline import Item, ingest_items
    from service.actions.feed import read_feed

    async def scenario() -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
        runtime = await _runtime(alone)
        keys = load_keys(alone.keys_dir)  # type: ignore[arg-type]
        utc = zone("UTC", "tz")
        try:
            runtime.delivering = {"webhook": "twice"}
            items = [Item(entry(id="d1", message="first")),
                     Item(entry(id="d1", message="second", category="audit"))]  # fmt: skip
            results = await ingest_items(runtime.ingest, items, {0: "twice", 1: "twice"})
            assert await Sealer(runtime, keys).seal_queued(await _held(runtime, "one")) == 1
            await runtime.es.indices.refresh(index=runtime.names.integrity)
            mine = await read_feed(runtime, "twice", after=0, limit=5, tz=utc)
            other = Runtime(settings=alone, es=runtime.es, names=runtime.names)
            theirs = await read_feed(other, "twice", after=0, limit=5, tz=utc)
            return [r.status for r in results], mine.entries, theirs.entries
        finally:
            await runtime.es.close()

    statuses, mine, theirs = asyncio.run(scenario())
    assert statuses == ["created", "duplicate"]
    assert [e["message"] for e in mine] == ["first"] and mine == theirs


def _gets(es: Elasticsearch, index: str) -> int:
    return int(es.indices.stats(index=index, metric="get")["_all"]["total"]["get"]["total"])
