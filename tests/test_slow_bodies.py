"""A client that stops sending its body, or trickles it forever, is cut off with 408 and its
in-flight slot is freed (a real server on a socket: the test client cannot send half a body)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import entry, new_account
from tests.live import live_server

IDLE_S, TOTAL_S, SLOTS = 1.0, 3.0, 2


@pytest.fixture(scope="module")
def slow_target(settings: Settings, client: TestClient) -> Iterator[tuple[str, str]]:
    """A server with short body timeouts and two in-flight slots, and an ingest key."""
    _, headers = new_account(client)
    strict = replace(settings, body_idle_timeout_s=IDLE_S, body_timeout_s=TOTAL_S,
                     max_inflight=SLOTS)  # fmt: skip
    with live_server(strict) as url:
        yield url, headers["Authorization"]


def _open(url: str, authorization: str, framing: str) -> socket.socket:
    """A request whose headers are sent whole and whose body is not."""
    parts = urlsplit(url)
    conn = socket.create_connection((parts.hostname, parts.port), timeout=TOTAL_S + 10)
    head = (f"POST /v1/entries HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: "
            f"{authorization}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n")  # fmt: skip
    conn.sendall(head.encode())
    return conn


def _answer(conn: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    text = body.decode()
    if "chunked" in head.decode().lower():  # one chunk of JSON
        text = text.split("\r\n", 1)[1].rsplit("\r\n0", 1)[0]
    return status, json.loads(text)


def _post(url: str, authorization: str) -> int:
    request = urllib.request.Request(
        f"{url}/v1/entries", data=json.dumps(entry()).encode(), method="POST",
        headers={"Authorization": authorization, "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_stalled_and_trickling_bodies_get_408_and_free_their_slots(
    slow_target: tuple[str, str],
) -> None:
    url, authorization = slow_target
    started = time.monotonic()  # before the server can start any clock of its own
    stalled = _open(url, authorization, "Content-Length: 1000")
    stalled.sendall(b'{"id": "stal')
    trickling = _open(url, authorization, "Transfer-Encoding: chunked")
    done = threading.Event()

    def trickle() -> None:  # a byte every 0.3 s: never idle, never whole
        while not done.wait(0.3):
            try:
                trickling.sendall(b"1\r\n \r\n")
            except OSError:
                return

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        time.sleep(0.3)
        assert _post(url, authorization) == 429  # both slots are held

        status, body = _answer(stalled)
        assert status == 408 and body["error"]["field"] == "body"  # type: ignore[index]
        assert IDLE_S <= time.monotonic() - started < TOTAL_S
        status, body = _answer(trickling)
        assert status == 408 and body["error"]["code"] == "request_timeout"  # type: ignore[index]
        assert time.monotonic() - started >= TOTAL_S
    finally:
        done.set()
        stalled.close()
        trickling.close()

    assert _post(url, authorization) == 200  # the slots are free again
