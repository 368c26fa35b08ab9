"""Ingest limits through the HTTP API against the real engine: nesting, entry size, metadata key
names, offsets, the fields of a JSON body. Each bad entry is rejected naming the problem, and
the entries around it are stored."""

from __future__ import annotations

import json

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import entry, new_account, refresh

NDJSON = {"Content-Type": "application/x-ndjson"}


def _stored_ids(es: Elasticsearch, settings: Settings, account: str) -> set[str]:
    refresh(es, settings.index_prefix)
    resp = es.search(
        index=f"{settings.index_prefix}-entries", size=100,
        query={"bool": {"filter": [{"term": {"account_id": account}}],
                        "must_not": [{"term": {"category": "audit"}}]}},
    )  # fmt: skip
    return {h["_source"]["id"] for h in resp["hits"]["hits"]}


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def _rejection(result: dict[str, object]) -> tuple[object, object]:
    assert result["status"] == "rejected", result
    error = result["error"]
    assert isinstance(error, dict)
    return error["field"], error["message"]


@pytest.mark.parametrize("levels", [65, 300, 400])
def test_metadata_nested_too_deeply_is_rejected_naming_its_key_and_the_others_stored(
    client: TestClient, es: Elasticsearch, settings: Settings, levels: int
) -> None:
    account, headers = new_account(client)
    deep = [entry(metadata={"x": _nested(levels)}) for _ in range(3)]
    good = [entry() for _ in range(4)]
    single = client.post("/v1/entries", json=deep[0], headers=headers)
    wrapped = client.post("/v1/entries", json={"entries": [good[0], deep[1], good[1]]},
                          headers=headers)  # fmt: skip
    lines = "\n".join(json.dumps(e) for e in (good[2], deep[2], good[3]))
    bulk = client.post("/v1/entries/_bulk", content=lines.encode(), headers={**headers, **NDJSON})
    for response in (single, wrapped, bulk):
        assert response.status_code == 200, response.text
    expected = ("metadata.x", "is nested more than 64 levels deep (arrays and objects)")
    assert _rejection(single.json()["results"][0]) == expected
    for response in (wrapped, bulk):
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["created", "rejected", "created"]
        assert _rejection(results[1]) == expected
    assert _stored_ids(es, settings, account) == {e["id"] for e in good}


