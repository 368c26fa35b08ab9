"""``GET /v1/feed``: an account's entries in log order, by position, with no gap and no repeat for
a reader that resumes from its last position, while writers on two instances keep writing."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.search.indices import IndexNames
from tests.helpers import ADMIN, entry, new_account, wait_ready


def _read_all(client: TestClient, headers: dict[str, str], expected: int,
              limit: int = 7) -> list[dict[str, Any]]:  # fmt: skip
    """Every entry of the feed, reading ``limit`` positions at a time, once ``expected`` are in."""
    seen: list[dict[str, Any]] = []
    after, deadline = 0, time.monotonic() + 60
    while len(seen) < expected:
        assert time.monotonic() < deadline, f"{len(seen)} of {expected} entries in the feed"
        page = client.get("/v1/feed", params={"after": after, "limit": limit}, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += body["entries"]
        assert body["next_after"] >= after
        after = body["next_after"]
        if not body["more"]:
            time.sleep(0.2)
    return seen


def test_the_feed_gives_entries_in_ingest_order_with_positions(
    client: TestClient, es: Elasticsearch
) -> None:
    account_id, headers = new_account(client)
    now = datetime.now(UTC)
    first = [
        entry(id=f"f{i}", timestamp=(now - timedelta(minutes=i)).isoformat()) for i in range(20)
    ]
    assert client.post("/v1/entries", json={"entries": first}, headers=headers).json()["created"]
    late = entry(id="late", timestamp=(now - timedelta(days=40)).isoformat())  # an old event
    assert client.post("/v1/entries", json=late, headers=headers).status_code == 200
    seen = _read_all(client, headers, 23)  # the account's creation, its key's, 20 and the late
    positions = [e["position"] for e in seen]
    assert positions == list(range(1, 24))  # consecutive, from 1
    ids = [e["id"] for e in seen]
    assert ids[2:] == [f"f{i}" for i in range(20)] + ["late"]  # ingest order, not event time
    assert all(len(e["entry_digest"]) == 64 and "local_time" in e for e in seen)
    again = client.get("/v1/feed", params={"after": 20, "limit": 2}, headers=headers).json()
    assert [e["position"] for e in again["entries"]] == [21, 22]
    assert again["next_after"] == 22 and again["more"] and again["head"] >= 23
    other_id, other = new_account(client)  # another account's feed is its own
    assert all(e["account_id"] == other_id for e in _read_all(client, other, 2))
    platform = client.get("/v1/feed", params={"account_id": account_id, "limit": 3}, headers=ADMIN)
    assert [e["position"] for e in platform.json()["entries"]] == [1, 2, 3]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"after": "-1"}, "after"), ({"after": "x"}, "after"), ({"after": "²"}, "after"),
     ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"tz": "Mars/Base"}, "tz"),
     ({"since": "1"}, "since")],
)  # fmt: skip
def test_bad_feed_parameters_are_named(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    _, headers = new_account(client)
    resp = client.get("/v1/feed", params=params, headers=headers)
    assert resp.status_code == 400 and resp.json()["error"]["field"] == field, resp.text


def test_an_after_past_the_head_is_a_400_and_resuming_from_the_head_misses_nothing(
    client: TestClient,
) -> None:
    _, headers = new_account(client)
    head = len(_read_all(client, headers, 2))  # the account's creation and its key's, sealed
    past = client.get("/v1/feed", params={"after": head + 5}, headers=headers)
    assert past.status_code == 400 and past.json()["error"]["field"] == "after", past.text
    at_head = client.get("/v1/feed", params={"after": head}, headers=headers)
    assert at_head.status_code == 200, at_head.text
    assert at_head.json()["entries"] == []
    assert (at_head.json()["next_after"], at_head.json()["more"]) == (head, False)
    batch = [entry(id=f"later-{i}") for i in range(10)]
    assert client.post("/v1/entries", json={"entries": batch}, headers=headers).json()["created"]
    resumed: list[dict[str, Any]] = []
    after, deadline = head, time.monotonic() + 60
    while len(resumed) < 10:
        assert time.monotonic() < deadline, f"{len(resumed)} of 10 entries in the feed"
        body = client.get("/v1/feed", params={"after": after}, headers=headers).json()
        resumed += body["entries"]
        after = body["next_after"]
        time.sleep(0.2)
    assert [e["id"] for e in resumed] == [f"later-{i}" for i in range(10)]
    assert [e["position"] for e in resumed] == list(range(head + 1, head + 11))


def test_entries_deleted_by_retention_keep_their_positions_others_read_missing(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account_id, headers = new_account(client)
    old = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    batch = [entry(id="kept-1"), entry(id="crm", category="integration",
                                       timestamp=old.isoformat().replace("+00:00", "Z")),
             entry(id="kept-2"), entry(id="taken")]  # fmt: skip
    resp = client.post("/v1/entries", json={"entries": batch}, headers=headers)
    assert resp.json()["created"] == 4, resp.text
    before = _read_all(client, headers, 6)
    assert [e["id"] for e in before[2:]] == ["kept-1", "crm", "kept-2", "taken"]
    names = IndexNames(settings.index_prefix)
    es.indices.delete(index=names.entry_index_for("integration", old))  # as retention does
    taken = next(e for e in before if e["id"] == "taken")
    index = names.entry_index_for("webhook", datetime.fromisoformat(taken["timestamp"]))
    es.delete(index=index, id=f"{account_id}/taken", refresh=True)  # behind the service's back
    after = client.get("/v1/feed", params={"after": 0}, headers=headers).json()
    shown = [(e["position"], e["id"], e.get("missing", False)) for e in after["entries"][2:]]
    assert shown == [(3, "kept-1", False), (5, "kept-2", False), (6, "taken", True)]
    assert after["entries"][-1]["entry_digest"] == taken["entry_digest"]
    assert after["next_after"] == 6


@pytest.fixture
def two_instances(engine_url: str, prefix: str) -> Iterator[tuple[TestClient, TestClient]]:
    """Two more instances of the session's deployment (one seals at a time, under the lease)."""
    from tests.helpers import make_settings

    settings = make_settings(engine_url, prefix)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        wait_ready(one)
        wait_ready(two)
        yield one, two


