"""One id, many writers at once: exactly one stored copy and exactly one ``created``.

The first attempt's write may be slow (its month's index does not exist yet) or may die between
claim and write; a concurrent attempt with another timestamp or category gets ``duplicate`` or
``failed`` with "retry", never a second copy; an abandoned claim is taken over only after its
lease, and by one attempt only.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from service.search.indices import IndexNames
from service.search.writer import (
    CLAIM_LEASE_S,
    WRITER_TIMEOUT_S,
    PreparedEntry,
    _bulk_create,
    create_op,
    doc_id_for,
    store_entries,
)
from service.vocabulary import CATEGORIES
from tests.helpers import entry, new_account, refresh, with_engine

WRITERS = 10


def _copies(es: Elasticsearch, settings: Settings, doc_id: str) -> int:
    refresh(es, settings.index_prefix)
    names = IndexNames(settings.index_prefix)
    return int(es.count(index=names.entries_alias, query={"ids": {"values": [doc_id]}})["count"])


def _post_together(
    client: TestClient, bodies: list[dict[str, Any]], headers: dict[str, str]
) -> list[dict[str, Any]]:
    """Each body in its own request, all released at once; each request's one result."""
    barrier = threading.Barrier(len(bodies))

    def post(body: dict[str, Any]) -> dict[str, Any]:
        barrier.wait()
        response = client.post("/v1/entries", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json()["results"][0])

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def _unused_months(count: int) -> list[str]:
    """Timestamps in ``count`` different months of a year no other test writes to (their
    indices do not exist yet, so the first write to each creates it: a slow first attempt)."""
    year = random.Random(uuid.uuid4().int).randrange(1975, 2015)
    return [f"{year}-{month:02d}-15T12:00:00.000Z" for month in range(1, count + 1)]


