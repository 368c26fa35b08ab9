"""The bulk writer, called directly: a document JSON cannot carry is refused before any write;
bulk requests stay under a size bound; an answer where everything was created is counted."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch, NotFoundError
from starlette.testclient import TestClient

from service.config import Settings
from service.search.client import ALL_CREATED, BodySerializer, EngineSerializer
from service.search.indices import IndexNames
from service.search.setup import run_setup
from service.search.writer import (
    BULK_FIELDS,
    Outcome,
    PreparedEntry,
    _bulk_create,
    _groups,
    create_op,
    store_entries,
)
from tests.helpers import delete_prefixed, make_settings, with_engine


@pytest.fixture
def names(client: TestClient, settings: Settings) -> IndexNames:
    """The service's index names (the service is up: setup has installed the templates)."""
    del client
    return IndexNames(settings.index_prefix)


def test_an_unwritable_document_is_rejected_and_leaves_no_claim(
    names: IndexNames, es: Elasticsearch, settings: Settings
) -> None:
    index = names.entry_index_for("api", datetime(2026, 11, 3, tzinfo=UTC))
    source = {"id": "w1", "account_id": "writer-test", "timestamp": "2026-11-03T00:00:00.000Z",
              "category": "api", "type": "notice", "actor": {"type": "system", "id": "s"},
              "action": "x", "message": "", "ingested_at": "2026-11-03T00:00:00.000Z"}  # fmt: skip
    entries = [
        PreparedEntry("writer-test/w1", index, {**source, "metadata": {"n": 10**30}}),
        PreparedEntry("writer-test/w2", index, {**source, "id": "w2", "metadata": {"n": 1}}),
    ]

    outcomes: list[Outcome] = with_engine(settings, lambda es: store_entries(es, names, entries))
    assert [o.status for o in outcomes] == ["rejected", "created"]
    assert "64-bit" in outcomes[0].message
    assert not es.exists(index=names.entry_ids, id="writer-test/w1")
    assert es.exists(index=names.entry_ids, id="writer-test/w2")
    assert not es.exists(index=index, id="writer-test/w1")


def test_ops_are_grouped_under_the_size_bound() -> None:
    assert _groups([b"x" * 10] * 5, 25) == [[0, 1], [2, 3], [4]]
    assert _groups([b"x" * 30, b"y", b"z" * 30], 25) == [[0], [1], [2]]  # a big op goes alone
    assert _groups([], 25) == []


def test_a_batch_larger_than_the_bound_is_sent_in_several_requests_and_stored(
    names: IndexNames, es: Elasticsearch, settings: Settings
) -> None:
    index = names.entry_index_for("api", datetime(2026, 11, 4, tzinfo=UTC))
    ops = [create_op(index, f"writer-test/s{n}", {"id": f"s{n}", "account_id": "writer-test",
                                                   "timestamp": "2026-11-04T00:00:00.000Z",
                                                   "category": "api", "message": "x" * 100})
           for n in range(7)]  # fmt: skip

    bulks_before = _shard_bulks(es, index)
    results = with_engine(settings, lambda es: _bulk_create(es, ops, 2 * len(ops[0]) + 1))
    assert _shard_bulks(es, index) - bulks_before == 4  # 2 + 2 + 2 + 1 ops
    assert [r["status"] for r in results] == [201] * 7
    assert all(es.exists(index=index, id=f"writer-test/s{n}") for n in range(7))


def _shard_bulks(es: Elasticsearch, index: str) -> int:
    """Shard-level bulk requests on ``index`` (one primary shard: one per bulk request)."""
    with contextlib.suppress(NotFoundError):
        stats = es.indices.stats(index=index, metric="bulk")
        return int(stats["_all"]["primaries"]["bulk"]["total_operations"])
    return 0