def test_a_reader_resuming_every_100ms_sees_every_entry_once_in_order(
    client: TestClient, two_instances: tuple[TestClient, TestClient]
) -> None:
    """Ten writers on three instances, one reader polling from its last position."""
    total = 2 + 10 * 6 * 5  # the account's creation and its key's, then the writers' entries
    _, headers = new_account(client)
    instances = [client, *two_instances]
    written: list[str] = []
    lock = threading.Lock()

    def write(writer: int) -> None:
        for batch in range(6):
            ids = [f"w{writer}-{batch}-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
            body = {"entries": [entry(id=i) for i in ids]}
            resp = instances[(writer + batch) % 3].post("/v1/entries", json=body, headers=headers)
            assert resp.json()["created"] == 5, resp.text
            with lock:
                written.extend(ids)

    seen: list[dict[str, Any]] = []
    done = threading.Event()

    def read() -> None:
        after = 0
        while not done.is_set() or len(seen) < total:
            body = client.get("/v1/feed", params={"after": after, "limit": 25},
                              headers=headers).json()  # fmt: skip
            seen.extend(body["entries"])
            after = body["next_after"]
            if not body["more"]:
                time.sleep(0.1)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in range(10)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    reader.join(timeout=90)
    assert not reader.is_alive(), f"{len(seen)} of {total} entries read"
    positions = [e["position"] for e in seen]
    assert positions == list(range(1, total + 1))  # no gap, no repeat, in order
    assert sorted(e["id"] for e in seen[2:]) == sorted(written)


def test_the_feeds_entry_cache_is_bounded_by_bytes_and_time() -> None:
    from service.search.log_entries import EntryCache

    def entry(n: int, size: int) -> dict[str, Any]:
        return {"id": f"e{n}", "message": "x" * size}

    cache = EntryCache(max_bytes=10_000, ttl_s=60)
    cache.keep({f"a/e{n}": entry(n, 1000) for n in range(12)})  # about 1 kB each
    held = cache.take([f"a/e{n}" for n in range(12)])
    assert 0 < len(held) < 12 and "a/e11" in held and "a/e0" not in held  # the oldest went
    assert cache.bytes <= 10_000
    cache.keep({"a/big": entry(99, 5000)})  # more than a quarter of the cache: not kept
    assert cache.take(["a/big"]) == {}
    stale = EntryCache(max_bytes=10_000, ttl_s=0)
    stale.keep({"a/e1": entry(1, 10)})
    assert stale.take(["a/e1"]) == {}  # older than its time: read again
    written = EntryCache(max_bytes=10_000, ttl_s=60)  # kept as written, with its JSON size
    written.keep_written({f"a/w{n}": (entry(n, 1000), len(orjson.dumps(entry(n, 1000))))
                          for n in range(12)})  # fmt: skip
    assert written.bytes <= 10_000 and written.take(["a/w11"]) == {"a/w11": entry(11, 1000)}
    assert written.take(["a/w0"]) == {}
