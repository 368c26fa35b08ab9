"""Ingestion through the HTTP API against the real engine: statuses, validation, idempotency."""

from __future__ import annotations

import json
from typing import Any

from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import ADMIN, entry, new_account, refresh


def _stored(es: Elasticsearch, settings: Settings, account: str, entry_id: str) -> list[Any]:
    refresh(es, settings.index_prefix)
    resp = es.search(
        index=f"{settings.index_prefix}-entries",
        query={"bool": {"filter": [{"term": {"account_id": account}}, {"term": {"id": entry_id}}]}},
    )
    return list(resp["hits"]["hits"])


def test_single_entry_is_created_and_stored_normalised(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account, headers = new_account(client)
    sent = entry(timestamp="2026-11-20T11:15:00.5+01:00")
    response = client.post("/v1/entries", json=sent, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == [{"id": sent["id"], "status": "created"}]
    assert (body["created"], body["duplicates"], body["rejected"], body["failed"]) == (1, 0, 0, 0)
    hits = _stored(es, settings, account, str(sent["id"]))
    assert len(hits) == 1
    assert hits[0]["_index"] == f"{settings.index_prefix}-webhook-2026.11"
    assert hits[0]["_source"]["timestamp"] == "2026-11-20T10:15:00.500Z"
    assert hits[0]["_source"]["account_id"] == account


def test_batch_statuses_in_order(client: TestClient) -> None:
    _, headers = new_account(client)
    good = entry()
    batch = [
        good,
        entry(category="nope"),
        good,
        entry(metadata={"status_code": "502"}),
        entry(type="fatal"),
        entry(timestamp="yesterday"),
        entry(actor={"type": "robot", "id": "x"}),
        entry(extra=1),
    ]
    response = client.post("/v1/entries", json={"entries": batch}, headers=headers)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [
        "created", "rejected", "duplicate", "rejected", "rejected", "rejected", "rejected",
        "rejected",
    ]  # fmt: skip
    fields = [r.get("error", {}).get("field") for r in results]
    assert fields == [
        None, "category", None, "metadata.status_code", "type", "timestamp", "actor.type", "extra"
    ]  # fmt: skip
    assert "integer" in results[3]["error"]["message"]


def test_retry_with_the_same_id_is_a_duplicate_even_in_another_index(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account, headers = new_account(client)
    first = entry(timestamp="2026-10-03T08:00:00Z", category="signal", metadata={})
    assert client.post("/v1/entries", json=first, headers=headers).json()["created"] == 1
    moved = {**first, "timestamp": "2026-11-03T08:00:00Z"}  # another monthly index
    again = client.post("/v1/entries", json={"entries": [first, moved]}, headers=headers).json()
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    hits = _stored(es, settings, account, str(first["id"]))
    assert [h["_index"] for h in hits] == [f"{settings.index_prefix}-signal-2026.10"]


def test_same_id_in_two_accounts_is_two_entries(client: TestClient) -> None:
    _, headers_a = new_account(client)
    _, headers_b = new_account(client)
    shared = entry(id="order-1")
    assert client.post("/v1/entries", json=shared, headers=headers_a).json()["created"] == 1
    assert client.post("/v1/entries", json=shared, headers=headers_b).json()["created"] == 1


def test_unknown_metadata_is_kept_and_returned_without_growing_the_mapping(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account, headers = new_account(client)
    sent = entry(metadata={"status_code": 200, "attempt": 1, "x_custom_field": {"deep": [1, 2]}})
    assert client.post("/v1/entries", json=sent, headers=headers).json()["created"] == 1
    index = f"{settings.index_prefix}-webhook-2026.11"
    hits = _stored(es, settings, account, str(sent["id"]))
    assert hits[0]["_source"]["metadata"]["x_custom_field"] == {"deep": [1, 2]}
    mapping = es.indices.get_mapping(index=index).body[index]["mappings"]
    assert "x_custom_field" not in json.dumps(mapping)


def test_malformed_bodies(client: TestClient) -> None:
    _, headers = new_account(client)
    bad_json = client.post(
        "/v1/entries", content=b"{nope", headers={**headers, "Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["field"] == "body"
    wrong_type = client.post(
        "/v1/entries", content=b"{}", headers={**headers, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    empty = client.post("/v1/entries", json={"entries": []}, headers=headers)
    assert empty.status_code == 400 and empty.json()["error"]["field"] == "entries"
    scalar = client.post("/v1/entries", json=[1, 2], headers=headers)
    assert scalar.status_code == 400


def test_ndjson_bad_lines_are_rejected_with_their_line_numbers(client: TestClient) -> None:
    _, headers = new_account(client)
    lines = [
        json.dumps(entry()),
        "{broken",
        "",
        json.dumps(entry(metadata={"attempt": "three"})),
        json.dumps(entry()),
    ]
    response = client.post(
        "/v1/entries/_bulk",
        content="\n".join(lines).encode(),
        headers={**headers, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["line"], r["status"]) for r in results] == [
        (1, "created"), (2, "rejected"), (4, "rejected"), (5, "created")
    ]  # fmt: skip
    assert "line 2" in results[1]["error"]["message"]
    assert results[2]["error"]["field"] == "metadata.attempt"


def test_limits_are_413(client: TestClient, settings: Settings) -> None:
    _, headers = new_account(client)
    too_many = {"entries": [entry() for _ in range(settings.max_entries + 1)]}
    assert client.post("/v1/entries", json=too_many, headers=headers).status_code == 413
    huge = b"x" * (settings.max_body_bytes + 1)
    response = client.post(
        "/v1/entries/_bulk",
        content=huge,
        headers={**headers, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 413


def test_expired_integration_entry_and_future_timestamps_are_rejected(client: TestClient) -> None:
    _, headers = new_account(client)
    old = entry(category="integration", timestamp="2020-01-01T00:00:00Z", metadata={})
    future = entry(timestamp="2999-01-01T00:00:00Z")
    results = client.post("/v1/entries", json={"entries": [old, future]}, headers=headers).json()
    assert [r["status"] for r in results["results"]] == ["rejected", "rejected"]
    assert "expired" in results["results"][0]["error"]["message"]
    assert "future" in results["results"][1]["error"]["message"]


def test_account_key_cannot_write_to_another_account(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    _, headers_a = new_account(client)
    other, _ = new_account(client)
    sent = entry(account_id=other)
    response = client.post("/v1/entries", json=sent, headers=headers_a)
    assert response.status_code == 403
    assert other not in response.text
    ghost = client.post("/v1/entries", json=entry(account_id="no-such-acct"), headers=headers_a)
    assert ghost.status_code == 403 and ghost.json() == response.json()
    assert _stored(es, settings, other, str(sent["id"])) == []


def test_platform_key_must_name_a_known_account(client: TestClient) -> None:
    account, _ = new_account(client)
    results = client.post(
        "/v1/entries",
        json={"entries": [entry(), entry(account_id="no-such-acct"), entry(account_id=account)]},
        headers=ADMIN,
    ).json()["results"]
    assert [r["status"] for r in results] == ["rejected", "rejected", "created"]
    assert results[0]["error"]["field"] == "account_id"


def test_a_generated_id_is_unsendable_unclaimed_and_found_by_id(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    """An entry sent without an id gets one in the service's own namespace: it is stored once
    with no claim in the id registry, a client sending that id is refused (so it could never be
    stored twice under it), and the id finds the entry in search and in proofs' look-ups."""
    account, headers = new_account(client)
    unnamed = {k: v for k, v in entry().items() if k != "id"}
    body = client.post("/v1/entries", json={"entries": [unnamed, unnamed]}, headers=headers).json()
    assert [r["status"] for r in body["results"]] == ["created", "created"]
    first, second = (r["id"] for r in body["results"])
    assert first != second
    for made in (first, second):
        assert made.startswith("~") and len(made) == 33
        int(made[1:], 16)
        assert len(_stored(es, settings, account, made)) == 1
        assert not es.exists(index=f"{settings.index_prefix}-entry-ids", id=f"{account}/{made}")

    resent = client.post("/v1/entries", json={**unnamed, "id": first}, headers=headers)
    assert resent.status_code == 200
    assert resent.json()["results"][0]["status"] == "rejected"
    assert resent.json()["results"][0]["error"]["field"] == "id"
    assert len(_stored(es, settings, account, first)) == 1

    window = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    found = client.get("/v1/entries", params={**window, "q": f"id:{first}"}, headers=headers)
    assert found.status_code == 200, found.text
    assert [e["id"] for e in found.json()["entries"]] == [first]
    worded = client.get("/v1/entries", params={**window, "q": first}, headers=headers)
    assert [e["id"] for e in worded.json()["entries"]] == [first]
    bad = client.get("/v1/entries", params={"q": "id:~xyz"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "q"
