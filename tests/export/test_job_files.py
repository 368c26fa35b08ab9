"""Export job files live in the engine, within a cap per job and per account: past either, the
job fails saying which, and its chunks are gone."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.app import create_app
from service.search.indices import IndexNames
from tests.helpers import delete_prefixed, entry, make_settings, new_account, wait_ready

WEBHOOKS = {"category": "webhook"}


@pytest.fixture(scope="module")
def capped(engine_url: str, es: Elasticsearch) -> Iterator[tuple[TestClient, str]]:
    """A service whose jobs may store 2 MB each and 3 MB per account."""
    prefix = f"j{uuid.uuid4().hex[:8]}"
    settings = make_settings(engine_url, prefix, export_job_max_mb=2, export_account_max_mb=3)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client, prefix
    delete_prefixed(es, prefix)


def _fill(client: TestClient, headers: dict[str, str], n: int) -> None:
    now = datetime.now(UTC)
    entries = [entry(message="x" * 600, timestamp=(now - timedelta(seconds=i + 1)).isoformat()
                     .replace("+00:00", "Z")) for i in range(n)]  # fmt: skip
    resp = client.post("/v1/entries", json={"entries": entries}, headers=headers)
    assert resp.json()["created"] == n, resp.text


def _finished(client: TestClient, headers: dict[str, str], es: Elasticsearch) -> dict[str, Any]:
    es.indices.refresh(index="*")
    job = client.post("/v1/exports", params={"format": "csv", **WEBHOOKS}, headers=headers).json()
    deadline = time.monotonic() + 60
    while (seen := client.get(f"/v1/exports/{job['id']}", headers=headers).json())[
        "status"
    ] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return dict(seen)


def _chunks(es: Elasticsearch, prefix: str, job_id: str) -> int:
    index = IndexNames(prefix).export_files
    es.indices.refresh(index=index)
    return int(es.count(index=index, query={"term": {"job_id": job_id}})["count"])


def test_a_job_larger_than_its_cap_fails_naming_the_setting(
    capped: tuple[TestClient, str], es: Elasticsearch
) -> None:
    client, prefix = capped
    _, headers = new_account(client)
    _fill(client, headers, 3500)  # about 2.4 MB of CSV: its first 1 MB chunk is stored first
    job = _finished(client, headers, es)
    assert job["status"] == "failed"
    assert "2 MB" in job["error"] and "AUDITLOG_EXPORT_JOB_MAX_MB" in job["error"]
    assert _chunks(es, prefix, job["id"]) == 0  # the chunks it stored are deleted
    assert client.get(f"/v1/exports/{job['id']}/download", headers=headers).status_code == 409


def test_a_job_taking_its_account_past_the_cap_fails_and_other_accounts_are_not_held_back(
    capped: tuple[TestClient, str], es: Elasticsearch
) -> None:
    client, prefix = capped
    _, headers = new_account(client)
    _fill(client, headers, 1200)  # about 0.8 MB of CSV a job
    done = [_finished(client, headers, es) for _ in range(3)]
    assert [j["status"] for j in done] == ["done"] * 3
    assert all(_chunks(es, prefix, j["id"]) == 1 for j in done)
    over = _finished(client, headers, es)  # 3.2 MB in all: past the account's 3 MB
    assert over["status"] == "failed" and "AUDITLOG_EXPORT_ACCOUNT_MAX_MB" in over["error"]
    assert _chunks(es, prefix, over["id"]) == 0
    _, other = new_account(client)  # the cap is per account
    _fill(client, other, 1200)
    assert _finished(client, other, es)["status"] == "done"


def test_a_job_finishes_even_when_its_progress_reports_race_its_finish(
    engine_url: str, es: Elasticsearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job reports progress while it runs; the report in flight when it finishes must not
    make the finish fail (the job then read as running until declared interrupted)."""
    monkeypatch.setattr("service.export.jobs.PROGRESS_EVERY_S", 0.0)  # report without pause
    prefix = f"j{uuid.uuid4().hex[:8]}"
    try:
        with TestClient(create_app(make_settings(engine_url, prefix))) as client:
            wait_ready(client)
            _, headers = new_account(client)
            _fill(client, headers, 50)
            for _ in range(3):
                job = _finished(client, headers, es)
                assert job["status"] == "done", job
    finally:
        delete_prefixed(es, prefix)
