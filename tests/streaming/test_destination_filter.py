"""A destination's search-text filter (``filter.q``): the syntax of ``q`` in searches, checked
when the destination is created or changed, applied by the engine to each batch of the feed.

Only the entries of the filter's categories and types that the search text matches are sent, in
position order; the destination's position still moves past the others; an entry the engine no
longer holds (``missing``) is sent whatever the filter."""

from __future__ import annotations

import uuid
from typing import Any

from elasticsearch import AsyncElasticsearch, Elasticsearch
from starlette.testclient import TestClient

from service.actions.destinations import filter_query
from service.config import Settings
from service.search.entry_matches import entries_matching
from service.search.indices import IndexNames
from tests.helpers import entry, new_account, with_engine
from tests.streaming.deployment import (
    SCOPES,
    create_destination,
    start_service,
    until,
)
from tests.streaming.webhook_receiver import SECRET, Receiver

Q = '"gateway timeout" type:error,warning'


def _feed(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    params = {"after": 0, "limit": 1000, "tz": "UTC"}
    return list(client.get("/v1/feed", params=params, headers=headers).json()["entries"])


def test_only_entries_the_search_text_matches_are_sent(
    deployment: Settings, receiver: Receiver, es: Elasticsearch
) -> None:
    client = start_service(deployment)
    try:
        account_id, headers = new_account(client, scopes=SCOPES)
        batch = {
            "match-1": entry(type="error", message="POST https://x.test failed: gateway timeout"),
            "text-no": entry(type="error", message="POST https://x.test: connection refused"),
            "type-no": entry(type="notice", message="gateway timeout, then it answered"),
            "category-no": entry(category="signal", type="error", action="signal.run.failed",
                                 message="gateway timeout", metadata={}),
            "match-2": entry(type="warning", action="webhook.delivery.retrying",
                             message="gateway timeout; retrying in 30 s"),
            "gone": entry(type="notice", message="connection refused"),
        }  # fmt: skip
        ids = {label: f"{label}-{uuid.uuid4().hex[:8]}" for label in batch}
        sent = [{**one, "id": ids[label]} for label, one in batch.items()]
        answer = client.post("/v1/entries", json={"entries": sent}, headers=headers).json()
        assert answer["created"] == len(sent), answer
        until(lambda: set(ids.values()) <= {e["id"] for e in _feed(client, headers)}, "sealed")
        positions = {e["id"]: e["position"] for e in _feed(client, headers)}
        # deleted behind the service's back: the feed serves it as missing, and it is sent
        gone = batch["gone"]
        index = IndexNames(deployment.index_prefix).entry_index_for_stamp(
            "webhook", gone["timestamp"]
        )
        es.delete(index=index, id=f"{account_id}/{ids['gone']}", refresh=True)
        wanted = {"categories": ["webhook"], "q": Q}
        created = create_destination(client, headers, kind="webhook", url=receiver.url, start=0,
                                     secrets={"secret": SECRET}, filter=wanted)  # fmt: skip
        assert created["filter"] == wanted
        url = f"/v1/destinations/{created['id']}"
        last = max(positions[i] for i in ids.values())
        until(lambda: client.get(url, headers=headers).json()["position"] >= last, "past them")
        got = [e["entry"] for e in receiver.events()]
        expected = sorted((ids["match-1"], ids["match-2"], ids["gone"]), key=positions.get)
        assert [e["id"] for e in got] == expected  # in position order, nothing else
        assert [e.get("missing", False) for e in got] == [i == ids["gone"] for i in expected]
        assert client.get(url, headers=headers).json()["health"]["delivered"] == 3
    finally:
        client.__exit__(None, None, None)


def test_a_bad_search_text_is_a_400_naming_filter_q(deployment: Settings) -> None:
    client = start_service(deployment)
    try:
        _, headers = new_account(client, scopes=SCOPES)
        body = {"name": "x", "kind": "webhook", "url": "https://hooks.example.com/x",
                "secrets": {"secret": "s"}}  # fmt: skip
        bad = ["colour:red", "after:2026-13-01", "id:not/an/id", "x" * 1001, 42, ["timeout"]]
        for q in bad:
            resp = client.post("/v1/destinations", json={**body, "filter": {"q": q}},
                               headers=headers)  # fmt: skip
            assert resp.status_code == 400, (q, resp.text)
            assert resp.json()["error"]["field"] == "filter.q", (q, resp.text)
        created = client.post("/v1/destinations", json={**body, "filter": {"q": " timeout "}},
                              headers=headers)  # fmt: skip
        assert created.status_code == 201 and created.json()["filter"] == {"q": "timeout"}
        url = f"/v1/destinations/{created.json()['id']}"
        changed = client.patch(url, json={"filter": {"q": "nope:1"}}, headers=headers)
        assert changed.status_code == 400 and changed.json()["error"]["field"] == "filter.q"
        changed = client.patch(url, json={"filter": {"q": Q, "types": ["error"]}},
                               headers=headers)  # fmt: skip
        assert changed.status_code == 200
        assert changed.json()["filter"] == {"q": Q, "types": ["error"]}
    finally:
        client.__exit__(None, None, None)


def test_dates_in_the_search_text_are_utc_days() -> None:
    query = filter_query("after:2026-11-01 before:2026-11-08")
    ranges = [c["range"]["timestamp"] for c in query["bool"]["filter"]]
    assert ranges == [{"gte": "2026-11-01T00:00:00.000Z"}, {"lt": "2026-11-08T00:00:00.000Z"}]


def test_entries_not_yet_searchable_are_found_after_a_refresh(
    deployment: Settings, es: Elasticsearch
) -> None:
    """The feed reads entries in real time; the engine's search sees them only once their index
    is refreshed: one it does not see yet is neither dropped nor guessed at."""
    client = start_service(deployment)
    try:
        account_id, headers = new_account(client, scopes=SCOPES)
        first = entry(message="gateway timeout")
        assert client.post("/v1/entries", json=first, headers=headers).json()["created"] == 1
        index = f"{deployment.index_prefix}-webhook-*"
        es.indices.put_settings(index=index, settings={"refresh_interval": "-1"})
        es.indices.refresh(index=index)
        late = [entry(message="gateway timeout again"), entry(message="connection refused")]
        assert client.post("/v1/entries", json={"entries": late}, headers=headers).json()[
            "created"] == 2  # fmt: skip
        names = IndexNames(deployment.index_prefix)
        unseen = es.search(index=names.entries_alias, query={"ids": {"values": [
            f"{account_id}/{e['id']}" for e in late]}})  # fmt: skip
        assert unseen["hits"]["total"]["value"] == 0  # not searchable yet

        async def matching(engine: AsyncElasticsearch) -> set[str]:
            return await entries_matching(engine, names, account_id=account_id,
                                          entries=[first, *late],
                                          query=filter_query('"gateway timeout"'))  # fmt: skip

        assert with_engine(deployment, matching) == {first["id"], late[0]["id"]}
    finally:
        client.__exit__(None, None, None)


def test_an_entry_the_search_cannot_find_is_sent_rather_than_stalled_at(
    deployment: Settings, es: Elasticsearch
) -> None:
    """The feed reads an entry by its id; a search that cannot find it (its ``account_id``
    changed behind the service's back) must not stop the destination there for good."""
    client = start_service(deployment)
    try:
        account_id, headers = new_account(client, scopes=SCOPES)
        kept, changed = entry(message="connection refused"), entry(message="connection refused")
        sent = client.post("/v1/entries", json={"entries": [kept, changed]}, headers=headers)
        assert sent.json()["created"] == 2
        names = IndexNames(deployment.index_prefix)
        index = names.entry_index_for_stamp("webhook", changed["timestamp"])
        es.update(index=index, id=f"{account_id}/{changed['id']}", doc={"account_id": "other"},
                  refresh=True)  # fmt: skip

        async def matching(engine: AsyncElasticsearch) -> set[str]:
            return await entries_matching(engine, names, account_id=account_id,
                                          entries=[kept, changed],
                                          query=filter_query('"gateway timeout"'))  # fmt: skip

        assert with_engine(deployment, matching) == {changed["id"]}  # sent unfiltered
    finally:
        client.__exit__(None, None, None)
