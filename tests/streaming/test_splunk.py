"""The Splunk HEC sender against a local receiver that checks HEC's documented request format.

The receiver is a small Starlette app served by uvicorn in a thread. It answers as HEC does
(``{"text", "code"}`` bodies, ``ackId`` with indexer acknowledgment, ``/ack`` answering an id
``false`` first and ``true`` when asked again) and refuses anything off the format: the path, the
``Authorization: Splunk <token>`` header, a body of JSON objects one after another (read with
``raw_decode`` in a loop, not a JSON array), the envelope's keys, ``time`` with three decimals.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.streaming.guard import AddressGuard
from service.streaming.senders.base import DeliveryError, Target
from service.streaming.senders.splunk import SplunkHecSender

TOKEN = "0c6b5a2e-6f1d-4e4b-9a57-0a3c1b2d3e4f"
LOOPBACK = AddressGuard(allowed=(ip_network("127.0.0.0/8"), ip_network("::1/128")))
ENVELOPE_KEYS = {"time", "host", "source", "sourcetype", "index", "event", "fields"}
REQUIRED_KEYS = {"time", "host", "source", "sourcetype", "event"}
TIME_TEXT = re.compile(r'"time"\s*:\s*-?\d+\.\d{3}\s*[,}]')


@dataclass
class Hec:
    """What the receiver was sent, and how it is to answer."""

    ack: bool = False
    ack_never: bool = False
    forced: tuple[int, dict[str, Any], dict[str, str]] | None = None
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    event_posts: list[dict[str, str]] = field(default_factory=list)
    ack_queries: list[tuple[dict[str, str], str | None, list[int]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    redirected_to: int = 0
    next_ack: dict[str, int] = field(default_factory=dict)
    asked: dict[tuple[str, int], int] = field(default_factory=dict)

    def reset(self) -> None:
        self.__dict__.update(Hec().__dict__)


def parse_envelopes(text: str) -> list[dict[str, Any]]:
    """HEC's JSON objects one after another; :class:`ValueError` saying what is off format."""
    decoder, at, found = json.JSONDecoder(), 0, []
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            break
        envelope, end = decoder.raw_decode(text, at)
        if not isinstance(envelope, dict):
            raise ValueError(f"not a JSON object at {at}")
        if missing := REQUIRED_KEYS - envelope.keys():
            raise ValueError(f"missing {sorted(missing)}")
        if extra := envelope.keys() - ENVELOPE_KEYS:
            raise ValueError(f"unknown keys {sorted(extra)}")
        if not isinstance(envelope["time"], float) or not TIME_TEXT.search(text[at:end]):
            raise ValueError("time is not epoch seconds with three decimals")
        if not isinstance(envelope["event"], dict):
            raise ValueError("event is not an object")
        texts = [envelope[k] for k in ("host", "source", "sourcetype")]
        if not all(isinstance(t, str) and t for t in texts):
            raise ValueError("host, source and sourcetype must be non-empty strings")
        found.append(envelope)
        at = end
    if not found:
        raise ValueError("No data")
    return found


def _auth_refusal(request: Request) -> Response | None:
    said = request.headers.get("authorization")
    if said is None:
        return JSONResponse({"text": "Token is required", "code": 2}, status_code=401)
    if said != f"Splunk {TOKEN}":
        return JSONResponse({"text": "Invalid token", "code": 4}, status_code=403)
    return None


def _channel(request: Request) -> str | None:
    channel = request.headers.get("x-splunk-request-channel")
    try:
        return str(uuid.UUID(channel)) if channel else None
    except ValueError:
        return None


