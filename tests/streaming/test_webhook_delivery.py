"""Destinations end to end with an HTTPS-webhook kind: managed through the API, delivered by the
service to a local receiver that checks the signature, in position order, at least once, across
failures, a refusal and a restart; secrets never stored or shown in clear; no SSRF."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import ADMIN, delete_prefixed, new_account
from tests.streaming.deployment import (
    SCOPES,
    ingest_some,
    start_service,
    streaming_settings,
    until,
)
from tests.streaming.webhook_receiver import SECRET, Receiver


def _create(client: TestClient, headers: dict[str, str], url: str, **more: Any) -> dict[str, Any]:
    body = {"name": "SIEM", "kind": "webhook", "url": url, "secrets": {"secret": SECRET}, **more}
    resp = client.post("/v1/destinations", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_entries_and_checkpoints_reach_the_webhook_in_order_signed(
    deployment: Settings, receiver: Receiver, es: Elasticsearch
) -> None:
    client = start_service(deployment)
    try:
        _, headers = new_account(client, scopes=SCOPES)
        created = _create(client, headers, receiver.url, start=0)
        assert "secrets" not in created and created["secrets_set"] == ["secret"]
        ids = ingest_some(client, headers, 30)
        until(lambda: len({e["entry"]["id"] for e in receiver.events()}) >= 32, "delivery")
        positions = [e["position"] for e in receiver.events()]
        assert positions == sorted(positions) and positions[0] == 1  # in order, from the start
        assert {e["entry"]["id"] for e in receiver.events()} >= set(ids)
        until(lambda: receiver.events("checkpoint"), "anchoring")
        anchor = receiver.events("checkpoint")[-1]["checkpoint"]
        assert anchor["signature"] and anchor["tree_size"] >= 32  # a signed head, kept by them
        assert receiver.bad_signatures == 0
        url = f"/v1/destinations/{created['id']}"
        until(lambda: client.get(url, headers=headers).json()["health"]["delivered"] >= 32,
               "the delivery recorded")  # fmt: skip
        shown = client.get(url, headers=headers).json()
        assert shown["status"] == "active" and shown["health"]["last_success_at"]
        assert "secrets" not in shown
        # the secret is nowhere in the engine in clear, nor in the audit entries
        es.indices.refresh(index=f"{deployment.index_prefix}-*")
        hits = es.search(index=f"{deployment.index_prefix}-*", q=f'"{SECRET}"', size=1)
        assert hits["hits"]["total"]["value"] == 0
        raw = es.get(index=f"{deployment.index_prefix}-destinations", id=created["id"])
        assert SECRET not in str(raw["_source"])
        audit = client.get("/v1/entries", params={"q": "action:destination.created"},
                           headers=headers).json()  # fmt: skip
        assert audit["total"] == 1 and SECRET not in str(audit)
    finally:
        client.__exit__(None, None, None)


def test_a_filter_a_failing_receiver_and_a_restart_lose_nothing(
    deployment: Settings, receiver: Receiver
) -> None:
    client = start_service(deployment)
    _, headers = new_account(client, scopes=SCOPES)
    wanted = {"categories": ["webhook"], "types": ["error"]}
    created = _create(client, headers, receiver.url, filter=wanted)  # from now on
    receiver.answer = 503  # down for a while: retried with backoff
    first = ingest_some(client, headers, 10, type="error")
    ingest_some(client, headers, 5, type="notice")  # filtered out
    until(lambda: client.get(f"/v1/destinations/{created['id']}", headers=headers)
           .json()["health"].get("failed"), "a failure recorded")  # fmt: skip
    failing = client.get(f"/v1/destinations/{created['id']}", headers=headers).json()
    assert failing["status"] == "failing" and "503" in failing["health"]["last_error"]
    client.__exit__(None, None, None)  # the service stops while the receiver is down
    receiver.answer = 200
    again = start_service(deployment)  # another instance resumes from the stored position
    try:
        second = ingest_some(again, headers, 10, type="error")
        until(lambda: {e["entry"]["id"] for e in receiver.events()} >= {*first, *second},
               "every entry after the restart")  # fmt: skip
        got = receiver.events()
        assert all(e["entry"]["type"] == "error" and e["entry"]["category"] == "webhook"
                   for e in got)  # fmt: skip
        assert [e["position"] for e in got] == sorted(e["position"] for e in got)
    finally:
        again.__exit__(None, None, None)


def test_a_refusing_receiver_pauses_the_destination_saying_why(
    deployment: Settings, receiver: Receiver
) -> None:
    client = start_service(deployment)
    try:
        _, headers = new_account(client, scopes=SCOPES)
        created = _create(client, headers, receiver.url, start=0)
        receiver.answer = 401
        ingest_some(client, headers, 3)
        url = f"/v1/destinations/{created['id']}"
        until(lambda: client.get(url, headers=headers).json()["status"] == "paused", "a pause")
        paused = client.get(url, headers=headers).json()
        assert "401" in paused["status_reason"]
        paused_q = {"q": "action:destination.paused"}
        until(lambda: client.get("/v1/entries", params=paused_q, headers=headers)
               .json()["total"] == 1, "its audit entry")  # fmt: skip
        receiver.answer = 200  # fixed: resumed by a person, from where it stopped
        resumed = client.patch(url, json={"status": "active"}, headers=headers)
        assert resumed.status_code == 200 and resumed.json()["status"] == "active"
        until(lambda: len(receiver.events()) >= 5, "delivery after resuming")
        # a rotation: both secrets sign while the receiver moves to the new one
        client.patch(url, json={"secrets": {"secret": "new-secret", "previous_secret": SECRET}},
                     headers=headers)  # fmt: skip
        seen = len(receiver.signatures)
        ingest_some(client, headers, 1)
        until(lambda: len(receiver.signatures) > seen and receiver.batches, "a signed batch")
        assert len(receiver.signatures[-1].split(",")) == 2
    finally:
        client.__exit__(None, None, None)


def test_destinations_refuse_local_addresses_unless_allowed(
    engine_url: str, es: Elasticsearch, receiver: Receiver
) -> None:
    prefix = f"s{uuid.uuid4().hex[:8]}"
    client = start_service(streaming_settings(engine_url, prefix, allow=""))
    try:
        _, headers = new_account(client, scopes=SCOPES)
        created = _create(client, headers, receiver.url, start=0)
        url = f"/v1/destinations/{created['id']}"
        until(lambda: client.get(url, headers=headers).json()["status"] == "paused", "refused")
        assert "loopback" in client.get(url, headers=headers).json()["status_reason"]
        assert receiver.batches == []
        engine = _create(client, headers, f"{engine_url}/_bulk", start=0)
        until(lambda: client.get(f"/v1/destinations/{engine['id']}", headers=headers)
               .json()["status"] == "paused", "the engine refused")  # fmt: skip
    finally:
        client.__exit__(None, None, None)
        delete_prefixed(es, prefix)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"kind": "ftp"}, "kind"), ({"url": "ftp://x.test/"}, "url"),
     ({"url": "https://u:p@x.test/"}, "url"), ({"secrets": {}}, "secrets"),
     ({"secrets": {"token": "x"}}, "secrets"), ({"settings": {"index": "x"}}, "settings"),
     ({"filter": {"categories": ["nope"]}}, "filter"), ({"start": -1}, "start"),
     ({"start": 10**9}, "start"), ({"format": "cef"}, "format"), ({"colour": 1}, "colour"),
     ({"name": ""}, "name"),
     ({"kind": "syslog", "url": "tcp://logs.example.com:6514", "settings": {"facility": 99}},
      "settings"),
     ({"kind": "syslog", "url": "tcp://logs.example.com"}, "url"),
     ({"kind": "elasticsearch", "url": "https://es.example.com", "secrets": {}}, "settings"),
     ({"kind": "splunk_hec", "secrets": {"token": "t"}, "settings": {"timeout_s": "abc"}},
      "settings"),
     ({"kind": "splunk_hec", "secrets": {"token": "t"}, "settings": {"ack_timeout_s": 10**9}},
      "settings"),
     ({"kind": "splunk_hec", "secrets": {"token": "t"}, "settings": {"ca_pem": "not pem"}},
      "settings"),
     ({"url": "https://a..b/x"}, "url")],
)  # fmt: skip
def test_bad_destinations_are_400_naming_the_field(
    deployment: Settings, body: dict[str, Any], field: str
) -> None:
    client = start_service(deployment)
    try:
        _, headers = new_account(client, scopes=SCOPES)
        full = {"name": "x", "kind": "webhook", "url": "https://hooks.example.com/x",
                "secrets": {"secret": "s"}, **body}  # fmt: skip
        resp = client.post("/v1/destinations", json=full, headers=headers)
        assert resp.status_code == 400 and resp.json()["error"]["field"] == field, resp.text
    finally:
        client.__exit__(None, None, None)


def test_only_the_destinations_scope_manages_them(deployment: Settings) -> None:
    client = start_service(deployment)
    try:
        account_id, reader = new_account(client, scopes=("read",))
        assert client.get("/v1/destinations", headers=reader).status_code == 403
        body = {"account_id": account_id, "name": "x", "kind": "webhook",
                "url": "https://hooks.example.com/x", "secrets": {"secret": "s"}}  # fmt: skip
        assert client.post("/v1/destinations", json=body, headers=ADMIN).status_code == 201
        _, other = new_account(client, scopes=SCOPES)
        listed = client.get("/v1/destinations", params={"account_id": account_id}, headers=ADMIN)
        assert len(listed.json()["destinations"]) == 1
        one = listed.json()["destinations"][0]["id"]
        assert client.get(f"/v1/destinations/{one}", headers=other).status_code == 404
        assert client.delete(f"/v1/destinations/{one}", headers=other).status_code == 404
        assert client.delete(f"/v1/destinations/{one}", params={"account_id": account_id},
                             headers=ADMIN).status_code == 204  # fmt: skip
    finally:
        client.__exit__(None, None, None)


def test_a_pause_made_during_a_delivery_is_kept(deployment: Settings, receiver: Receiver) -> None:
    """A person pauses the destination while a batch is on its way: the delivery that ends
    afterwards does not set it active again (nor move its position over the person's)."""
    client = start_service(deployment)
    try:
        _, headers = new_account(client, scopes=SCOPES)
        receiver.held = threading.Event()
        created = _create(client, headers, receiver.url, start=0)
        url = f"/v1/destinations/{created['id']}"
        ingest_some(client, headers, 3)
        until(receiver.holding.is_set, "a batch on its way")
        paused = client.patch(url, json={"status": "paused"}, headers=headers)
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        receiver.held.set()  # the batch is acknowledged now
        until(lambda: receiver.batches, "the batch acknowledged")
        time.sleep(1.0)  # a round would have written by now
        after = client.get(url, headers=headers).json()
        assert after["status"] == "paused" and after["position"] == 0
    finally:
        if receiver.held is not None:
            receiver.held.set()
        client.__exit__(None, None, None)


def test_the_services_own_engine_is_never_a_destination(
    deployment: Settings, engine_url: str
) -> None:
    """Even where local addresses are allowed (the receivers of these tests are)."""
    client = start_service(deployment)
    try:
        _, headers = new_account(client, scopes=SCOPES)
        engine = _create(client, headers, f"{engine_url}/_bulk", start=0)
        url = f"/v1/destinations/{engine['id']}"
        until(lambda: client.get(url, headers=headers).json()["status"] == "paused", "refused")
        assert "own engine" in client.get(url, headers=headers).json()["status_reason"]
        far = client.patch(url, json={"position": 10**6}, headers=headers)
        assert far.status_code == 400 and far.json()["error"]["field"] == "position"
    finally:
        client.__exit__(None, None, None)


def test_after_the_secrets_key_changes_the_secrets_are_given_again(
    deployment: Settings, receiver: Receiver
) -> None:
    from dataclasses import replace

    client = start_service(deployment)
    _, headers = new_account(client, scopes=SCOPES)
    created = _create(client, headers, receiver.url)
    client.__exit__(None, None, None)
    rekeyed = start_service(replace(deployment, destination_key=streaming_settings(
        "http://unused", "x").destination_key))  # fmt: skip
    try:
        url = f"/v1/destinations/{created['id']}"
        ingest_some(rekeyed, headers, 2)
        until(lambda: rekeyed.get(url, headers=headers).json()["status"] == "paused",
              "paused: its secrets do not open")  # fmt: skip
        assert "give the destination's secrets again" in (
            rekeyed.get(url, headers=headers).json()["status_reason"])  # fmt: skip
        partial = rekeyed.patch(url, json={"secrets": {"previous_secret": "p"}}, headers=headers)
        assert partial.status_code == 400 and partial.json()["error"]["field"] == "secrets"
        again = rekeyed.patch(url, json={"secrets": {"secret": SECRET}}, headers=headers)
        assert again.status_code == 200, again.text
        assert rekeyed.patch(url, json={"status": "active"}, headers=headers).status_code == 200
        until(lambda: len(receiver.events()) >= 2, "delivered with the secrets given again")
    finally:
        rekeyed.__exit__(None, None, None)


def test_following_the_log_makes_the_engine_refresh_no_destination(
    deployment: Settings, receiver: Receiver, es: Elasticsearch
) -> None:
    """A delivery stores its position every round without a refresh and reads it back without
    forcing one (the index shows a person's change at once: those writes refresh it), so
    delivering round after round refreshes the destinations' index at most on its 30 s
    schedule."""
    client = start_service(deployment)
    try:
        _, headers = new_account(client, scopes=SCOPES)
        _create(client, headers, receiver.url, start=0)
        index = f"{deployment.index_prefix}-destinations"

        def refreshes() -> int:
            stats = es.indices.stats(index=index, metric="refresh")
            return int(stats["indices"][index]["total"]["refresh"]["total"])

        def delivered() -> set[str]:
            return {e["entry"]["id"] for e in receiver.events()}

        until(lambda: len(delivered()) >= 2, "the destination's own audit entries")
        before, started = refreshes(), time.monotonic()
        for _ in range(4):  # a round each: sealed, delivered, the position stored
            wanted = set(ingest_some(client, headers, 5))
            until(lambda: delivered() >= wanted, "delivery")  # noqa: B023 (called right here)
        scheduled = 1 + int((time.monotonic() - started) // 30)  # a slow machine: more than 30 s
        assert refreshes() - before <= scheduled
        last = max(e["position"] for e in receiver.events())

        def listed() -> int:  # a listing shows the positions as written
            return int(client.get("/v1/destinations", headers=headers).json()
                       ["destinations"][0]["position"])  # fmt: skip

        until(lambda: listed() == last, "the listing")
    finally:
        client.__exit__(None, None, None)
