"""An export whose own audit entry cannot be written is not delivered as complete: the download
is cut before its last bytes, the job reads failed, and ``/metrics`` counts the failure.

The engine refuses the audit entry for real: the month's ``audit`` index gets a write block for
the length of the test.
"""

from __future__ import annotations

import http.client
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from service.search.indices import IndexNames
from tests.helpers import entry, new_account, refresh
from tests.live import live_server


@pytest.fixture
def audit_refused(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> Iterator[dict[str, str]]:
    """An account with entries to export, while its month's audit index refuses writes."""
    _, headers = new_account(client)  # its creation writes audit entries: the index exists
    batch = [entry(category="api") for _ in range(5)]
    assert client.post("/v1/entries", json={"entries": batch}, headers=headers).json()["created"]
    refresh(es, settings.index_prefix)
    audit_index = IndexNames(settings.index_prefix).entry_index_for("audit", datetime.now(UTC))
    es.indices.put_settings(index=audit_index, settings={"index.blocks.write": True})
    try:
        yield headers
    finally:
        es.indices.put_settings(index=audit_index, settings={"index.blocks.write": None})


def _failures(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith('auditlog_events_total{kind="audit_failures"}'):
            return int(float(line.split()[-1]))
    return 0


def _download(url: str, headers: dict[str, str]) -> tuple[int, int, bytes, bool]:
    """Status, ``X-Total-Count``, the bytes received, and whether the body ended as a complete
    response does."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", "/v1/export?format=csv&range=all", headers=headers)
        response = conn.getresponse()
        total = int(response.headers["X-Total-Count"])
        try:
            return response.status, total, response.read(), True
        except http.client.IncompleteRead as cut:
            return response.status, total, cut.partial, False
    finally:
        conn.close()


def test_a_download_without_its_audit_entry_is_cut(
    audit_refused: dict[str, str], settings: Settings
) -> None:
    with live_server(settings) as url:
        assert _failures(url) == 0
        status, total, received, complete = _download(url, audit_refused)
        assert _failures(url) == 1
    assert status == 200 and received.startswith(b"id,")  # the file started...
    assert not complete  # ...but the response never ended as a complete one
    assert len(received.splitlines()) - 1 < total >= 5  # and its last rows never left


def _finished(client: TestClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/exports/{job_id}", headers=headers).json()
        if job["status"] != "running":
            return job
        time.sleep(0.2)
    raise AssertionError("the export job did not finish")


def test_a_job_without_its_audit_entry_reads_failed(
    audit_refused: dict[str, str], client: TestClient
) -> None:
    started = client.post("/v1/exports", params={"range": "all"}, headers=audit_refused)
    assert started.status_code == 202, started.text
    job = _finished(client, audit_refused, started.json()["id"])
    assert job["status"] == "failed" and "audit entry" in job["error"]
    assert "download" not in job
    download = client.get(f"/v1/exports/{job['id']}/download", headers=audit_refused)
    assert download.status_code == 409