def test_metadata_nested_64_levels_deep_is_stored_and_returned(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    _, headers = new_account(client)
    sent = entry(metadata={"x": _nested(64)})
    assert client.post("/v1/entries", json=sent, headers=headers).json()["created"] == 1
    refresh(es, settings.index_prefix)
    params = {"q": f"id:{sent['id']}", "range": "all"}
    found = client.get("/v1/entries", params=params, headers=headers).json()["entries"]
    assert [e["metadata"]["x"] for e in found] == [_nested(64)]


def test_an_entry_longer_than_the_line_limit_is_rejected_in_a_json_body(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account, headers = new_account(client)
    limit = settings.max_line_bytes
    big = [entry(metadata={"blob": "b" * 300_000}) for _ in range(2)]
    good = [entry(), entry()]
    bare = client.post("/v1/entries", json=big[0], headers=headers).json()
    wrapped = client.post("/v1/entries", json={"entries": [good[0], big[1], good[1]]},
                          headers=headers).json()  # fmt: skip
    expected = (None, f"the entry is longer than {limit} bytes (as compact JSON)")
    assert bare["results"][0]["id"] == big[0]["id"]
    assert _rejection(bare["results"][0]) == expected
    assert [r["status"] for r in wrapped["results"]] == ["created", "rejected", "created"]
    assert _rejection(wrapped["results"][1]) == expected
    assert _stored_ids(es, settings, account) == {e["id"] for e in good}


def test_an_entry_just_within_the_line_limit_is_stored(
    client: TestClient, settings: Settings
) -> None:
    _, headers = new_account(client)
    sent = entry(metadata={"blob": ""})
    compact = len(json.dumps(sent, separators=(",", ":")))
    sent["metadata"] = {"blob": "b" * (settings.max_line_bytes - compact)}
    spaced = json.dumps(sent, indent=4).encode()  # whitespace is not counted
    assert len(spaced) > settings.max_line_bytes
    answer = client.post(
        "/v1/entries", content=spaced, headers={**headers, "Content-Type": "application/json"}
    )
    assert answer.json()["results"] == [{"id": sent["id"], "status": "created"}]


@pytest.mark.parametrize(
    ("metadata", "field"),
    [({"": 1}, "metadata"), ({" ": 1}, "metadata"), ({"\t\u2003": "x"}, "metadata"),
     ({"a..b": 1}, "metadata.a..b"), ({".a": 1}, "metadata..a"), ({".": 1}, "metadata.."),
     ({"a. .b": 1}, "metadata.a. .b"), ({"a.\t": 1}, "metadata.a.\t"),
     ({"status_code.x": 1}, "metadata.status_code.x"), ({"url.x": "s"}, "metadata.url.x"),
     ({"status_code.": "abc"}, "metadata.status_code."),
     ({"status_code..x": 1}, "metadata.status_code..x"),
     ({"status_code": 502, "webhook_id.id": {"a": 1}}, "metadata.webhook_id.id")],
)  # fmt: skip
def test_metadata_keys_the_engine_refuses_or_reads_into_a_known_key_are_rejected_naming_them(
    client: TestClient, metadata: dict[str, object], field: str
) -> None:
    _, headers = new_account(client)
    result = client.post("/v1/entries", json=entry(metadata=metadata), headers=headers).json()
    got_field, message = _rejection(result["results"][0])
    assert got_field == field
    assert isinstance(message, str) and "engine" not in message


def test_metadata_keys_the_engine_takes_are_stored_as_sent(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account, headers = new_account(client)
    metadata = {"a.": 1, "a.b": 2, "a . b": 3, "\u00a0": 4, "nested": {"": 5, "b..c": [{".d": 6}]},
                "x.status_code": "text", "status_code": 502, "user-agent": "curl", "2fa": True,
                "status_code_x": 7}  # fmt: skip
    sent = entry(metadata=metadata)
    result = client.post("/v1/entries", json=sent, headers=headers).json()
    assert result["results"] == [{"id": sent["id"], "status": "created"}]
    refresh(es, settings.index_prefix)
    params = {"q": f"id:{sent['id']}", "range": "all"}
    found = client.get("/v1/entries", params=params, headers=headers).json()["entries"]
    assert [e["metadata"] for e in found] == [metadata]
    assert _stored_ids(es, settings, account) == {sent["id"]}


def test_a_field_beside_entries_is_a_400_naming_it(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account, headers = new_account(client)
    body = {"entries": [entry()], "foo": 1, "zone": "x"}
    response = client.post("/v1/entries", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "foo"
    assert _stored_ids(es, settings, account) == set()


def test_entries_given_twice_is_a_400_and_nothing_is_stored(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    """JSON readers keep the last member: the first list's entries were dropped unreported."""
    account, headers = new_account(client)
    first, second = json.dumps([entry(id="twice-1")]), json.dumps([entry(id="twice-2")])
    raw = f'{{"entries": {first}, "entries": {second}}}'.encode()
    sent = {**headers, "Content-Type": "application/json"}
    response = client.post("/v1/entries", content=raw, headers=sent)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "entries"
    assert _stored_ids(es, settings, account) == set()
    nested = json.dumps({"entries": [entry(id="inner", metadata={"entries": 1})]}).encode()
    kept = client.post("/v1/entries", content=nested, headers=sent)  # a member's own "entries"
    assert kept.status_code == 200 and kept.json()["created"] == 1, kept.text


@pytest.mark.parametrize("offset", ["+00:99", "+00:60", "-05:75", "+24:00", "-99:00"])
def test_an_offset_past_23_hours_or_59_minutes_is_refused_in_entries_and_queries(
    client: TestClient, offset: str
) -> None:
    _, headers = new_account(client)
    stamp = f"2026-11-20T10:00:00{offset}"
    result = client.post("/v1/entries", json=entry(timestamp=stamp), headers=headers).json()
    assert _rejection(result["results"][0])[0] == "timestamp"
    for params, field in (({"from": stamp}, "from"), ({"to": stamp}, "to"),
                          ({"q": f"after:{stamp}"}, "q")):  # fmt: skip
        response = client.get("/v1/entries", params=params, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == field
