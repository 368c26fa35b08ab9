"""Request bodies sent compressed: gzip is read (its limit counted on what it holds), any other
``Content-Encoding`` is a 415 naming it, a broken gzip body a 400 naming ``body``."""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import replace
from typing import Any

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.errors import ServiceError
from service.web.bodies import read_body
from tests.helpers import entry, new_account, wait_ready


def _bulk(client: TestClient, headers: dict[str, str], body: bytes, encoding: str) -> Any:
    sent = {**headers, "Content-Type": "application/x-ndjson", "Content-Encoding": encoding}
    return client.post("/v1/entries/_bulk", content=body, headers=sent)


def _error(resp: Any, status: int, field: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["field"] == field, resp.text
    return str(resp.json()["error"]["message"])


def test_a_gzip_body_is_read(client: TestClient) -> None:
    _, headers = new_account(client)
    lines = b"".join(json.dumps(entry()).encode() + b"\n" for _ in range(3))
    resp = _bulk(client, headers, gzip.compress(lines), "gzip")
    assert resp.status_code == 200 and resp.json()["created"] == 3, resp.text


def test_a_gzip_body_holding_more_than_the_limit_is_a_413(
    client: TestClient, settings: Settings
) -> None:
    _, headers = new_account(client)
    bomb = gzip.compress(b" " * (settings.max_body_bytes + 1))
    assert len(bomb) < settings.max_body_bytes // 100
    resp = _bulk(client, headers, bomb, "gzip")
    assert resp.status_code == 413, resp.text


def test_another_encoding_is_a_415_naming_it(client: TestClient) -> None:
    _, headers = new_account(client)
    message = _error(_bulk(client, headers, b"{}", "br"), 415, "Content-Encoding")
    assert "'br'" in message and "gzip" in message


def test_a_broken_gzip_body_is_a_400_naming_the_body(client: TestClient) -> None:
    _, headers = new_account(client)
    whole = gzip.compress(json.dumps(entry()).encode() + b"\n")
    assert "cut short" in _error(_bulk(client, headers, whole[:-9], "gzip"), 400, "body")
    assert "not valid gzip" in _error(_bulk(client, headers, b"plain", "gzip"), 400, "body")
    trailing = _bulk(client, headers, whole + b"trailing bytes", "gzip")
    assert "not valid gzip" in _error(trailing, 400, "body")


def test_a_gzip_body_of_several_members_is_read_whole(client: TestClient) -> None:
    """RFC 1952: a gzip file may hold members one after the other (``cat a.gz b.gz``)."""
    _, headers = new_account(client)
    members = b"".join(gzip.compress(json.dumps(entry()).encode() + b"\n") for _ in range(3))
    resp = _bulk(client, headers, members, "gzip")
    assert resp.status_code == 200 and resp.json()["created"] == 3, resp.text


def test_every_content_encoding_line_counts(client: TestClient) -> None:
    """Two header lines (``gzip`` then ``br``) are the encodings ``gzip, br``: a 415, not a body
    read as gzip alone."""
    _, headers = new_account(client)
    body = gzip.compress(json.dumps(entry()).encode() + b"\n")
    sent = [*headers.items(), ("Content-Type", "application/x-ndjson"),
            ("Content-Encoding", "gzip"), ("Content-Encoding", "br")]  # fmt: skip
    resp = client.post("/v1/entries/_bulk", content=body, headers=sent)
    _error(resp, 415, "Content-Encoding")


def test_the_limit_counts_what_a_gzip_body_holds_not_its_declared_length(
    settings: Settings,
) -> None:
    """A gzip body larger than the limit that inflates to less (stored, level 0) is taken."""
    small = replace(settings, max_body_bytes=4096)
    with TestClient(create_app(small)) as limited:
        wait_ready(limited)
        _, headers = new_account(limited)
        short = json.dumps(entry(message="")).encode() + b"\n"
        line = json.dumps(entry(message="m" * (4090 - len(short)))).encode() + b"\n"
        body = gzip.compress(line, compresslevel=0)
        assert len(line) <= 4096 < len(body)  # over the limit as sent, under it inflated
        resp = _bulk(limited, headers, body, "gzip")
        assert resp.status_code == 200 and resp.json()["created"] == 1, resp.text


def test_a_client_that_leaves_mid_body_is_a_400_not_an_error_of_the_service() -> None:
    """``read_body`` meets a disconnect while the body arrives: a client error (no traceback
    logged as the service's)."""
    messages = [{"type": "http.request", "body": b'{"a"', "more_body": True},
                {"type": "http.disconnect"}]  # fmt: skip

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/v1/entries", "headers": []}
    with pytest.raises(ServiceError) as refused:
        asyncio.run(read_body(Request(scope, receive), 1000))
    assert refused.value.status == 400 and refused.value.field == "body"
