"""How entry indices grow, at a small scale: accounts share the per-category time indices (their
number follows categories and months, never accounts), and a template's shard count, when
changed, applies to the indices created after it while reads, facets and id uniqueness span both
(docs/indices.md, "Sizing")."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.app import create_app
from tests.helpers import ADMIN, delete_prefixed, entry, make_settings, refresh, wait_ready

ACCOUNTS = 40
MONTHS = ("2026-08-14T09:00:00Z", "2026-09-14T09:00:00Z")
WINDOW = {"from": "2026-08-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}


def _platform_key(client: TestClient) -> dict[str, str]:
    scopes = ["ingest", "read"]
    made = client.post("/v1/admin/keys", headers=ADMIN,
                       json={"account_id": None, "scopes": scopes, "name": "sizing"})  # fmt: skip
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


def _entries(accounts: list[str], stamp: str, tag: str) -> list[dict[str, object]]:
    return [
        entry(id=f"{tag}-{n}", account_id=account, timestamp=stamp, category=category,
              metadata={})
        for account in accounts
        for n, category in enumerate(("signal", "ai"))
    ]  # fmt: skip


def _shards(es: Elasticsearch, index: str) -> int:
    found = es.indices.get_settings(index=index, name="index.number_of_shards")
    return int(found[index]["settings"]["index"]["number_of_shards"])


@pytest.mark.slow
def test_accounts_share_indices_and_a_new_shard_count_applies_to_new_indices(
    engine_url: str, es: Elasticsearch, tmp_path: Path
) -> None:
    prefix = f"sz{uuid.uuid4().hex[:8]}"
    templates = tmp_path / "index_templates"
    shutil.copytree(make_settings(engine_url, prefix).templates_dir, templates)
    settings = make_settings(engine_url, prefix, templates_dir=templates)
    accounts = [f"size-{n:03d}" for n in range(ACCOUNTS)]
    try:
        with TestClient(create_app(settings)) as client:
            wait_ready(client)
            for account in accounts:
                body = {"id": account, "name": account, "timezone": "UTC"}
                made = client.post("/v1/admin/accounts", headers=ADMIN, json=body)
                assert made.status_code == 201, made.text
            key = _platform_key(client)
            sent = client.post("/v1/entries", headers=key,
                               json={"entries": _entries(accounts, MONTHS[0], "a")})  # fmt: skip
            assert sent.json()["created"] == 2 * ACCOUNTS, sent.text

        entry_indices = sorted(es.indices.get(index=f"{prefix}-signal-*,{prefix}-ai-*").body)
        assert entry_indices == [f"{prefix}-ai-2026.08", f"{prefix}-signal-2026.08"]

        common = templates / "entries-common.json"
        body = json.loads(common.read_text())
        body["version"] += 1
        body["template"]["settings"]["index"]["number_of_shards"] = 2
        common.write_text(json.dumps(body))

        with TestClient(create_app(settings)) as client:
            wait_ready(client)
            key = _platform_key(client)
            sent = client.post("/v1/entries", headers=key,
                               json={"entries": _entries(accounts, MONTHS[1], "b")})  # fmt: skip
            assert sent.json()["created"] == 2 * ACCOUNTS, sent.text
            moved = [{**e, "timestamp": MONTHS[1]} for e in _entries(accounts[:3], MONTHS[0], "a")]
            again = client.post("/v1/entries", headers=key, json={"entries": moved}).json()
            assert {r["status"] for r in again["results"]} == {"duplicate"}
            refresh(es, prefix)
            for account in (accounts[0], accounts[-1]):
                view = client.get("/v1/entries", headers=key,
                                  params={**WINDOW, "account_id": account, "size": 10})  # fmt: skip
                assert view.status_code == 200, view.text
                found = view.json()
                assert found["total"] == 4
                counts = {b["value"]: b["count"] for b in found["facets"]["category"]}
                assert counts == {"signal": 2, "ai": 2}

        assert _shards(es, f"{prefix}-signal-2026.08") == 1
        assert _shards(es, f"{prefix}-signal-2026.09") == 2
        assert _shards(es, f"{prefix}-ai-2026.09") == 2
        refresh(es, prefix)
        assert (
            es.count(index=f"{prefix}-entries", query={"terms": {"category": ["signal", "ai"]}})[
                "count"
            ]
            == 4 * ACCOUNTS
        )
    finally:
        delete_prefixed(es, prefix)