def test_an_all_created_bulk_answer_is_counted_and_any_other_is_parsed() -> None:
    created = b'{"create":{"status":201}}'
    answer = b'{"errors":false,"items":[%b]}' % b",".join([created] * 3)
    assert EngineSerializer().loads(answer) == {"errors": False, ALL_CREATED: 3}
    others = [
        answer.replace(b"201}}]", b"200}}]"),  # an item not created (here: updated)
        answer.replace(b"]}", b',{"create":{"status":409,"error":{"type":"x"}}}]}'),
        b'{"errors":false,"items":[]}',
        b'{"errors":true,"items":[%b]}' % created,
        b'{"took":3,"errors":false,"items":[%b]}' % created,  # an answer not filtered
    ]
    for other in others:
        assert ALL_CREATED not in EngineSerializer().loads(other), other


def test_the_engine_answers_an_all_created_bulk_in_the_form_counted(
    names: IndexNames, settings: Settings
) -> None:
    """The engine's own bytes take the counted path (were its answer to change, every entry
    would still be read, only parsed)."""
    index = names.entry_index_for("api", datetime(2026, 11, 4, tzinfo=UTC))
    ops = [create_op(index, f"writer-test/c{n}", {"id": f"c{n}"}) for n in range(3)]

    async def bulk(es: AsyncElasticsearch) -> dict[str, Any]:
        resp = await es.bulk(operations=b"".join(ops), filter_path=BULK_FIELDS)  # type: ignore[arg-type]
        return dict(resp.body)

    assert with_engine(settings, bulk) == {"errors": False, ALL_CREATED: 3}
    assert [r["status"] for r in with_engine(settings, lambda es: _bulk_create(es, ops))] == [
        409
    ] * 3


def test_a_bulk_body_already_built_goes_out_as_it_is() -> None:
    body = b'{"create":{"_index":"i","_id":"1"}}\n{"v":1}\n'
    assert BodySerializer().dumps(body) is body
    assert BodySerializer().dumps([{"index": {}}, {"v": 1}]) == b'{"index":{}}\n{"v":1}\n'
    assert BodySerializer().dumps(b'{"v":1}') == b'{"v":1}\n'  # a final newline still added


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mark", "claim", "resent", "writes_each"),
    [("e", True, "duplicate", 2), ("~", False, "created", 1)],
    ids=["client-ids", "generated-ids"],
)
def test_an_entry_costs_its_claim_and_itself_and_a_resend_costs_no_write(
    es: Elasticsearch, engine_url: str, mark: str, claim: bool, resent: str, writes_each: int
) -> None:
    """The engine's own count of indexing operations, on a prefix of this test's alone: the
    duplicate rules (leases, take-overs) add no write to the usual paths. An id the service
    generated has no claim, and the engine's answer to this attempt's own write arriving twice
    (a retried request) is still ``created``."""
    settings = make_settings(engine_url, f"w{uuid.uuid4().hex[:8]}")
    names = IndexNames(settings.index_prefix)
    stamp = "2026-11-05T00:00:00.000Z"
    entries = [
        PreparedEntry(f"costs/{mark}{n:032x}", names.entry_index_for_stamp("api", stamp),
                      {"id": f"{mark}{n:032x}", "account_id": "costs", "timestamp": stamp,
                       "category": "api", "type": "notice", "actor": {"type": "system", "id": "s"},
                       "action": "x", "message": "", "ingested_at": stamp}, claim=claim)
        for n in range(100)
    ]  # fmt: skip

    def writes() -> int:
        es.indices.refresh(index=f"{settings.index_prefix}-*")
        stats = es.indices.stats(index=f"{settings.index_prefix}-*", metric="indexing")
        return int(stats["_all"]["primaries"]["indexing"]["index_total"])

    try:
        with_engine(settings, lambda client: run_setup(client, settings))
        before = writes()
        first = with_engine(settings, lambda client: store_entries(client, names, entries))
        after_first = writes()
        again = with_engine(settings, lambda client: store_entries(client, names, entries))
        assert {o.status for o in first} == {"created"}
        assert {o.status for o in again} == {resent}
        assert after_first - before == writes_each * len(entries)  # (the claims and) the entries
        assert es.count(index=names.entry_ids)["count"] == (len(entries) if claim else 0)
        assert writes() == after_first  # a resend reads, and writes nothing
    finally:
        delete_prefixed(es, settings.index_prefix)
