"""Hand-written bad input: every case is a 4xx naming the problem (or a per-entry rejection)."""

from __future__ import annotations

import json

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from tests.helpers import entry, new_account, refresh

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def headers(client: TestClient) -> dict[str, str]:
    return new_account(client)[1]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"size": "1000000"}, "size"),
        ({"size": "-1"}, "size"),
        ({"size": "1e3"}, "size"),
        ({"tz": "Europe/Atlantis"}, "tz"),
        ({"tz": "../../etc/passwd"}, "tz"),
        ({"from": "2026-13-45"}, "from"),
        ({"to": "2026-02-30"}, "to"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, "from"),
        ({"from": "99999-01-01"}, "from"),
        ({"q": "after:2026-99-01"}, "q"),
        ({"q": "before:"}, "q"),
        ({"q": "-after:2026-01-01"}, "q"),
        ({"q": "type:"}, "q"),
        ({"q": "provider:salesforce"}, "q"),
        ({"q": "x" * 1001}, "q"),
        ({"range": "forever"}, "range"),
        ({"category": "Webhook"}, "category"),
        ({"action": "a" * 300}, "action"),
    ],
)
def test_bad_search_parameters(
    client: TestClient, headers: dict[str, str], params: dict[str, str], field: str
) -> None:
    resp = client.get("/v1/entries", params=params, headers=headers)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["field"] == field
    assert resp.json()["error"]["message"]


@pytest.mark.parametrize(
    "q",
    ["😀 émoji", "مرحبا", "\u200b", "a\x00b", "\ud7ff", '"""', "-", "- -", "::", ":", "a:b:c",
     "urn:li:activity:7260000000000000000", "https://hooks.acme.test/x?a=1&b=2", "ǅ" * 500],
)  # fmt: skip
def test_unicode_and_odd_search_text_never_fails(
    client: TestClient, headers: dict[str, str], q: str
) -> None:
    resp = client.get("/v1/entries", params={"q": q}, headers=headers)
    assert resp.status_code in (200, 400), resp.text
    if resp.status_code == 400:
        assert resp.json()["error"]["field"] == "q"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (entry(id="has space"), "id"),
        (entry(id="x" * 129), "id"),
        (entry(id="nul\x00id"), "id"),
        (entry(message="m" * 10_001), "message"),
        (entry(timestamp="2026-11-20 10:15:00"), "timestamp"),
        (entry(timestamp="2026-11-20T10:15:00"), "timestamp"),
        (entry(timestamp=1732000000), "timestamp"),
        (entry(timestamp="1969-12-31T23:59:59Z"), "timestamp"),
        (entry(actor="u_42"), "actor"),
        (entry(actor={"type": "user"}), "actor.id"),
        (entry(actor={"type": "user", "id": "u", "email": "not-an-email"}), "actor.email"),
        (entry(actor={"type": "user", "id": "u", "role": "x"}), "actor.role"),
        (entry(action=""), "action"),
        (entry(action="has space"), "action"),
        (entry(metadata=[1, 2]), "metadata"),
        (entry(metadata={"status_code": 2**40}), "metadata.status_code"),
        (entry(metadata={"status_code": True}), "metadata.status_code"),
        (entry(category="credits", metadata={"credits_used": -1}), "metadata.credits_used"),
        (entry(category="audit", metadata={"ip": "999.1.1.1"}), "metadata.ip"),
        (entry(category="integration", metadata={"provider": "salesforce"}), "metadata.provider"),
        (entry(metadata={"url": "u" * 2000}), "metadata.url"),
        (entry(id="ends-in-a-newline\n"), "id"),
        (entry(action="user.login\n"), "action"),
        (entry(actor={"type": "user", "id": "u", "email": "a@b.example\n"}), "actor.email"),
    ],
)
def test_bad_entries_are_rejected_naming_the_field(
    client: TestClient, headers: dict[str, str], raw: dict[str, object], field: str
) -> None:
    resp = client.post("/v1/entries", json=raw, headers=headers)
    assert resp.status_code == 200, resp.text
    result = resp.json()["results"][0]
    assert result["status"] == "rejected", result
    assert result["error"]["field"] == field


def test_unicode_entries_round_trip(client: TestClient, headers: dict[str, str]) -> None:
    text = "Signal « Concurrents » 😀 — مرحبا \u200b"
    sent = entry(message=text, actor={"type": "user", "id": "u_ü", "name": "Zoë Ünal"})
    resp = client.post("/v1/entries", json=sent, headers=headers)
    assert resp.json()["results"][0]["status"] == "created"