def receiver(hec: Hec) -> Starlette:
    async def event(request: Request) -> Response:
        hec.event_posts.append(dict(request.headers))
        if hec.forced is not None:
            status, body, headers = hec.forced
            return JSONResponse(body, status_code=status, headers=headers)
        if (refused := _auth_refusal(request)) is not None:
            return refused
        try:
            envelopes = parse_envelopes((await request.body()).decode())
        except ValueError as e:
            hec.problems.append(str(e))
            return JSONResponse({"text": "Invalid data format", "code": 6}, status_code=400)
        hec.envelopes += envelopes
        if not hec.ack:
            return JSONResponse({"text": "Success", "code": 0})
        channel = _channel(request)
        if channel is None:
            hec.problems.append("no channel")
            return JSONResponse({"text": "Data channel is missing", "code": 10}, status_code=400)
        ack_id = hec.next_ack.get(channel, 0)
        hec.next_ack[channel] = ack_id + 1
        hec.asked[(channel, ack_id)] = 0
        return JSONResponse({"text": "Success", "code": 0, "ackId": ack_id})

    async def ack(request: Request) -> Response:
        if (refused := _auth_refusal(request)) is not None:
            return refused
        channel, named = _channel(request), request.query_params.get("channel")
        acks = json.loads(await request.body())["acks"]
        hec.ack_queries.append((dict(request.headers), named, acks))
        if channel is None or named != channel:
            hec.problems.append("ack query without its channel")
            return JSONResponse({"text": "Invalid data channel", "code": 11}, status_code=400)
        answers = {}
        for ack_id in acks:
            key = (channel, ack_id)
            if key in hec.asked:
                hec.asked[key] += 1
            answers[str(ack_id)] = not hec.ack_never and hec.asked.get(key, 0) >= 2
        return JSONResponse({"acks": answers})

    async def elsewhere(request: Request) -> Response:
        hec.redirected_to += 1
        return JSONResponse({"text": "Success", "code": 0})

    async def health(request: Request) -> Response:
        return JSONResponse({"text": "HEC is healthy", "code": 17})

    return Starlette(
        routes=[
            Route("/services/collector/event", event, methods=["POST"]),
            Route("/services/collector/ack", ack, methods=["POST"]),
            Route("/services/collector/health", health),
            Route("/elsewhere", elsewhere, methods=["GET", "POST"]),
        ]
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Hec]]:
    hec = Hec()
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(receiver(hec), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="hec-receiver", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/services/collector/health", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline or not thread.is_alive():
                raise AssertionError("the HEC receiver did not start") from None
            time.sleep(0.1)
    yield url, hec
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def hec(served: tuple[str, Hec]) -> Hec:
    """The receiver, its records cleared and its answers back to normal."""
    state = served[1]
    state.reset()
    return state


@pytest.fixture
def url(served: tuple[str, Hec]) -> str:
    return served[0]


def entry_event(position: int, entry_id: str, timestamp: str) -> dict[str, Any]:
    return {
        "event_type": "entry",
        "position": position,
        "entry": {
            "id": entry_id,
            "account_id": "acme",
            "timestamp": timestamp,
            "category": "audit",
            "type": "notice",
            "actor": {"type": "user", "id": "u_42", "name": "Jane Doe"},
            "action": "settings.signal.updated",
            "message": f"Entry {entry_id}",
            "metadata": {"target_type": "signal", "time": "not the envelope's"},
        },
    }


CHECKPOINT = {
    "event_type": "checkpoint",
    "checkpoint": {
        "account_id": "acme",
        "seq": 3,
        "tree_size": 3,
        "sealed_at": "2026-11-26T10:16:00.500Z",
        "root": "ab" * 32,
        "signature": "c2ln",
    },
}
EVENTS = [
    entry_event(1, "e-1", "2026-11-26T10:15:00.123Z"),
    entry_event(2, "e-2", "2026-11-26T10:15:01.120Z"),
    entry_event(3, "e-3", "2026-11-26T10:15:02Z"),
    CHECKPOINT,
]
EXPECTED_TIMES = [1795688100.123, 1795688101.12, 1795688102.0, 1795688160.5]


def target(url: str, token: str = TOKEN, **settings: Any) -> Target:
    return Target(kind="splunk_hec", url=url, settings=settings, secrets={"token": token})


def deliver(
    to: Target, events: list[dict[str, Any]], guard: AddressGuard = LOOPBACK
) -> SplunkHecSender:
    sender = SplunkHecSender(to, guard, host_name="auditlog.example.com")

    async def run() -> None:
        try:
            await sender.send(events)
        finally:
            await sender.close()

    asyncio.run(run())
    return sender


def refusal(to: Target, events: list[dict[str, Any]], guard: AddressGuard = LOOPBACK) -> Any:
    with pytest.raises(DeliveryError) as caught:
        deliver(to, events, guard)
    return caught.value


def test_a_batch_is_one_post_of_envelopes_one_after_another(url: str, hec: Hec) -> None:
    deliver(target(url), EVENTS)
    assert hec.problems == []
    assert len(hec.event_posts) == 1
    assert hec.event_posts[0]["authorization"] == f"Splunk {TOKEN}"
    assert [e["event"] for e in hec.envelopes] == EVENTS
    assert [e["time"] for e in hec.envelopes] == EXPECTED_TIMES
    assert {e["host"] for e in hec.envelopes} == {"auditlog.example.com"}
    assert {e["source"] for e in hec.envelopes} == {"auditlog"}
    assert [e["sourcetype"] for e in hec.envelopes] == ["auditlog:entry"] * 3 + [
        "auditlog:checkpoint"
    ]
    assert all("index" not in e for e in hec.envelopes)


def test_settings_name_the_host_source_sourcetype_and_index(url: str, hec: Hec) -> None:
    custom = {
        "host": "acme-prod",
        "source": "saas-audit",
        "sourcetype": "acme:audit",
        "index": "security",
    }
    deliver(target(url + "/", **custom), EVENTS[:1])
    assert hec.problems == []
    (envelope,) = hec.envelopes
    assert {k: envelope[k] for k in custom} == custom


def test_indexer_acknowledgment_waits_until_the_batch_is_indexed(url: str, hec: Hec) -> None:
    hec.ack = True
    sender = deliver(target(url, ack=True), EVENTS)
    assert hec.problems == []
    assert hec.event_posts[0]["x-splunk-request-channel"] == sender.channel
    assert [q[2] for q in hec.ack_queries] == [[0], [0]]  # false, then true
    for headers, channel, _ in hec.ack_queries:
        assert channel == sender.channel
        assert headers["x-splunk-request-channel"] == sender.channel
        assert headers["authorization"] == f"Splunk {TOKEN}"
    assert len(hec.envelopes) == len(EVENTS)


def test_an_ack_that_never_comes_is_retried(url: str, hec: Hec) -> None:
    hec.ack, hec.ack_never = True, True
    error = refusal(target(url, ack=True, ack_timeout_s=0.5), EVENTS)
    assert error.retry is True
    assert "ackId 0" in error.message
    assert len(hec.ack_queries) >= 2


def test_ack_asked_of_a_token_without_it_is_not_retried(url: str, hec: Hec) -> None:
    error = refusal(target(url, ack=True), EVENTS)  # the receiver gives no ackId
    assert error.retry is False
    assert "indexer acknowledgment" in error.message


def test_a_missing_token_is_not_retried(url: str, hec: Hec) -> None:
    hec.forced = (401, {"text": "Token is required", "code": 2}, {})
    error = refusal(target(url), EVENTS)
    assert error.retry is False
    assert "HTTP 401" in error.message
    assert "Token is required (code 2)" in error.message


def test_a_wrong_token_is_not_retried_and_not_told(url: str, hec: Hec) -> None:
    error = refusal(target(url, token="wrong-token-123"), EVENTS)
    assert error.retry is False
    assert "Invalid token (code 4)" in error.message
    assert "wrong-token-123" not in error.message


def test_invalid_data_is_not_retried_and_splunk_says_why(url: str, hec: Hec) -> None:
    hec.forced = (400, {"text": "Incorrect index", "code": 7, "invalid-event-number": 0}, {})
    error = refusal(target(url, index="nope"), EVENTS)
    assert error.retry is False
    assert "Incorrect index (code 7)" in error.message


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_busy_or_failing_collector_is_retried(url: str, hec: Hec, status: int) -> None:
    hec.forced = (status, {"text": "Server is busy", "code": 9}, {})
    error = refusal(target(url), EVENTS)
    assert error.retry is True
    assert f"HTTP {status}" in error.message


def test_an_unreachable_collector_is_retried(hec: Hec) -> None:
    error = refusal(target(f"http://127.0.0.1:{_free_port()}"), EVENTS)
    assert error.retry is True
    assert "could not be reached" in error.message


def test_redirects_are_not_followed(url: str, hec: Hec) -> None:
    hec.forced = (307, {}, {"Location": f"{url}/elsewhere"})
    error = refusal(target(url), EVENTS)
    assert error.retry is False
    assert "HTTP 307" in error.message
    assert hec.redirected_to == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_guard_refuses_loopback_unless_allowed(url: str, hec: Hec, host: str) -> None:
    port = url.rsplit(":", 1)[1]
    error = refusal(target(f"http://{host}:{port}"), EVENTS, guard=AddressGuard())
    assert error.retry is False
    assert "loopback" in error.message
    assert hec.event_posts == []


def test_the_service_streams_an_account_to_the_collector(
    url: str, hec: Hec, engine_url: str, es: Any
) -> None:
    """End to end: a Splunk destination created through the API, with indexer acknowledgement;
    every entry reaches the collector once acknowledged, then the checkpoint."""
    from tests.streaming.deployment import (
        create_destination,
        ingest_some,
        streaming_account,
        until,
    )

    hec.ack = True
    with streaming_account(engine_url, es) as (client, headers, _):
        create_destination(client, headers, kind="splunk_hec", url=url, start=0,
                           secrets={"token": TOKEN}, settings={"ack": True})  # fmt: skip
        ids = ingest_some(client, headers, 12)

        def ids_seen() -> set[str]:
            return {e["event"]["entry"]["id"] for e in hec.envelopes
                    if e["event"].get("event_type") == "entry"}  # fmt: skip

        until(lambda: set(ids) <= ids_seen(), "every entry at the collector")
        until(lambda: any(e["sourcetype"] == "auditlog:checkpoint" for e in hec.envelopes),
              "the checkpoint")  # fmt: skip
        assert hec.problems == [] and hec.ack_queries
