"""Tenant isolation, endpoint by endpoint: cross-account attempts are refused, revealing nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import ADMIN, entry, new_account, refresh

READS = [("GET", "/v1/entries"), ("GET", "/v1/histogram"), ("GET", "/v1/export"),
         ("POST", "/v1/exports")]  # fmt: skip


@pytest.fixture(scope="module")
def two(client: TestClient, es: Elasticsearch, settings: Settings) -> dict[str, Any]:
    mine, my_headers = new_account(client)
    theirs, their_headers = new_account(client)
    secret = entry(message="their secret payroll export", category="audit", metadata={})
    assert client.post("/v1/entries", json=secret, headers=their_headers).json()["created"] == 1
    refresh(es, settings.index_prefix)
    job = client.post("/v1/exports", params={"range": "all"}, headers=their_headers).json()
    page = client.get("/v1/entries", params={"range": "all", "size": 1}, headers=their_headers)
    return {"mine": mine, "me": my_headers, "theirs": theirs, "them": their_headers,
            "job": job["id"], "cursor": page.json()["next_cursor"]}  # fmt: skip


def _call(
    client: TestClient, method: str, path: str, headers: dict[str, str], **params: Any
) -> Any:
    return client.request(method, path, params=params, headers=headers)


@pytest.mark.parametrize(("method", "path"), READS)
def test_another_accounts_id_is_403_like_a_missing_account(
    client: TestClient, two: dict[str, Any], method: str, path: str
) -> None:
    theirs = _call(client, method, path, two["me"], account_id=two["theirs"])
    ghost = _call(client, method, path, two["me"], account_id="ghost-account")
    assert theirs.status_code == ghost.status_code == 403
    assert theirs.json() == ghost.json()
    assert two["theirs"] not in theirs.text and "secret" not in theirs.text


@pytest.mark.parametrize(("method", "path"), READS)
def test_platform_key_without_account_is_400(
    client: TestClient, two: dict[str, Any], method: str, path: str
) -> None:
    resp = _call(client, method, path, ADMIN)
    assert resp.status_code == 400 and resp.json()["error"]["field"] == "account_id"


@pytest.mark.parametrize(("method", "path"), READS)
def test_own_view_never_contains_the_other_account(
    client: TestClient, two: dict[str, Any], method: str, path: str
) -> None:
    resp = _call(client, method, path, two["me"], range="all", q="secret payroll")
    assert resp.status_code in (200, 202)
    if path == "/v1/exports":  # the job echoes its own filters; it must have found nothing
        assert resp.json()["rows_total"] == 0
    else:
        assert "payroll" not in resp.text and two["theirs"] not in resp.text


def test_other_accounts_cursor_and_job_are_refused(client: TestClient, two: dict[str, Any]) -> None:
    stolen = client.get("/v1/entries", params={"range": "all", "size": 1, "cursor": two["cursor"]},
                        headers=two["me"])  # fmt: skip
    assert stolen.status_code == 400 and "payroll" not in stolen.text
    for suffix in ("", "/download"):
        theirs = client.get(f"/v1/exports/{two['job']}{suffix}", headers=two["me"])
        ghost = client.get(f"/v1/exports/exp_000000000000000000000000{suffix}", headers=two["me"])
        assert theirs.status_code == ghost.status_code == 404
        assert theirs.json() == ghost.json()


def test_writing_into_another_account_is_403(client: TestClient, two: dict[str, Any]) -> None:
    resp = client.post("/v1/entries", json=entry(account_id=two["theirs"]), headers=two["me"])
    assert resp.status_code == 403
    ndjson = {**two["me"], "Content-Type": "application/x-ndjson"}
    bulk = client.post("/v1/entries/_bulk", params={"account_id": two["theirs"]},
                       content=b'{"category": "api"}', headers=ndjson)  # fmt: skip
    assert bulk.status_code == 403


@pytest.mark.parametrize(
    ("scopes", "method", "path"),
    [
        (("read",), "POST", "/v1/entries"),
        (("read",), "GET", "/v1/export"),
        (("read",), "POST", "/v1/exports"),
        (("ingest",), "GET", "/v1/entries"),
        (("ingest",), "GET", "/v1/histogram"),
        (("export",), "GET", "/v1/entries"),
        (("read", "export", "ingest"), "POST", "/v1/admin/accounts"),
        (("read", "export", "ingest"), "POST", "/v1/admin/keys"),
        (("read", "export", "ingest"), "GET", "/v1/admin/keys"),
        (("read", "export", "ingest"), "DELETE", "/v1/admin/keys/abc"),
        (("read", "export", "ingest"), "PATCH", "/v1/admin/accounts/abc"),
    ],
)
def test_missing_scope_is_403(
    client: TestClient, scopes: tuple[str, ...], method: str, path: str
) -> None:
    _, headers = new_account(client, scopes=scopes)
    resp = client.request(method, path, headers=headers, json={})
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), [*READS, ("POST", "/v1/entries"),
                                              ("GET", "/v1/admin/keys")])  # fmt: skip
def test_revoked_unknown_and_missing_keys_are_401(
    client: TestClient, method: str, path: str
) -> None:
    _, headers = new_account(client, scopes=("read", "ingest", "export"))
    key_id = headers["Authorization"].split("_")[1]
    assert client.delete(f"/v1/admin/keys/{key_id}", headers=ADMIN).status_code == 204
    for auth in (headers, {"Authorization": "Bearer alk_0000000000000000_" + "x" * 43},
                 {"Authorization": "Basic Zm9vOmJhcg=="}, {}):  # fmt: skip
        resp = client.request(method, path, headers=auth, json={})
        assert resp.status_code == 401, (auth, resp.text)
        assert resp.headers["www-authenticate"] == "Bearer"


def test_revocation_through_another_instance_takes_effect_within_the_cache_time(
    client: TestClient, settings: Settings
) -> None:
    _, headers = new_account(client)
    assert client.get("/v1/entries", headers=headers).status_code == 200  # now cached here
    key_id = headers["Authorization"].split("_")[1]
    from service.app import create_app

    with TestClient(create_app(settings)) as other_instance:
        assert other_instance.delete(f"/v1/admin/keys/{key_id}", headers=ADMIN).status_code == 204
    time.sleep(settings.key_cache_s + 0.5)
    assert client.get("/v1/entries", headers=headers).status_code == 401
