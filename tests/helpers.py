"""What tests share: the admin key, accounts with keys, valid entries, refreshing, cleaning up a
prefix, and running a call with an engine client made as the service makes it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from elasticsearch import AsyncElasticsearch, Elasticsearch
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from service.config import Settings, load_settings
from service.integrity.keys import create_keys
from service.search.client import make_client

ADMIN_KEY = "test-admin-key-0123456789abcdef"


def delete_prefixed(es: Elasticsearch, prefix: str) -> None:
    """Delete this prefix's indices, templates and policies, and nothing else."""
    found = es.indices.get(index=f"{prefix}-*", allow_no_indices=True, expand_wildcards="all")
    for index in found.body:
        es.indices.delete(index=index)
    lenient = es.options(ignore_status=404)
    templates = lenient.indices.get_index_template(name=f"{prefix}-*").body
    for t in templates.get("index_templates", []):
        es.indices.delete_index_template(name=t["name"])
    components = lenient.cluster.get_component_template(name=f"{prefix}-*").body
    for c in components.get("component_templates", []):
        es.cluster.delete_component_template(name=c["name"])


def keys_for_tests() -> Path:
    """The integrity keys every test service uses (created once per machine)."""
    directory = Path(tempfile.gettempdir()) / "auditlog-test-keys"
    create_keys(directory)
    return directory


def make_settings(engine_url: str, prefix: str, **overrides: object) -> Settings:
    return load_settings(
        env_file=None,
        es_url=engine_url,
        index_prefix=prefix,
        admin_key=Secret(ADMIN_KEY),
        retention_interval_s=3600.0,
        **{"keys_dir": keys_for_tests(), "seal_interval_s": 1.0, **overrides},
    )


def wait_ready(test_client: TestClient, seconds: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if test_client.get("/readyz").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"service not ready: {test_client.get('/readyz').json()}")


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def new_account(
    client: TestClient,
    timezone: str = "UTC",
    scopes: tuple[str, ...] = ("ingest", "read", "export"),
) -> tuple[str, dict[str, str]]:
    """A fresh account and the headers of a key of it with ``scopes``."""
    account_id = f"acct-{uuid.uuid4().hex[:10]}"
    created = client.post(
        "/v1/admin/accounts", json={"id": account_id, "name": account_id, "timezone": timezone},
        headers=ADMIN,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    key = client.post(
        "/v1/admin/keys",
        json={"account_id": account_id, "scopes": list(scopes), "name": "test"},
        headers=ADMIN,
    )
    assert key.status_code == 201, key.text
    return account_id, {"Authorization": f"Bearer {key.json()['key']}"}


def refresh(es: Elasticsearch, prefix: str) -> None:
    es.indices.refresh(index=f"{prefix}-*")


def open_search_contexts(es: Elasticsearch, prefix: str) -> int:
    """Search contexts open on the entry indices of ``prefix``: points in time hold one per
    shard, and nothing else stays open between requests (counted on the entries alias: other
    test sessions, and the sealer's searches of the service's own indices, open their own)."""
    stats = es.indices.stats(index=f"{prefix}-entries", metric="search")
    return int(stats["_all"]["total"]["search"]["open_contexts"])


def entry(**fields: object) -> dict[str, object]:
    """A valid webhook entry, overridden by ``fields``."""
    base: dict[str, object] = {
        "id": f"e-{uuid.uuid4().hex}",
        "timestamp": "2026-11-20T10:15:00.123Z",
        "category": "webhook",
        "type": "error",
        "actor": {"type": "system", "id": "dispatcher", "name": "Webhook dispatcher"},
        "action": "webhook.delivery.failed",
        "message": "POST https://hooks.acme.test/x returned 502 after 3 attempts",
        "metadata": {"url": "https://hooks.acme.test/x", "status_code": 502, "attempt": 3},
    }
    base.update(fields)
    return base


T = TypeVar("T")


def with_engine(settings: Settings, call: Callable[[AsyncElasticsearch], Awaitable[T]]) -> T:
    """``call`` with an engine client made as the service makes it, closed afterwards."""

    async def run() -> T:
        assert settings.es_url
        client = make_client(settings, settings.es_url)
        try:
            return await call(client)
        finally:
            await client.close()

    return asyncio.run(run())


def has_compose() -> bool:
    """Whether a docker CLI with the compose plugin is here (the compose checks need one)."""
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0
