"""A delivering instance killed mid-batch (SIGKILL, no clean shutdown): another instance of the
fleet takes the destination over when the lease runs out and resumes from the last
acknowledged position. The receiver ends up with every entry, the first sight of each in
position order with no gap, and sees again at most the batch that was in flight."""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from elasticsearch import Elasticsearch

from tests.helpers import ADMIN, ADMIN_KEY, delete_prefixed, entry, keys_for_tests
from tests.live import Instance, served
from tests.streaming.deployment import SCOPES, until
from tests.streaming.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.fleet
LEASE_TTL_S = 3.0


@pytest.fixture
def env(engine_url: str, es: Elasticsearch) -> Iterator[dict[str, str]]:
    prefix = f"k{uuid.uuid4().hex[:8]}"
    yield {
        "AUDITLOG_ES_URL": engine_url,
        "AUDITLOG_INDEX_PREFIX": prefix,
        "AUDITLOG_KEYS_DIR": str(keys_for_tests()),
        "AUDITLOG_ADMIN_KEY": ADMIN_KEY,
        "AUDITLOG_LEASE_TTL_S": str(LEASE_TTL_S),
        "AUDITLOG_SEAL_INTERVAL_S": "0.5",
        "AUDITLOG_DESTINATION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "AUDITLOG_DESTINATION_ALLOW": "127.0.0.0/8",
        "AUDITLOG_DELIVERY_INTERVAL_S": "0.2",
        "AUDITLOG_CURSOR_SECRET": "",
    }
    delete_prefixed(es, prefix)


def _account(url: str) -> dict[str, str]:
    account_id = f"crash-{uuid.uuid4().hex[:8]}"
    created = httpx.post(f"{url}/v1/admin/accounts", json={"id": account_id}, headers=ADMIN)
    assert created.status_code == 201, created.text
    key = httpx.post(f"{url}/v1/admin/keys", headers=ADMIN,
                     json={"account_id": account_id, "scopes": list(SCOPES)})  # fmt: skip
    assert key.status_code == 201, key.text
    return {"Authorization": f"Bearer {key.json()['key']}"}


def _ingest(url: str, headers: dict[str, str], label: str, n: int) -> list[str]:
    now = datetime.now(UTC).isoformat()
    batch = [entry(id=f"{label}-{i:03d}", timestamp=now, message=f"{label} {i}")
             for i in range(n)]  # fmt: skip
    resp = httpx.post(f"{url}/v1/entries", json={"entries": batch}, headers=headers, timeout=60)
    assert resp.json()["created"] == n, resp.text
    return [str(e["id"]) for e in batch]


def _received(receiver: Receiver) -> set[str]:
    return {e["entry"]["id"] for e in receiver.events()}


def _first_sights(receiver: Receiver) -> list[int]:
    seen: dict[int, None] = {}
    for event in receiver.events():
        seen.setdefault(int(event["position"]), None)
    return list(seen)


def test_a_killed_delivering_instance_loses_nothing_and_leaves_no_gap(
    env: dict[str, str], receiver: Receiver, tmp_path: Path
) -> None:
    with served(env, tmp_path) as first:
        headers = _account(first.url)
        body = {"name": "SIEM", "kind": "webhook", "url": receiver.url,
                "secrets": {"secret": SECRET}, "start": 0}  # fmt: skip
        created = httpx.post(f"{first.url}/v1/destinations", json=body, headers=headers)
        assert created.status_code == 201, created.text
        before = _ingest(first.url, headers, "before", 30)
        until(lambda: _received(receiver) >= set(before), "the first entries delivered")
        receiver.held = threading.Event()  # the next batch reaches the receiver and waits there
        during = _ingest(first.url, headers, "during", 30)
        assert receiver.holding.wait(60), "a batch in flight"
        in_flight = len(receiver.batches)
        with served(env, tmp_path) as second:  # the fleet's other instance, already running
            first.kill()
            receiver.held.set()  # the batch arrives, but its sender is gone: never acknowledged
            after = _ingest(second.url, headers, "after", 30)
            until(lambda: _received(receiver) >= {*before, *during, *after},
                  "every entry, delivered by the other instance", seconds=90)  # fmt: skip

            def health() -> dict[str, Any]:
                return dict(_destination(second, headers, created.json()["id"])["health"])

            # the position (and the count) is stored once the receiver has answered
            until(lambda: health()["delivered"] >= 60, "the last batch's position stored")
            stored = health()
    positions = _first_sights(receiver)
    assert positions == list(range(positions[0], positions[0] + len(positions)))  # in order, no gap
    assert len(_received(receiver)) == len(positions) >= 90
    counts = Counter(int(e["position"]) for e in receiver.events())
    held = {int(e["position"]) for e in receiver.batches[in_flight] if e["event_type"] == "entry"}
    assert {p for p, n in counts.items() if n > 1} <= held  # only the unacknowledged batch again
    assert held and all(counts[p] == 2 for p in held)  # ...which the other instance sent again
    assert stored["delivered"] >= 60 and stored.get("last_error") is None


def _destination(instance: Instance, headers: dict[str, str], dst: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        resp = httpx.get(f"{instance.url}/v1/destinations/{dst}", headers=headers)
        if resp.status_code == 200 or time.monotonic() > deadline:
            return dict(resp.json())
        time.sleep(0.2)
