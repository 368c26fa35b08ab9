"""The bodies of the admin endpoints: every field is one the request takes, or a 400 naming it;
a platform key is made only when the body asks for one with ``"account_id": null``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from tests.helpers import ADMIN, new_account


def _keys_of(client: TestClient, account_id: str | None = None) -> list[dict[str, Any]]:
    params = {"account_id": account_id} if account_id else {}
    resp = client.get("/v1/admin/keys", params=params, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["keys"])


def _no_account(client: TestClient, account_id: str) -> bool:
    params = {"account_id": account_id}
    return client.get("/v1/entries", params=params, headers=ADMIN).status_code == 404


def _refused(resp: Any, field: str) -> None:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["field"] == field and f"'{field}'" in error["message"], error


def test_a_key_with_an_unknown_field_is_400_naming_it_and_not_made(client: TestClient) -> None:
    account_id, _ = new_account(client)
    before = _keys_of(client, account_id)
    body = {"account_id": account_id, "scopes": ["read"], "name": "k", "expires": 1}
    _refused(client.post("/v1/admin/keys", json=body, headers=ADMIN), "expires")
    assert _keys_of(client, account_id) == before


def test_a_key_without_account_id_is_400_and_no_platform_key_is_made(
    client: TestClient, es: Elasticsearch, prefix: str
) -> None:
    name = f"left-out-{uuid.uuid4().hex[:8]}"
    resp = client.post("/v1/admin/keys", json={"scopes": ["read"], "name": name}, headers=ADMIN)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["field"] == "account_id" and "null for a platform key" in error["message"]
    es.indices.refresh(index=f"{prefix}-keys")
    assert es.count(index=f"{prefix}-keys", query={"term": {"name": name}})["count"] == 0


def test_a_platform_key_is_made_when_account_id_is_null(client: TestClient) -> None:
    body = {"account_id": None, "scopes": ["read"], "name": "platform reader"}
    resp = client.post("/v1/admin/keys", json=body, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    assert resp.json()["account_id"] is None
    assert client.delete(f"/v1/admin/keys/{resp.json()['id']}", headers=ADMIN).status_code == 204


def test_an_account_with_an_unknown_field_is_400_naming_it_and_not_made(
    client: TestClient,
) -> None:
    account_id = f"acct-{uuid.uuid4().hex[:10]}"
    body = {"id": account_id, "name": "Acme", "bogus": 1}
    _refused(client.post("/v1/admin/accounts", json=body, headers=ADMIN), "bogus")
    assert _no_account(client, account_id)


@pytest.mark.parametrize("field", ["id", "bogus", "account_id"])
def test_an_account_change_with_an_unknown_field_is_400_naming_it(
    client: TestClient, es: Elasticsearch, prefix: str, field: str
) -> None:
    account_id, _ = new_account(client)
    body = {"name": "Renamed", field: "x"}
    resp = client.patch(f"/v1/admin/accounts/{account_id}", json=body, headers=ADMIN)
    _refused(resp, field)
    stored = es.get(index=f"{prefix}-accounts", id=account_id)["_source"]
    assert stored["name"] == account_id  # nothing changed


def test_an_account_is_made_with_view_audit_when_asked(
    client: TestClient, es: Elasticsearch, prefix: str
) -> None:
    account_id = f"acct-{uuid.uuid4().hex[:10]}"
    body = {"id": account_id, "view_audit": True}
    resp = client.post("/v1/admin/accounts", json=body, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    assert resp.json()["view_audit"] is True
    stored = es.get(index=f"{prefix}-accounts", id=account_id)["_source"]
    assert stored["view_audit"] is True
    wrong = {"id": f"acct-{uuid.uuid4().hex[:10]}", "view_audit": "yes"}
    resp = client.post("/v1/admin/accounts", json=wrong, headers=ADMIN)
    assert resp.status_code == 400 and resp.json()["error"]["field"] == "view_audit"
    assert _no_account(client, wrong["id"])


def test_listing_keys_refuses_an_unknown_parameter_or_a_malformed_account(
    client: TestClient,
) -> None:
    unknown = client.get("/v1/admin/keys", params={"acount_id": "acme"}, headers=ADMIN)
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "acount_id"
    malformed = client.get("/v1/admin/keys", params={"account_id": "Not An Id"}, headers=ADMIN)
    assert malformed.status_code == 400, malformed.text
    assert malformed.json()["error"]["field"] == "account_id"


@pytest.mark.parametrize(
    ("path", "raw", "named"),
    [("/v1/admin/keys", b'{"account_id": "acme", "account_id": null, "scopes": ["read"]}',
      "account_id"),
     ("/v1/admin/accounts", b'{"id": "twice-a", "name": "A", "timezone": "UTC", "name": "B"}',
      "name"),
     ("/v1/admin/keys", b'\xef\xbb\xbf{"scopes": ["read"], "x": {"a": 1, "a": 2}}', "a")],
)  # fmt: skip
def test_a_member_named_twice_is_400_naming_it_and_nothing_is_made(
    client: TestClient, path: str, raw: bytes, named: str
) -> None:
    """JSON readers keep the last value: a key for every account must never be made by a
    second ``account_id``."""
    before = _keys_of(client)
    headers = {**ADMIN, "Content-Type": "application/json"}
    resp = client.post(path, content=raw, headers=headers)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["field"] == named
    assert _keys_of(client) == before
