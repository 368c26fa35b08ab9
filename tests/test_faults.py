"""The engine stops under the service: 503 with Retry-After; nothing counted created unstored.

This runs on a throwaway engine of its own (never the session's), stopped and started again on
the same directory: data survives and the node comes back on the same port, so the running
service reconnects by itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.app import create_app
from service.local_engine.node import EngineInstance
from tests.helpers import entry, keys_for_tests, make_settings, new_account, wait_ready

pytestmark = pytest.mark.second_engine  # starts an engine of its own: not in `make test-fast`

PREFIX = "faults"


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineInstance]:
    """A node of this module's own, which each test leaves running.

    It lives outside pytest's ``tmp_path``: a pytest session starting meanwhile resets
    ``/tmp/pytest-of-<user>`` to mode 700, which locks out the engine's unprivileged user.
    """
    instance = EngineInstance(Path(tempfile.mkdtemp(prefix="auditlog-test-faults-")))
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(instance.directory, ignore_errors=True)


class Ledger:
    """Every status the service reported, per entry id."""

    def __init__(self) -> None:
        self.statuses: dict[str, list[str]] = {}
        self.created_counted = 0

    def post(self, client: TestClient, headers: dict[str, str], batch: list[Any]) -> int:
        response = client.post("/v1/entries", json={"entries": batch}, headers=headers)
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) > 0
            for sent in batch:
                self.statuses.setdefault(sent["id"], []).append("unavailable")
        else:
            assert response.status_code == 200, response.text
            body = response.json()
            self.created_counted += body["created"]
            for sent, result in zip(batch, body["results"], strict=True):
                assert result["id"] == sent["id"]
                self.statuses.setdefault(sent["id"], []).append(result["status"])
        return response.status_code

    def created(self) -> set[str]:
        return {i for i, seen in self.statuses.items() if "created" in seen}


def _stored_ids(es: Elasticsearch, account: str, id_prefix: str = "") -> list[str]:
    es.indices.refresh(index=f"{PREFIX}-*")
    query = {"bool": {"filter": [{"term": {"account_id": account}},
                                 {"prefix": {"id": id_prefix}}],
                      "must_not": [{"term": {"category": "audit"}}]}}  # fmt: skip
    resp = es.search(index=f"{PREFIX}-entries", query=query, size=10_000, source=["id"])
    return [hit["_source"]["id"] for hit in resp["hits"]["hits"]]


def _wait_until_writing(url: str, account: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    with Elasticsearch(url) as es:
        while time.monotonic() < deadline:
            if _stored_ids(es, account, "during-"):
                return
            time.sleep(0.05)
    raise AssertionError("the request wrote nothing")


def _batches(count: int, size: int, tag: str) -> list[list[dict[str, object]]]:
    return [[entry(id=f"{tag}-{b}-{i}") for i in range(size)] for b in range(count)]


def test_engine_stopped_during_requests(engine: EngineInstance) -> None:
    engine.start()
    url = engine.url()
    assert url is not None
    settings = make_settings(url, PREFIX, bulk_batch_size=25)
    ledger = Ledger()
    before, during, after = (
        _batches(3, 40, "before"),
        _batches(1, 4000, "during"),
        _batches(2, 40, "after"),
    )
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        account, headers = new_account(client)
        for batch in before:
            assert ledger.post(client, headers, batch) == 200
        assert len(ledger.created()) == 120

        answers: list[int] = []
        in_flight = threading.Thread(
            target=lambda: answers.append(ledger.post(client, headers, during[0]))
        )
        in_flight.start()
        _wait_until_writing(url, account)  # 4,000 entries in 160 bulk batches: stop in the middle
        assert engine.stop() is True
        in_flight.join(timeout=120)
        assert not in_flight.is_alive() and answers in ([200], [503])
        for batch in after:
            assert ledger.post(client, headers, batch) == 503
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"]

        assert engine.start().url == url  # the same port again: the client reconnects
        wait_ready(client)
        with Elasticsearch(url, request_timeout=60) as es:
            stored = _stored_ids(es, account)
            assert len(stored) == len(set(stored))  # never two documents for one id
            assert ledger.created() <= set(stored)  # every entry reported created is there
            assert ledger.created_counted == len(ledger.created())

            first_answers = {i: seen[0] for i, seen in ledger.statuses.items()}
            for batch in [*before, *during, *after]:
                assert ledger.post(client, headers, batch) == 200
            for entry_id, seen in ledger.statuses.items():
                assert seen[-1] in ("created", "duplicate"), (entry_id, seen)
                if first_answers[entry_id] == "created":  # never counted created twice
                    assert seen[-1] == "duplicate", (entry_id, seen)
            sent = {e["id"] for b in [*before, *during, *after] for e in b}
            assert sorted(_stored_ids(es, account)) == sorted(sent)
    interrupted = {seen[0] for i, seen in ledger.statuses.items() if i.startswith("during")}
    assert interrupted == {"created", "failed"}  # the stop really came in the middle


def test_the_import_command_with_the_engine_stopped_exits_1_then_imports(
    engine: EngineInstance, tmp_path: Path
) -> None:
    engine.start()
    url = engine.url()
    assert url is not None
    settings = make_settings(url, PREFIX)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        account, _ = new_account(client)
    path = tmp_path / "entries.ndjson"
    path.write_text("".join(json.dumps(entry()) + "\n" for _ in range(10)))
    env = {**os.environ, "AUDITLOG_ES_URL": url, "AUDITLOG_INDEX_PREFIX": PREFIX,
           "AUDITLOG_KEYS_DIR": str(keys_for_tests())}  # fmt: skip
    command = [sys.executable, "-m", "service.cli", "import", str(path), "--account", account]
    engine.stop()
    down = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert down.returncode == 1 and down.stderr.startswith("error: the engine"), down.stderr
    engine.start()
    up = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["created"] == 10