def test_one_id_sent_at_once_in_different_months_is_stored_once(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account_id, headers = new_account(client)
    entry_id = f"race-{uuid.uuid4().hex[:8]}"
    months = _unused_months(WRITERS)
    bodies = [entry(id=entry_id, category="api", timestamp=stamp) for stamp in months]

    results = _post_together(client, bodies, headers)

    statuses = sorted(r["status"] for r in results)
    assert statuses.count("created") == 1, results
    assert set(statuses) <= {"created", "duplicate", "failed"}, results
    for result in results:
        if result["status"] == "failed":
            assert "retry" in result["error"]["message"]
    assert _copies(es, settings, doc_id_for(account_id, entry_id)) == 1


def test_one_id_sent_at_once_in_different_categories_is_stored_once(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account_id, headers = new_account(client)
    entry_id = f"race-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    categories = list(CATEGORIES)
    bodies = [
        entry(id=entry_id, category=categories[n % len(categories)], timestamp=now)
        for n in range(WRITERS)
    ]

    results = _post_together(client, bodies, headers)

    assert [r["status"] for r in results].count("created") == 1, results
    assert _copies(es, settings, doc_id_for(account_id, entry_id)) == 1


def test_a_write_that_would_outlast_the_lease_is_not_started(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    """An attempt writes its entries only while a write can still end within its claim's lease
    (here the deadline has passed): they are reported unsent, and nothing is written."""
    del client
    names = IndexNames(settings.index_prefix)
    prepared = _prepared(names, f"late-{uuid.uuid4().hex[:8]}", "e1", "1993-04-15T00:00:00.000Z")
    op = create_op(prepared.index, prepared.doc_id, prepared.source)
    late = time.monotonic() - 1

    results = with_engine(settings, lambda engine: _bulk_create(engine, [op], start_by=late))

    assert [r["status"] for r in results] == [503]
    assert _copies(es, settings, prepared.doc_id) == 0
    assert CLAIM_LEASE_S - WRITER_TIMEOUT_S > 0  # an attempt has time to start its write


def _prepared(names: IndexNames, account_id: str, entry_id: str, stamp: str) -> PreparedEntry:
    """An ``api`` entry at ``stamp``, ready for the writer."""
    source = {
        "id": entry_id,
        "account_id": account_id,
        "timestamp": stamp,
        "category": "api",
        "type": "notice",
        "actor": {"type": "system", "id": "s"},
        "action": "x",
        "message": "",
        "ingested_at": stamp,
    }
    index = names.entry_index_for_stamp("api", stamp)
    return PreparedEntry(doc_id_for(account_id, entry_id), index, source)


def _abandoned_claim(
    es: Elasticsearch, names: IndexNames, doc_id: str, *, index: str, age_s: float
) -> None:
    """A claim as a first attempt leaves it while it is between claim and write (or died)."""
    claimed_at = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat()
    document = {"index": index, "claimed_at": claimed_at}
    es.index(index=names.entry_ids, id=doc_id, document=document, refresh=True)


def test_a_first_attempt_within_its_lease_keeps_its_claim(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    del client  # the service is up: its templates are installed
    names = IndexNames(settings.index_prefix)
    account_id, entry_id = f"lease-{uuid.uuid4().hex[:8]}", "e1"
    doc_id = doc_id_for(account_id, entry_id)
    first_index = names.entry_index_for("api", datetime(1990, 1, 15, tzinfo=UTC))
    _abandoned_claim(es, names, doc_id, index=first_index, age_s=CLAIM_LEASE_S - 60)
    prepared = [_prepared(names, account_id, entry_id, "1990-02-15T00:00:00.000Z")]

    outcomes = with_engine(settings, lambda client: store_entries(client, names, prepared))

    assert outcomes[0].status == "failed" and "retry" in outcomes[0].message
    assert es.get(index=names.entry_ids, id=doc_id)["_source"]["index"] == first_index
    assert _copies(es, settings, doc_id) == 0


def test_a_claim_past_its_lease_is_taken_over_by_one_attempt_only(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    del client
    names = IndexNames(settings.index_prefix)
    account_id, entry_id = f"lease-{uuid.uuid4().hex[:8]}", "e1"
    doc_id = doc_id_for(account_id, entry_id)
    first_index = names.entry_index_for("api", datetime(1991, 1, 15, tzinfo=UTC))
    _abandoned_claim(es, names, doc_id, index=first_index, age_s=CLAIM_LEASE_S + 1)
    # one attempt goes to the claimed index itself: it must take the claim over like the others
    stamps = [f"1991-{month:02d}-15T00:00:00.000Z" for month in range(1, 8)]
    attempts = [[_prepared(names, account_id, entry_id, stamp)] for stamp in stamps]

    async def all_at_once(engine: Any) -> list[Any]:
        done = await asyncio.gather(*(store_entries(engine, names, a) for a in attempts))
        return [outcomes[0] for outcomes in done]

    outcomes = with_engine(settings, all_at_once)

    statuses = [o.status for o in outcomes]
    assert statuses.count("created") == 1, outcomes
    assert set(statuses) <= {"created", "duplicate", "failed"}, outcomes
    winner = stamps[statuses.index("created")]
    claim = es.get(index=names.entry_ids, id=doc_id)["_source"]
    assert claim["index"] == names.entry_index_for_stamp("api", winner)
    assert _copies(es, settings, doc_id) == 1


def test_a_retry_into_the_claimed_index_is_written_at_once(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    """The first attempt died between claim and write; the client sends the same entry again:
    it is stored right away (same index: the engine's own id check keeps it single)."""
    del client
    names = IndexNames(settings.index_prefix)
    account_id, entry_id = f"lease-{uuid.uuid4().hex[:8]}", "e1"
    doc_id = doc_id_for(account_id, entry_id)
    prepared = [_prepared(names, account_id, entry_id, "1992-03-15T00:00:00.000Z")]
    _abandoned_claim(es, names, doc_id, index=prepared[0].index, age_s=1)

    first = with_engine(settings, lambda client: store_entries(client, names, prepared))
    again = with_engine(settings, lambda client: store_entries(client, names, prepared))

    assert [first[0].status, again[0].status] == ["created", "duplicate"]
    assert _copies(es, settings, doc_id) == 1


def test_a_resend_after_the_lease_is_a_duplicate_and_writes_nothing(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    """An entry stored long ago, sent again (a re-run import): its old claim is not rewritten."""
    del client
    names = IndexNames(settings.index_prefix)
    prepared = [_prepared(names, f"old-{uuid.uuid4().hex[:8]}", "e1", "1994-05-15T00:00:00.000Z")]
    entry_doc = prepared[0]
    _abandoned_claim(es, names, entry_doc.doc_id, index=entry_doc.index, age_s=CLAIM_LEASE_S + 60)
    es.index(index=entry_doc.index, id=entry_doc.doc_id, document=entry_doc.source, refresh=True)
    claim_before = es.get(index=names.entry_ids, id=entry_doc.doc_id)["_seq_no"]

    outcomes = with_engine(settings, lambda engine: store_entries(engine, names, prepared))

    assert outcomes[0].status == "duplicate"
    assert es.get(index=names.entry_ids, id=entry_doc.doc_id)["_seq_no"] == claim_before
    assert _copies(es, settings, entry_doc.doc_id) == 1
