"""Request bodies sent compressed: gzip is read (its limit counted on what it holds), any other
``Content-Encoding`` is a 415 naming it, a broken gzip body a 400 naming ``body``."""

from __future__ import annotations

import gzip
import json
from typing import Any

from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import entry, new_account


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
