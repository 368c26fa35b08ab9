"""A destination of kind ``elasticsearch`` writing into an OpenSearch cluster.

The cluster is a real OpenSearch 2.x node (the session's ``opensearch_url``, from its
integ-test-zip on Maven Central), read back over plain HTTP: the official ``elasticsearch`` client
refuses OpenSearch. What a document must hold is computed from the account's own feed
(``GET /v1/feed``), not from the sender.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx2 as httpx
import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from tests.streaming.deployment import create_destination, ingest_some, streaming_account, until

pytestmark = pytest.mark.second_engine  # a node of its own: not in `make test-fast`


@pytest.fixture(scope="module")
def opensearch(opensearch_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=opensearch_url, timeout=60) as client:
        yield client


def documents(opensearch: httpx.Client, index: str) -> list[tuple[str, dict[str, Any]]]:
    """Every document of ``index`` as ``(_id, _source)``, in ``_id`` order; none before the
    index exists."""
    if opensearch.head(f"/{index}").status_code == 404:
        return []
    opensearch.post(f"/{index}/_refresh").raise_for_status()
    found = opensearch.post(f"/{index}/_search", json={"size": 1000, "sort": ["_doc"]})
    found.raise_for_status()
    return sorted((hit["_id"], hit["_source"]) for hit in found.json()["hits"]["hits"])


def feed(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The account's entries a destination reads, as it reads them (in UTC)."""
    params: dict[str, str | int] = {"after": 0, "limit": 1000, "tz": "UTC"}
    return list(client.get("/v1/feed", params=params, headers=headers).json()["entries"])


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_service_streams_an_account_into_opensearch_once(
    opensearch_url: str, opensearch: httpx.Client, index: str, engine_url: str, es: Elasticsearch
) -> None:
    """Every entry of the feed is one document ``<account>/<entry id>`` holding the event, and
    a checkpoint is ``checkpoint-<account>-<seq>``; a second destination sending the same
    events again (answered 409 item by item) is a success that changes nothing."""
    with streaming_account(engine_url, es) as (client, headers, account_id):
        create_destination(client, headers, kind="elasticsearch", url=opensearch_url, start=0,
                           settings={"index": index})  # fmt: skip
        ids = ingest_some(client, headers, 25)

        def stored_ids(kind: str) -> set[str]:
            return {d for d, s in documents(opensearch, index) if s["event_type"] == kind}

        def feed_ids() -> set[str]:
            return {f"{account_id}/{e['id']}" for e in feed(client, headers)}

        until(lambda: {f"{account_id}/{i}" for i in ids} <= stored_ids("entry"),
              "every entry ingested in OpenSearch")  # fmt: skip
        until(lambda: stored_ids("entry") == feed_ids() and stored_ids("checkpoint"),
              "the whole feed and a checkpoint in OpenSearch")  # fmt: skip
        stored, entries = documents(opensearch, index), feed(client, headers)
        events = {f"{account_id}/{e['id']}": {"event_type": "entry", "position": e["position"],
                                              "account_id": account_id, "entry": e}
                  for e in entries}  # fmt: skip
        assert sorted(d for d, s in stored if s["event_type"] == "entry") == sorted(events)
        for doc_id, document in stored:
            source = dict(document)
            timestamp = source.pop("@timestamp")
            if source["event_type"] == "checkpoint":
                checkpoint = source["checkpoint"]
                assert doc_id == f"checkpoint-{account_id}-{checkpoint['seq']}"
                assert source == {"event_type": "checkpoint", "account_id": account_id,
                                  "checkpoint": checkpoint}  # fmt: skip
                assert _instant(timestamp) == _instant(checkpoint["sealed_at"])
            else:
                assert source == events[doc_id]
                assert _instant(timestamp) == _instant(source["entry"]["timestamp"])

        again = create_destination(client, headers, kind="elasticsearch", url=opensearch_url,
                                   start=0, settings={"index": index})  # fmt: skip
        url = f"/v1/destinations/{again['id']}"

        def through_or_stopped() -> bool:
            shown = client.get(url, headers=headers).json()
            return bool(shown["status"] != "active" or shown["position"] >= len(entries))

        until(through_or_stopped, "the second destination through the same events")
        shown = client.get(url, headers=headers).json()
        assert shown["status"] == "active" and not shown["health"].get("failed"), shown
        until(lambda: stored_ids("entry") == feed_ids(), "the new destination's audit entry")
        now = dict(documents(opensearch, index))
        assert all(now[doc_id] == source for doc_id, source in stored)  # none overwritten


def test_a_mapping_conflict_pauses_the_destination_where_it_was(
    opensearch_url: str, opensearch: httpx.Client, index: str, engine_url: str, es: Elasticsearch
) -> None:
    """OpenSearch answers the ``_bulk`` 200 with every item refused (400, a mapping conflict):
    the destination says which document and why, pauses, and its position stays."""
    mappings = {"properties": {"event_type": {"type": "long"}}}
    opensearch.put(f"/{index}", json={"mappings": mappings}).raise_for_status()
    with streaming_account(engine_url, es) as (client, headers, account_id):
        created = create_destination(client, headers, kind="elasticsearch", url=opensearch_url,
                                     start=0, settings={"index": index})  # fmt: skip
        ingest_some(client, headers, 5)
        url = f"/v1/destinations/{created['id']}"
        until(lambda: client.get(url, headers=headers).json()["status"] == "paused", "a pause")
        paused = client.get(url, headers=headers).json()
        reason = paused["status_reason"]
        refused = rf"refused {re.escape(account_id)}/\S+ \(HTTP 400\): mapper_parsing_exception"
        assert re.search(refused, reason), reason
        assert "[event_type]" in reason and re.search(r"\((\d+) of \1 failed\)", reason), reason
        assert paused["position"] == 0 and paused["health"]["failed"] == 1
        assert documents(opensearch, index) == []
