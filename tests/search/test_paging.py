"""Cursor paging past 10,000 entries while others arrive, and cursor/tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import ADMIN, new_account, refresh
from tests.search.dataset import ingest, make_entries

NOW = datetime.now(UTC)
START = NOW - timedelta(days=60)
WINDOW = {"from": START.isoformat(), "to": NOW.isoformat()}
KEPT = ("audit", "credits", "ai", "webhook", "signal", "api")


@pytest.fixture(scope="module")
def big(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> tuple[str, dict[str, str], set[str]]:
    account, headers = new_account(client)
    entries = make_entries(3, 25_000, START, NOW - timedelta(minutes=1), KEPT)
    ingest(client, headers, entries)
    refresh(es, settings.index_prefix)
    return account, headers, {e["id"] for e in entries}


@pytest.mark.slow
@pytest.mark.parametrize("order", ["desc", "asc"])
def test_paging_returns_each_entry_once_while_entries_arrive(
    big: Any, client: TestClient, es: Elasticsearch, settings: Settings, order: str
) -> None:
    _, headers, known = big
    expected = set(known)  # the 25,000, plus what earlier runs inserted
    inserted: dict[int, set[str]] = {}
    seen: list[str] = []
    params: dict[str, Any] = {**WINDOW, "size": 200, "order": order}
    pages = 0
    last: str | None = None
    while True:
        resp = client.get("/v1/entries", params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        stamps = [e["timestamp"] for e in body["entries"]]
        assert stamps == sorted(stamps, reverse=order == "desc")
        if last is not None and stamps:
            assert (stamps[0] <= last) if order == "desc" else (stamps[0] >= last)
        seen += [e["id"] for e in body["entries"]]
        pages += 1
        if pages in (1, 2, 40):  # others arrive in the same window, both sides of the cursor
            extra = make_entries(
                1000 * len(order) + pages, 300, START, NOW - timedelta(minutes=1), KEPT
            )
            ingest(client, headers, extra)
            inserted[pages] = {e["id"] for e in extra}
            refresh(es, settings.index_prefix)
        if body["next_cursor"] is None:
            break
        last = stamps[-1]
        params = {**WINDOW, "size": 200, "order": order, "cursor": body["next_cursor"]}
    assert len(seen) == len(set(seen))  # each entry exactly once
    assert expected <= set(seen)
    # The second page opens the point in time: what arrived before it may show up behind the
    # cursor (once); what arrived after it never does.
    assert set(seen) - expected <= inserted[1]
    assert not set(seen) & (inserted[2] | inserted[40])
    assert pages >= 125
    for ids in inserted.values():
        known.update(ids)


def test_cursor_cannot_cross_accounts_or_queries(big: Any, client: TestClient) -> None:
    _, headers, _ = big
    first = client.get("/v1/entries", params={**WINDOW, "size": 5}, headers=headers).json()
    cursor = first["next_cursor"]
    assert cursor
    other, other_headers = new_account(client)
    stolen = client.get("/v1/entries", params={**WINDOW, "size": 5, "cursor": cursor},
                        headers=other_headers)  # fmt: skip
    assert stolen.status_code == 400 and stolen.json()["error"]["field"] == "cursor"
    assert "entries" not in stolen.json()
    changed = client.get("/v1/entries", params={**WINDOW, "size": 5, "cursor": cursor,
                                                "category": "api"}, headers=headers)  # fmt: skip
    assert changed.status_code == 400
    head, _, sig = cursor.partition(".")
    tampered = {**WINDOW, "size": 5, "cursor": head + "." + sig[::-1]}
    forged = client.get("/v1/entries", params=tampered, headers=headers)
    assert forged.status_code == 400
    platform = client.get("/v1/entries", params={**WINDOW, "size": 5, "cursor": cursor,
                                                 "account_id": other}, headers=ADMIN)  # fmt: skip
    assert platform.status_code == 400


def test_other_accounts_data_is_refused_without_data(big: Any, client: TestClient) -> None:
    account, _, _ = big
    _, other_headers = new_account(client)
    for path in ("/v1/entries", "/v1/histogram"):
        theirs = client.get(path, params={"account_id": account}, headers=other_headers)
        ghost = client.get(path, params={"account_id": "no-such-acct"}, headers=other_headers)
        assert theirs.status_code == ghost.status_code == 403
        assert theirs.json() == ghost.json()
        no_account = client.get(path, headers=ADMIN)
        assert no_account.status_code == 400
        assert no_account.json()["error"]["field"] == "account_id"
    platform = client.get("/v1/entries", params={**WINDOW, "account_id": account}, headers=ADMIN)
    assert platform.status_code == 200 and platform.json()["total"] >= 25_000
    mine = client.get("/v1/entries", params=WINDOW, headers=other_headers).json()
    assert mine["total"] == 0


def test_scopes_and_revocation(client: TestClient) -> None:
    _, ingest_only = new_account(client, scopes=("ingest",))
    assert client.get("/v1/entries", headers=ingest_only).status_code == 403
    assert (
        client.get("/v1/entries", headers={"Authorization": "Bearer alk_nope"}).status_code == 401
    )
    assert client.get("/v1/entries").status_code == 401
    _, headers = new_account(client)
    key_id = headers["Authorization"].split("_")[1]
    assert client.get("/v1/entries", headers=headers).status_code == 200
    assert client.delete(f"/v1/admin/keys/{key_id}", headers=ADMIN).status_code == 204
    assert client.get("/v1/entries", headers=headers).status_code == 401
