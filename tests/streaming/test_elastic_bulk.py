"""The Elasticsearch/OpenSearch ``_bulk`` sender against a customer cluster of its own.

The "customer's cluster" is a second real node, started for this module as ``test_faults.py``
starts one (``service.local_engine.node.EngineInstance`` in a throwaway directory), never the
session's engine. What the sender wrote is read back with the official client.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from service.local_engine.node import EngineInstance
from service.streaming.guard import AddressGuard
from service.streaming.senders.base import DeliveryError, Target
from service.streaming.senders.elastic import ElasticBulkSender, authorization, bulk_failure

LOOPBACK = AddressGuard(allowed=(ip_network("127.0.0.0/8"),))


@pytest.fixture(scope="module")
def customer_url() -> Iterator[str]:
    """A node of this module's own, outside pytest's ``tmp_path`` (see ``test_faults.py``)."""
    instance = EngineInstance(Path(tempfile.mkdtemp(prefix="auditlog-test-customer-es-")))
    try:
        instance.start()
        url = instance.url()
        assert url is not None
        yield url
    finally:
        instance.stop()
        shutil.rmtree(instance.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def customer(customer_url: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(customer_url, request_timeout=60)
    yield client
    client.close()


def entry_event(position: int, entry_id: str, timestamp: str, account: str = "acme") -> Any:
    return {
        "event_type": "entry",
        "position": position,
        "entry": {
            "id": entry_id,
            "account_id": account,
            "timestamp": timestamp,
            "category": "webhook",
            "type": "error",
            "actor": {"type": "system", "id": "webhook-dispatcher", "name": "Dispatcher"},
            "action": "webhook.delivery.failed",
            "message": f"Entry {entry_id}",
            "metadata": {"status_code": 502, "attempt": 3},
        },
    }


CHECKPOINT = {
    "event_type": "checkpoint",
    "checkpoint": {
        "account_id": "acme",
        "seq": 3,
        "tree_size": 3,
        "genesis": False,
        "sealed_at": "2026-11-26T10:16:00.500Z",
        "root": "ab" * 32,
        "previous": "",
        "key_id": "k1",
        "signature": "c2ln",
    },
}
EVENTS = [
    entry_event(1, "e-1", "2026-11-26T10:15:00.123Z"),
    entry_event(2, "e-2", "2026-11-26T10:15:01.120Z"),
    entry_event(3, "e-3", "2026-11-26T10:15:02Z"),
    CHECKPOINT,
]
EXPECTED = {
    "acme/e-1": (EVENTS[0], "2026-11-26T10:15:00.123Z"),
    "acme/e-2": (EVENTS[1], "2026-11-26T10:15:01.120Z"),
    "acme/e-3": (EVENTS[2], "2026-11-26T10:15:02.000Z"),
    "checkpoint-acme-3": (CHECKPOINT, "2026-11-26T10:16:00.500Z"),
}


def target(url: str, index: str, **secrets: str) -> Target:
    return Target(kind="elasticsearch", url=url, settings={"index": index}, secrets=secrets)


def deliver(to: Target, events: list[Any], guard: AddressGuard = LOOPBACK) -> None:
    async def run() -> None:
        sender = ElasticBulkSender(to, guard)
        try:
            await sender.send(events)
        finally:
            await sender.close()

    asyncio.run(run())


def stored(customer: Elasticsearch, index: str) -> list[tuple[str, dict[str, Any]]]:
    customer.indices.refresh(index=index)
    found = customer.search(index=index, size=1000, query={"match_all": {}})
    return sorted((hit["_id"], hit["_source"]) for hit in found["hits"]["hits"])


@pytest.mark.second_engine
def test_every_event_is_in_the_customer_index_once(
    customer_url: str, customer: Elasticsearch, index: str
) -> None:
    deliver(target(customer_url, index), EVENTS)
    documents = stored(customer, index)
    assert [doc_id for doc_id, _ in documents] == sorted(EXPECTED)
    for doc_id, source in documents:
        event, timestamp = EXPECTED[doc_id]
        assert source.pop("@timestamp") == timestamp
        assert source == event


@pytest.mark.second_engine
def test_sending_again_makes_no_duplicates(
    customer_url: str, customer: Elasticsearch, index: str
) -> None:
    deliver(target(customer_url, index), EVENTS[:2])
    deliver(target(customer_url, index), EVENTS[:2])  # all 409: delivered before
    deliver(target(customer_url, index), EVENTS)  # two again, two new
    assert [doc_id for doc_id, _ in stored(customer, index)] == sorted(EXPECTED)


@pytest.mark.second_engine
def test_one_entry_id_in_two_accounts_is_two_documents(
    customer_url: str, customer: Elasticsearch, index: str
) -> None:
    same_id = [entry_event(1, "evt-1", "2026-11-26T10:15:00Z", account=a) for a in ("acme", "zeta")]
    deliver(target(customer_url, index), same_id)
    assert [doc_id for doc_id, _ in stored(customer, index)] == ["acme/evt-1", "zeta/evt-1"]


@pytest.mark.second_engine
def test_a_mapping_error_is_not_retried(
    customer_url: str, customer: Elasticsearch, index: str
) -> None:
    customer.indices.create(
        index=index,
        mappings={"dynamic": "strict", "properties": {"event_type": {"type": "keyword"}}},
    )
    with pytest.raises(DeliveryError) as caught:
        deliver(target(customer_url, index), EVENTS)
    assert caught.value.retry is False
    assert "strict_dynamic_mapping_exception" in caught.value.message
    assert "acme/e-1" in caught.value.message
    assert "(4 of 4 failed)" in caught.value.message
    assert stored(customer, index) == []


def test_a_destination_without_an_index_is_not_retried() -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(target("http://127.0.0.1:9", ""), EVENTS)
    assert caught.value.retry is False
    assert "no index" in caught.value.message


def test_the_guard_refuses_loopback_unless_allowed() -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(target("http://127.0.0.1:9", "audit"), EVENTS, guard=AddressGuard())
    assert caught.value.retry is False
    assert "loopback" in caught.value.message


def _item(status: int, error_type: str = "") -> dict[str, Any]:
    result: dict[str, Any] = {"_id": f"acme/e-{status}", "status": status}
    if error_type:
        result["error"] = {"type": error_type, "reason": f"{error_type} happened"}
    return {"create": result}


@pytest.mark.parametrize(
    ("items", "retry"),
    [
        ([_item(201), _item(409, "version_conflict_engine_exception")], None),
        ([_item(201), _item(429, "es_rejected_execution_exception")], True),
        ([_item(503, "unavailable_shards_exception"), _item(429, "circuit_breaking")], True),
        ([_item(201), _item(400, "document_parsing_exception")], False),
        ([_item(429, "es_rejected_execution_exception"), _item(400, "mapper_exception")], False),
        ([_item(404, "index_not_found_exception")], False),
    ],
)
def test_bulk_items_decide_whether_to_retry(items: list[Any], retry: bool | None) -> None:
    """Answers too costly to provoke on a real node (a full write queue, a lost shard), in the
    shape of the ``_bulk`` answers above."""
    failure = bulk_failure(items, where="https://es.example.com:9200")
    assert (failure.retry if failure is not None else None) is retry
    if failure is not None:
        first = next(i["create"] for i in items if i["create"]["status"] not in (201, 409))
        assert first["_id"] in failure.message
        assert first["error"]["type"] in failure.message


def test_credentials_are_an_api_key_or_basic() -> None:
    assert authorization(target("https://x", "i", api_key="a2V5")) == {
        "Authorization": "ApiKey a2V5"
    }
    assert authorization(target("https://x", "i", username="elastic", password="pw")) == {
        "Authorization": "Basic ZWxhc3RpYzpwdw=="
    }
    assert authorization(target("https://x", "i")) == {}


@pytest.mark.second_engine
def test_the_service_streams_an_account_into_a_customer_cluster(
    customer_url: str, customer: Elasticsearch, index: str, engine_url: str, es: Elasticsearch
) -> None:
    """End to end: an Elasticsearch destination created through the API writes every entry
    into the customer's own cluster once, then the checkpoint."""
    from tests.streaming.deployment import (
        create_destination,
        ingest_some,
        streaming_account,
        until,
    )

    def stored() -> list[dict[str, Any]]:
        if not customer.indices.exists(index=index):
            return []
        customer.indices.refresh(index=index)
        return [h["_source"] for h in customer.search(index=index, size=1000)["hits"]["hits"]]

    with streaming_account(engine_url, es) as (client, headers, account_id):
        create_destination(client, headers, kind="elasticsearch", url=customer_url, start=0,
                           settings={"index": index})  # fmt: skip
        ids = ingest_some(client, headers, 25)
        until(lambda: {d["entry"]["id"] for d in stored() if d["event_type"] == "entry"}
              >= set(ids), "every entry in the customer's cluster")  # fmt: skip
        until(lambda: any(d["event_type"] == "checkpoint" for d in stored()), "the checkpoint")
        entries = [d for d in stored() if d["event_type"] == "entry"]
        assert len(entries) == len({d["entry"]["id"] for d in entries})  # each once
        assert all(d["account_id"] == account_id for d in entries)
