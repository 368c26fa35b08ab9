"""The bulk writer, called directly: a document JSON cannot carry is refused before any write."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from service.search.client import make_client
from service.search.indices import IndexNames
from service.search.writer import Outcome, PreparedEntry, store_entries


def test_an_unwritable_document_is_rejected_and_leaves_no_claim(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    del client  # the service is up: setup has installed the templates
    names = IndexNames(settings.index_prefix)
    index = names.entry_index_for("api", datetime(2026, 11, 3, tzinfo=UTC))
    source = {"id": "w1", "account_id": "writer-test", "timestamp": "2026-11-03T00:00:00.000Z",
              "category": "api", "type": "notice", "actor": {"type": "system", "id": "s"},
              "action": "x", "message": "", "ingested_at": "2026-11-03T00:00:00.000Z"}  # fmt: skip
    entries = [
        PreparedEntry("writer-test/w1", index, {**source, "metadata": {"n": 10**30}}),
        PreparedEntry("writer-test/w2", index, {**source, "id": "w2", "metadata": {"n": 1}}),
    ]

    async def store() -> list[Outcome]:
        assert settings.es_url
        client = make_client(settings, settings.es_url)
        try:
            return await store_entries(client, names, entries)
        finally:
            await client.close()

    outcomes = asyncio.run(store())
    assert [o.status for o in outcomes] == ["rejected", "created"]
    assert "64-bit" in outcomes[0].message
    assert not es.exists(index=names.entry_ids, id="writer-test/w1")
    assert es.exists(index=names.entry_ids, id="writer-test/w2")
    assert not es.exists(index=index, id="writer-test/w1")
