"""Fixtures of the page tests: seeded accounts, the service over real HTTP, headless Chromium.

The service runs as a real uvicorn server in a background thread (the browser needs a socket);
data goes in through the real ingest API; the browser is Debian's ``chromium`` driven by the
Python ``playwright`` package (never a browser that playwright downloads). Without
``/usr/bin/chromium`` the browser tests fail with a message saying how to install it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.demo.setup import prepare
from service.search.client import make_client
from tests.helpers import new_account, refresh, wait_ready
from tests.search.dataset import ingest, make_entries

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
TZ = "Europe/Paris"
NOW = datetime.now(UTC).replace(microsecond=0)
# Seeded groups, far from every preset's boundary: (seed, count, oldest, newest).
GROUPS = {
    "day": (91, 12, NOW - timedelta(hours=20), NOW - timedelta(hours=1)),
    "week": (92, 110, NOW - timedelta(days=6), NOW - timedelta(days=2)),
    "month": (93, 90, NOW - timedelta(days=25), NOW - timedelta(days=9)),
    "quarter": (94, 80, NOW - timedelta(days=80), NOW - timedelta(days=35)),
}
KEPT = ("audit", "credits", "ai", "webhook", "signal", "api")
SIGNAL = "Competitor mentions"
POST_URN = "urn:li:activity:7400000000000000001"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def realistic_entries() -> list[dict[str, Any]]:
    """A Signal run, its credit use, a webhook failure and an AI Agent run, a few hours ago."""
    scheduler = {"type": "system", "id": "scheduler", "name": "Scheduler"}
    return [
        {"id": "real-signal-run", "timestamp": _stamp(NOW - timedelta(hours=3)),
         "category": "signal", "type": "notice", "actor": scheduler,
         "action": "signal.run.completed",
         "message": f"Signal '{SIGNAL}' processed 212 posts, 3 matched",
         "metadata": {"signal_id": "sig_1", "signal_name": SIGNAL, "run_id": "run_1",
                      "processed": 212, "post_urn": POST_URN}},
        {"id": "real-credits", "timestamp": _stamp(NOW - timedelta(hours=3, minutes=-1)),
         "category": "credits", "type": "notice", "actor": scheduler,
         "action": "credits.consumed",
         "message": f"Signal '{SIGNAL}' used 2 credits on the post by Marie Dubois",
         "metadata": {"credits_used": 2, "credits_balance": 118, "signal_name": SIGNAL,
                      "post_urn": POST_URN}},
        {"id": "real-webhook", "timestamp": _stamp(NOW - timedelta(hours=2)),
         "category": "webhook", "type": "error",
         "actor": {"type": "system", "id": "webhook-dispatcher", "name": "Webhook dispatcher"},
         "action": "webhook.delivery.failed",
         "message": "POST https://hooks.acme.test/signals failed after 3 attempts (HTTP 502)",
         "metadata": {"url": "https://hooks.acme.test/signals", "status_code": 502,
                      "attempt": 3, "event": "signal.post.matched"}},
        {"id": "real-html", "timestamp": _stamp(NOW - timedelta(hours=4)),
         "category": "audit", "type": "warning",
         "actor": {"type": "user", "id": "u_7", "name": "Jane <b>Doe</b>",
                   "email": "jane@acme.test"},
         "action": "settings.signal.updated",
         "message": "Renamed the Signal to <script>alert(1)</script>",
         "metadata": {"target_type": "signal", "target_name": "<img src=x onerror=alert(1)>"}},
    ]  # fmt: skip


@dataclass
class Seeded:
    account: str
    key: str
    entries: list[dict[str, Any]]
    other_account: str
    other_key: str
    read_only_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _key_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


@pytest.fixture(scope="session")
def seeded(client: TestClient, es: Elasticsearch, settings: Settings) -> Seeded:
    account, headers = new_account(client, timezone=TZ)
    entries = realistic_entries()
    for name, (seed, count, oldest, newest) in GROUPS.items():
        generated = make_entries(seed, count, oldest, newest, KEPT)
        for e in generated:
            e["id"] = f"{name}-{e['id']}"
        entries += generated
    ingest(client, headers, entries)
    other, other_headers = new_account(client, timezone="America/New_York")
    rival = {**realistic_entries()[0], "id": "rival-run", "message": "Signal 'Rival watch' ran"}
    ingest(client, other_headers, [rival])
    _, read_only = new_account(client, timezone=TZ, scopes=("read",))
    refresh(es, settings.index_prefix)
    return Seeded(account, _key_of(headers), entries, other, _key_of(other_headers),
                  _key_of(read_only))  # fmt: skip


@pytest.fixture(scope="session")
def demo_key(settings: Settings, client: TestClient, es: Elasticsearch) -> str:
    """The demo of ``auditlog run`` loaded into this session's indices, and its sign-in key."""

    async def load() -> str:
        engine = make_client(settings, settings.es_url or "")
        try:
            return await prepare(engine, settings, report=lambda _: None)
        finally:
            await engine.close()

    # In a thread of its own: the sync Playwright API may already run a loop in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        key = pool.submit(asyncio.run, load()).result()
    refresh(es, settings.index_prefix)
    return key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server_url(settings: Settings, client: TestClient) -> Iterator[str]:
    """The service as a real HTTP server on 127.0.0.1, in a background thread."""
    port = _free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="page-test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise AssertionError("the page test server did not become ready")
        time.sleep(0.2)
    yield url
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module.

    Module-scoped on purpose: the sync Playwright API keeps an event loop running in this thread
    while it is started, and later tests of the session call ``asyncio.run`` here.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Debian chromium is missing ({CHROMIUM}): the browser tests need it. `make test` "
            "installs it when run as root; otherwise run `apt-get install -y chromium` as root.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("AUDITLOG_ARTIFACTS_DIR") or "/tmp/auditlog-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def app_client(settings: Settings) -> Iterator[TestClient]:
    """A service instance of the test module's own (its own key cache), through the ASGI
    interface."""
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture
def web(app_client: TestClient) -> Iterator[TestClient]:
    """:func:`app_client` without cookies from an earlier test."""
    app_client.cookies.clear()
    yield app_client
    app_client.cookies.clear()
