"""Retention where the engine has no ILM: the sweeper deletes expired integration days only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import AuthorizationException, Elasticsearch

from ingest.pipeline import Item, ingest_items
from service.actions.retention import run_retention
from service.runtime import Runtime
from service.search import retention
from service.search.client import make_client
from service.search.indices import IndexNames
from service.search.leases import LeaseLost
from service.search.retention import RetentionReport
from service.search.setup import run_setup
from tests.helpers import delete_prefixed, make_settings

NOW = datetime.now(UTC)
ACCOUNT = "retention-acct"


def _entry(entry_id: str, category: str, age: timedelta) -> dict[str, Any]:
    return {
        "id": entry_id,
        "timestamp": (NOW - age).isoformat().replace("+00:00", "Z"),
        "category": category,
        "type": "notice",
        "actor": {"type": "system", "id": "sync"},
        "action": f"{category}.test",
        "message": "retention test",
        "metadata": {"provider": "hubspot"} if category == "integration" else {},
    }


@pytest.fixture
def prefix(es: Elasticsearch) -> Iterator[str]:
    name = f"r{uuid.uuid4().hex[:8]}"
    yield name
    delete_prefixed(es, name)


def _run(engine_url: str, prefix: str, es: Elasticsearch) -> RetentionReport:
    settings = make_settings(engine_url, prefix)
    names = IndexNames(prefix)
    fresh = [_entry("int-29d", "integration", timedelta(days=29)),
             _entry("hook-400d", "webhook", timedelta(days=400)),
             _entry("hook-31d", "webhook", timedelta(days=31)),
             _entry("api-45d", "api", timedelta(days=45))]  # fmt: skip
    expired = [_entry("int-31d", "integration", timedelta(days=31)),
               _entry("int-45d", "integration", timedelta(days=45))]  # fmt: skip

    async def go() -> RetentionReport:
        client = make_client(settings, engine_url)
        try:
            await run_setup(client, settings)
            runtime = Runtime(settings=settings, es=client, names=names)
            results = await ingest_items(
                runtime.ingest, [Item(e) for e in fresh], dict.fromkeys(range(4), ACCOUNT)
            )
            assert [r.status for r in results] == ["created"] * 4
            for e in expired:  # stored while they were fresh: ingest now rejects them as expired
                ts = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
                index = names.entry_index_for("integration", ts)
                doc = {**e, "account_id": ACCOUNT}
                await client.index(index=index, id=f"{ACCOUNT}/{e['id']}", document=doc)
            await client.indices.refresh(index=f"{prefix}-*")
            return await run_retention(runtime)
        finally:
            await client.close()

    return asyncio.run(go())


def test_expired_integration_days_go_and_everything_else_stays(
    engine_url: str, prefix: str, es: Elasticsearch
) -> None:
    report = _run(engine_url, prefix, es)
    names = IndexNames(prefix)
    deleted = {d.index for d in report.deleted}
    assert deleted == {
        names.entry_index_for("integration", NOW - timedelta(days=d)) for d in (31, 45)
    }
    assert all(d.entries_by_account == {ACCOUNT: 1} for d in report.deleted)
    es.indices.refresh(index=f"{prefix}-*")
    hits = es.search(index=names.entries_alias, size=100, query={"term": {"account_id": ACCOUNT}})
    ids = {h["_source"]["id"] for h in hits["hits"]["hits"] if h["_source"]["category"] != "audit"}
    assert ids == {"int-29d", "hook-400d", "hook-31d", "api-45d"}
    audits = [h["_source"] for h in hits["hits"]["hits"] if h["_source"]["category"] == "audit"]
    assert sorted(a["metadata"]["target_name"] for a in audits) == sorted(deleted)
    assert all(a["action"] == "retention.deleted" and a["metadata"]["deleted"] == 1 for a in audits)


def test_a_second_run_deletes_nothing(engine_url: str, prefix: str, es: Elasticsearch) -> None:
    _run(engine_url, prefix, es)
    settings = make_settings(engine_url, prefix)

    async def again() -> RetentionReport:
        client = make_client(settings, engine_url)
        try:
            return await run_retention(
                Runtime(settings=settings, es=client, names=IndexNames(prefix))
            )
        finally:
            await client.close()

    report = asyncio.run(again())
    assert report.deleted == []
    assert (
        IndexNames(prefix).entry_index_for("integration", NOW - timedelta(days=29)) in report.kept
    )


def _retention(settings: Any, fence: Any = None) -> RetentionReport:
    async def go() -> RetentionReport:
        client = make_client(settings, str(settings.es_url))
        try:
            runtime = Runtime(settings=settings, es=client, names=IndexNames(settings.index_prefix))
            return await run_retention(runtime, fence=fence)
        finally:
            await client.close()

    return asyncio.run(go())


def _audits(es: Elasticsearch, prefix: str) -> list[dict[str, Any]]:
    es.indices.refresh(index=f"{prefix}-*")
    query = {"term": {"action": "retention.deleted"}}
    hits = es.search(index=IndexNames(prefix).entries_alias, size=100, query=query)
    return [h["_source"] for h in hits["hits"]["hits"]]


def test_a_run_that_stopped_before_reporting_is_finished_once_by_the_next(
    engine_url: str, prefix: str, es: Elasticsearch
) -> None:
    first = _run(engine_url, prefix, es)
    names = IndexNames(prefix)
    reported = first.deleted[0].index
    # stopped after writing its audit entries, before marking them reported
    es.update(index=names.state, id=f"retention:{reported}", doc={"state": "deleted"})
    # stopped after deleting an index, before reporting it
    gone = names.entry_index_for("integration", NOW - timedelta(days=60))
    journal = {"kind": "retention", "state": "deleting", "index": gone,
               "day": (NOW - timedelta(days=60)).date().isoformat(),
               "entries_by_account": {ACCOUNT: 7}}  # fmt: skip
    es.index(index=names.state, id=f"retention:{gone}", document=journal, refresh=True)

    second = _retention(make_settings(engine_url, prefix))
    assert sorted(d.index for d in second.deleted) == sorted([reported, gone])
    audits = _audits(es, prefix)
    by_index = {
        i: [a for a in audits if a["metadata"]["target_name"] == i] for i in (reported, gone)
    }
    assert len(by_index[reported]) == 1  # written again: a duplicate, not a second report
    assert [a["metadata"]["deleted"] for a in by_index[gone]] == [7]
    assert _retention(make_settings(engine_url, prefix)).deleted == []
    assert len(_audits(es, prefix)) == len(audits)


def test_a_sweeper_that_lost_its_lease_deletes_nothing_more(
    engine_url: str, prefix: str, es: Elasticsearch
) -> None:
    settings = make_settings(engine_url, prefix)
    names = IndexNames(prefix)
    asyncio.run(_setup(settings))
    day = NOW - timedelta(days=40)
    index = names.entry_index_for("integration", day)
    doc = {**_entry("int-40d", "integration", timedelta(days=40)), "account_id": ACCOUNT}
    es.index(index=index, id=f"{ACCOUNT}/int-40d", document=doc, refresh=True)

    async def lost() -> None:
        raise LeaseLost("housekeeping")

    with pytest.raises(LeaseLost):
        _retention(settings, fence=lost)
    assert es.indices.exists(index=index)  # the fence runs before the deletion...
    es.index(index=index, id=f"{ACCOUNT}/late", document={**doc, "id": "late"}, refresh=True)
    # ...and before the write block: the index still takes writes
    assert [d.index for d in _retention(settings).deleted] == [index]  # the next holder's run
    assert not es.indices.exists(index=index)
    assert [(a["metadata"]["target_name"], a["metadata"]["deleted"]) for a in _audits(
        es, prefix)] == [(index, 2)]  # fmt: skip


def test_a_block_left_on_an_index_no_longer_expired_is_lifted(
    engine_url: str, prefix: str, es: Elasticsearch
) -> None:
    """A sweep stopped after blocking an index; the policy was lengthened since, so the index is
    kept: the next run lifts the block (a block the sweeper did not set stays)."""
    settings = make_settings(engine_url, prefix)
    names = IndexNames(prefix)
    asyncio.run(_setup(settings))
    ours, theirs = (names.entry_index_for("integration", NOW - timedelta(days=d)) for d in (2, 3))
    for index in (ours, theirs):
        es.indices.create(index=index)
        es.indices.add_block(index=index, block="write")
    journal = {"kind": "retention", "state": "blocking", "index": ours,
               "day": (NOW - timedelta(days=2)).date().isoformat()}  # fmt: skip
    es.index(index=names.state, id=f"retention:{ours}", document=journal, refresh=True)
    report = _retention(settings)
    assert report.deleted == [] and {ours, theirs} <= set(report.kept)
    assert [_write_block(es, i) for i in (ours, theirs)] == ["false", "true"]
    es.index(index=ours, id=f"{ACCOUNT}/after", document=_entry("after", "integration",
             timedelta(days=2)) | {"account_id": ACCOUNT})  # fmt: skip
    assert not es.exists(index=names.state, id=f"retention:{ours}")


def _write_block(es: Elasticsearch, index: str) -> str | None:
    found = es.indices.get_settings(index=index, name="index.blocks.write", flat_settings=True)
    return found[index]["settings"].get("index.blocks.write")


async def _setup(settings: Any) -> None:
    client = make_client(settings, str(settings.es_url))
    try:
        await run_setup(client, settings)
    finally:
        await client.close()


def test_no_write_lands_between_the_count_and_the_deletion(
    engine_url: str, prefix: str, es: Elasticsearch
) -> None:
    settings = make_settings(engine_url, prefix)
    asyncio.run(_setup(settings))
    day = NOW - timedelta(days=40)
    index = IndexNames(prefix).entry_index_for("integration", day)
    doc = {**_entry("int-40d", "integration", timedelta(days=40)), "account_id": ACCOUNT}
    es.index(index=index, id=f"{ACCOUNT}/int-40d", document=doc, refresh=True)
    written, refused = [], []

    async def late_write() -> None:  # a write arriving while the sweeper works on the index
        late = f"late{len(written) + len(refused)}"
        try:
            es.index(index=index, id=f"{ACCOUNT}/{late}", document={**doc, "id": late})
            written.append(late)
        except AuthorizationException as e:
            refused.append(e.message)

    report = _retention(settings, fence=late_write)  # it runs before the block and the deletion
    assert written == ["late0"] and refused == ["cluster_block_exception"]
    assert [(d.index, d.entries_by_account) for d in report.deleted] == [(index, {ACCOUNT: 2})]
    assert [a["metadata"]["deleted"] for a in _audits(es, prefix)] == [2]


def test_every_account_of_a_deleted_index_is_counted(
    engine_url: str, prefix: str, es: Elasticsearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "ACCOUNTS_PAGE", 2)  # five accounts: three pages
    settings = make_settings(engine_url, prefix)
    asyncio.run(_setup(settings))
    day = NOW - timedelta(days=40)
    index = IndexNames(prefix).entry_index_for("integration", day)
    accounts = {f"acct-{n}": n for n in range(1, 6)}
    for account, count in accounts.items():
        for k in range(count):
            doc = {**_entry(f"e{k}", "integration", timedelta(days=40)), "account_id": account}
            es.index(index=index, id=f"{account}/e{k}", document=doc)
    es.indices.refresh(index=index)
    report = _retention(settings)
    assert [d.entries_by_account for d in report.deleted] == [accounts]
    audits = {a["account_id"]: a["metadata"]["deleted"] for a in _audits(es, prefix)}
    assert audits == accounts
