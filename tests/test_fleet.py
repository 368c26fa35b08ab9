"""Several ``auditlog serve`` processes on one engine, as a fleet behind a load balancer runs:
cursors, export job files, revocations and the sweeper work whichever instance or worker is
asked, and background work runs once per deployment."""

from __future__ import annotations

import csv
import hashlib
import io
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from elasticsearch import AuthorizationException, Elasticsearch, NotFoundError

from service.search.export_files import CHUNK_BYTES
from service.search.indices import IndexNames
from tests.helpers import ADMIN, ADMIN_KEY, delete_prefixed, entry, keys_for_tests
from tests.live import Instance, served

pytestmark = pytest.mark.fleet
LEASE_TTL_S = 3.0
KEY_CACHE_S = 1.0
WEBHOOKS = {"category": "webhook"}
"""The test's own entries (``entry()`` makes webhooks), not the audit entries of the setup."""


@pytest.fixture(scope="module")
def fleet_prefix(es: Elasticsearch) -> Iterator[str]:
    name = f"f{uuid.uuid4().hex[:8]}"
    yield name
    delete_prefixed(es, name)


@pytest.fixture(scope="module")
def env(engine_url: str, fleet_prefix: str) -> dict[str, str]:
    return {
        "AUDITLOG_ES_URL": engine_url,
        "AUDITLOG_INDEX_PREFIX": fleet_prefix,
        "AUDITLOG_KEYS_DIR": str(keys_for_tests()),
        "AUDITLOG_ADMIN_KEY": ADMIN_KEY,
        "AUDITLOG_LEASE_TTL_S": str(LEASE_TTL_S),
        "AUDITLOG_RETENTION_INTERVAL_S": "1",
        "AUDITLOG_KEY_CACHE_S": str(KEY_CACHE_S),
        "AUDITLOG_CURSOR_SECRET": "",  # unset: the deployment's shared secret
    }


@pytest.fixture(scope="module")
def two(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Instance]]:
    logs = tmp_path_factory.mktemp("fleet")
    with served(env, logs) as a, served(env, logs) as b:
        yield [a, b]


def _account(url: str, entries: list[dict[str, Any]]) -> dict[str, str]:
    account_id = f"fleet-{uuid.uuid4().hex[:8]}"
    created = httpx.post(f"{url}/v1/admin/accounts", json={"id": account_id}, headers=ADMIN)
    assert created.status_code == 201, created.text
    scopes = ["ingest", "read", "export"]
    key = httpx.post(
        f"{url}/v1/admin/keys", headers=ADMIN, json={"account_id": account_id, "scopes": scopes}
    )
    assert key.status_code == 201, key.text
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    for start in range(0, len(entries), 1000):
        resp = httpx.post(f"{url}/v1/entries", json={"entries": entries[start : start + 1000]},
                          headers=headers, timeout=60)  # fmt: skip
        assert resp.json()["created"] == len(entries[start : start + 1000]), resp.text
    return headers


def _recent(n: int, message: str = "fleet") -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [entry(id=f"e{i:05d}", message=f"{message} {i}",
                  timestamp=(now - timedelta(seconds=i + 1)).isoformat().replace("+00:00", "Z"))
            for i in range(n)]  # fmt: skip


def test_a_cursor_from_one_instance_pages_on_the_other(
    two: list[Instance], es: Elasticsearch
) -> None:
    a, b = two
    headers = _account(a.url, _recent(25))
    es.indices.refresh(index="*")
    seen: list[str] = []
    cursor = None
    for page in range(3):
        server = (a, b)[page % 2]
        params = {"size": 10, **WEBHOOKS, **({"cursor": cursor} if cursor else {})}
        resp = httpx.get(f"{server.url}/v1/entries", params=params, headers=headers)
        assert resp.status_code == 200, (server.url, resp.text)
        seen += [e["id"] for e in resp.json()["entries"]]
        cursor = resp.json()["next_cursor"]
    assert sorted(seen) == sorted(f"e{i:05d}" for i in range(25)) and cursor is None


