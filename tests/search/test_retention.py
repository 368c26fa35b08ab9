"""Retention where the engine has no ILM: the sweeper deletes expired integration days only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from ingest.pipeline import Item, ingest_items
from service.actions.retention import run_retention
from service.runtime import Runtime
from service.search.client import make_client
from service.search.indices import IndexNames
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