def test_lone_surrogates_are_a_clear_400_or_rejection(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = json.dumps(entry(message="bad \ud800 half")).encode()
    resp = client.post(
        "/v1/entries", content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert resp.status_code in (200, 400), resp.text
    if resp.status_code == 200:
        assert resp.json()["results"][0]["status"] == "rejected"


def test_oversize_ndjson_line_is_rejected_with_its_number(
    client: TestClient, headers: dict[str, str]
) -> None:
    long_line = json.dumps(entry(message="m" * 9000, metadata={"blob": "b" * 300_000}))
    body = "\n".join([json.dumps(entry()), long_line, json.dumps(entry())]).encode()
    resp = client.post("/v1/entries/_bulk", content=body, headers={**headers, **NDJSON})
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["created", "rejected", "created"]
    assert results[1]["line"] == 2 and "longer than" in results[1]["error"]["message"]


def test_ndjson_of_non_objects_and_bad_utf8(client: TestClient, headers: dict[str, str]) -> None:
    body = b'[1,2]\n"text"\n\xff\xfe\n{"category": "webhook"}'
    resp = client.post("/v1/entries/_bulk", content=body, headers={**headers, **NDJSON})
    assert resp.status_code == 200
    assert [r["status"] for r in resp.json()["results"]] == ["rejected"] * 4


def test_numbers_that_would_change_are_refused_not_rounded(
    client: TestClient, headers: dict[str, str], es: Elasticsearch, prefix: str
) -> None:
    exact = entry(
        timestamp="2026-11-21T03:04:05.678Z",
        metadata={"order": 18446744073709551615, "low": -9223372036854775808},
    )
    too_long = json.dumps(entry(metadata={"order": 123456789012345678901234567890}))
    not_json = json.dumps(entry(metadata={"ratio": float("nan")}))  # "NaN" is not JSON
    body = "\n".join([json.dumps(exact), too_long, not_json]).encode()
    resp = client.post("/v1/entries/_bulk", content=body, headers={**headers, **NDJSON})
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["created", "rejected", "rejected"]
    assert "does not fit in 64 bits" in results[1]["error"]["message"]
    assert results[1]["line"] == 2 and results[2]["line"] == 3
    for bad in (too_long, not_json):
        single = client.post("/v1/entries", content=bad.encode(),
                             headers={**headers, "Content-Type": "application/json"})  # fmt: skip
        assert single.status_code == 400 and single.json()["error"]["field"] == "body"
    refresh(es, prefix)
    window = {"from": "2026-11-21T03:04:05.678Z", "to": "2026-11-21T03:04:05.679Z"}
    found = client.get("/v1/entries", params=window, headers=headers).json()["entries"]
    assert [e["id"] for e in found] == [exact["id"]]
    assert found[0]["metadata"] == {"order": 18446744073709551615, "low": -9223372036854775808}


def test_wrong_methods_and_content_types(client: TestClient, headers: dict[str, str]) -> None:
    assert client.put("/v1/entries", json={}, headers=headers).status_code == 405
    form = client.post("/v1/entries", data={"a": "b"}, headers=headers)
    assert form.status_code == 415
    json_to_bulk = client.post("/v1/entries/_bulk", json=entry(), headers=headers)
    assert json_to_bulk.status_code == 415


@pytest.mark.parametrize("account_id", ["", " ", "UPPER", "a/b", "x" * 64, 42, "acme\n"])
def test_key_for_a_malformed_account_id_is_400(client: TestClient, account_id: object) -> None:
    from tests.helpers import ADMIN

    body = {"account_id": account_id, "scopes": ["read"], "name": "k"}
    resp = client.post("/v1/admin/keys", json=body, headers=ADMIN)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["field"] == "account_id"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"id": "x" * 5000}, "id"),
        ({"id": "nul\x00id"}, "id"),
        ({"id": "has space"}, "id"),
        ({"id": "~" + "g" * 32}, "id"),  # a generated id is ~ and 32 hex digits
        ({"ids": f"e-1,{'x' * 129}"}, "ids"),
        ({"ids": "e-1,nul\x00id"}, "ids"),
        ({"ids": "e-1,,e-2"}, "ids"),  # skipped, the proofs would not line up with the ids
        ({"ids": "e-1,"}, "ids"),
    ],
)
def test_a_proof_of_an_id_no_entry_can_have_is_a_400_naming_it(
    client: TestClient, headers: dict[str, str], query: dict[str, str], field: str
) -> None:
    resp = client.get("/v1/integrity/proof", params=query, headers=headers)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["field"] == field