def test_an_export_job_started_on_one_instance_downloads_from_the_other(
    two: list[Instance], es: Elasticsearch, fleet_prefix: str
) -> None:
    a, b = two
    headers = _account(a.url, _recent(3000, "x" * 600))  # about 2 MB: several chunks
    es.indices.refresh(index="*")
    job = httpx.post(
        f"{a.url}/v1/exports", params={"format": "csv", **WEBHOOKS}, headers=headers
    ).json()
    deadline = time.monotonic() + 60
    while (seen := httpx.get(f"{b.url}/v1/exports/{job['id']}", headers=headers).json())[
        "status"
    ] != "done":
        assert seen["status"] == "running" and time.monotonic() < deadline, seen
        time.sleep(0.3)
    download = httpx.get(f"{b.url}{seen['download']}", headers=headers, timeout=60)
    assert download.status_code == 200, download.text
    assert seen["size"] > 2 * 1024 * 1024 and len(download.content) == seen["size"]
    assert hashlib.sha256(download.content).hexdigest() == seen["sha256"]
    es.indices.refresh(index=IndexNames(fleet_prefix).export_files)
    stored = es.count(index=IndexNames(fleet_prefix).export_files,
                      query={"term": {"job_id": job["id"]}})  # fmt: skip
    assert stored["count"] == -(-seen["size"] // CHUNK_BYTES)  # in the engine, in 1 MiB chunks
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8"))))
    assert sorted(r["id"] for r in rows) == sorted(f"e{i:05d}" for i in range(3000))


def test_a_key_revoked_on_one_instance_is_refused_by_the_other_within_the_cache_time(
    two: list[Instance],
) -> None:
    a, b = two
    headers = _account(a.url, [])
    assert httpx.get(f"{b.url}/v1/entries", headers=headers).status_code == 200  # cached on b
    key_id = headers["Authorization"].split("_")[1]
    assert httpx.delete(f"{a.url}/v1/admin/keys/{key_id}", headers=ADMIN).status_code == 204
    time.sleep(KEY_CACHE_S + 0.3)
    assert httpx.get(f"{b.url}/v1/entries", headers=headers).status_code == 401


def _holder(es: Elasticsearch, prefix: str) -> dict[str, Any]:
    return dict(es.get(index=IndexNames(prefix).state, id="lease:housekeeping")["_source"])


def _expired_index(es: Elasticsearch, prefix: str, days: int, account: str) -> str:
    """Write an entry into an index past retention; the index. The sweeper may delete the index
    between its creation and the write, or block writes into it: the write is made again (an
    index deleted while it held nothing is not reported)."""
    day = datetime.now(UTC) - timedelta(days=days)
    index = IndexNames(prefix).entry_index_for("integration", day)
    doc = {**entry(id=f"old-{days}", category="integration", metadata={"provider": "hubspot"}),
           "account_id": account, "timestamp": day.strftime("%Y-%m-%dT%H:%M:%S.000Z")}  # fmt: skip
    while True:
        try:
            es.index(index=index, id=f"{account}/old-{days}", document=doc, refresh=True)
            return index
        except (NotFoundError, AuthorizationException):  # swept away, or about to be
            time.sleep(0.1)


def _reports(es: Elasticsearch, prefix: str) -> list[str]:
    """The indices the account's ``retention.deleted`` entries report."""
    es.indices.refresh(index=f"{prefix}-*")
    found = es.options(ignore_status=404).search(
        index=IndexNames(prefix).entries_alias,
        size=100,
        query={"term": {"action": "retention.deleted"}},
    )
    return [h["_source"]["metadata"]["target_name"] for h in found.get("hits", {}).get("hits", [])]


def _wait(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture
def alone(env: dict[str, str], es: Elasticsearch) -> Iterator[dict[str, str]]:
    """The environment of a deployment of its own (no other instance shares its lease)."""
    prefix = f"g{uuid.uuid4().hex[:8]}"
    yield {**env, "AUDITLOG_INDEX_PREFIX": prefix}
    delete_prefixed(es, prefix)


def test_the_sweeper_runs_once_and_moves_to_the_other_instance_when_its_holder_dies(
    alone: dict[str, str], es: Elasticsearch, tmp_path: Path
) -> None:
    fleet_prefix = alone["AUDITLOG_INDEX_PREFIX"]
    with served(alone, tmp_path) as a, served(alone, tmp_path) as b:
        held = _holder(es, fleet_prefix)
        holder, other = (a, b) if int(held["holder"].split(":")[1]) in a.pids() else (b, a)
        assert int(held["holder"].split(":")[1]) in holder.pids()
        first = _expired_index(es, fleet_prefix, 40, "fleet-sweep")
        _wait(lambda: not es.indices.exists(index=first), 10)
        holder.kill()  # no clean shutdown: the lease is left to expire
        second = _expired_index(es, fleet_prefix, 41, "fleet-sweep")
        _wait(lambda: not es.indices.exists(index=second), LEASE_TTL_S * 2 + 5)
        taken = _holder(es, fleet_prefix)
        assert int(taken["holder"].split(":")[1]) in other.pids()
        assert taken["token"] == held["token"] + 1
        deleted = [first, second]
        _wait(lambda: len(_reports(es, fleet_prefix)) >= len(deleted), 20)  # after the deletion
        time.sleep(2)  # a second report would have come by now
        reported = _reports(es, fleet_prefix)
        assert sorted(reported) == sorted(deleted)  # each deletion reported once


def test_two_workers_of_one_instance_share_cursors_and_export_files(
    env: dict[str, str], es: Elasticsearch, tmp_path: Path
) -> None:
    with served(env, tmp_path, workers=2) as one:
        assert len(one.pids()) >= 3  # the supervisor and its two workers
        headers = _account(one.url, _recent(40))
        es.indices.refresh(index="*")
        for _ in range(6):  # a new connection each time: either worker answers
            seen, cursor = [], None
            while True:
                params = {"size": 7, **WEBHOOKS, **({"cursor": cursor} if cursor else {})}
                resp = httpx.get(f"{one.url}/v1/entries", params=params, headers=headers)
                assert resp.status_code == 200, resp.text
                seen += [e["id"] for e in resp.json()["entries"]]
                if not (cursor := resp.json()["next_cursor"]):
                    break
            assert len(seen) == len(set(seen)) == 40
        job = httpx.post(
            f"{one.url}/v1/exports", params={"format": "ndjson", **WEBHOOKS}, headers=headers
        )
        job_id = job.json()["id"]
        _wait(lambda: httpx.get(f"{one.url}/v1/exports/{job_id}", headers=headers).json()[
            "status"] == "done", 30)  # fmt: skip
        for _ in range(4):
            download = httpx.get(f"{one.url}/v1/exports/{job_id}/download", headers=headers)
            assert download.status_code == 200 and len(download.content.splitlines()) == 40
