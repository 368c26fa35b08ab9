"""A service deployment of a test's own that streams (a destination key, local receivers
allowed), and the small waits its tests share."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.helpers import delete_prefixed, entry, make_settings, new_account, wait_ready

SCOPES = ("ingest", "read", "destinations")


def streaming_settings(engine_url: str, prefix: str, allow: str = "127.0.0.0/8") -> Settings:
    key = base64.b64encode(os.urandom(32)).decode()
    return make_settings(engine_url, prefix, destination_key=key, destination_allow=allow,
                         delivery_interval_s=0.2, destination_pause_after_s=3600.0)  # fmt: skip


def start_service(settings: Settings) -> TestClient:
    """A running instance (leave it with ``client.__exit__(None, None, None)``)."""
    client = TestClient(create_app(settings))
    client.__enter__()
    wait_ready(client)
    return client


def until(check: Callable[[], Any], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def ingest_some(client: TestClient, headers: dict[str, str], n: int, **fields: Any) -> list[str]:
    batch = [entry(id=f"e{i}-{uuid.uuid4().hex[:6]}", **fields) for i in range(n)]
    assert client.post("/v1/entries", json={"entries": batch}, headers=headers).json()["created"]
    return [str(e["id"]) for e in batch]


def create_destination(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = client.post("/v1/destinations", json={"name": "SIEM", **body}, headers=headers)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


@contextmanager
def streaming_account(
    engine_url: str, es: Elasticsearch
) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    """A running deployment of its own and an account whose key manages destinations: the
    service, the key's headers and the account id (everything removed afterwards)."""
    prefix = f"s{uuid.uuid4().hex[:8]}"
    client = start_service(streaming_settings(engine_url, prefix))
    try:
        account_id, headers = new_account(client, scopes=SCOPES)
        yield client, headers, account_id
    finally:
        client.__exit__(None, None, None)
        delete_prefixed(es, prefix)
