"""What a running service holds: settings, the engine client, names, the ingest context,
readiness, counters.

Created by the lifespan in :mod:`service.app` and handed to requests as ``request.state.runtime``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.requests import Request

from ingest.pipeline import IngestContext
from service.config import Settings
from service.errors import engine_unavailable
from service.key_cache import KeyCache
from service.search.accounts import Account
from service.search.client import Engine
from service.search.indices import IndexNames
from service.search.integrity_log import SegmentCache
from service.search.log_entries import EntryCache
from service.search.seal_queue import KeptRecords

FINISH_S = 10.0
"""How long a shutdown waits for the background work it lets end (:attr:`Runtime.finishing`)."""


@dataclass
class Runtime:
    settings: Settings
    es: Engine
    names: IndexNames
    setup_done: bool = False
    ilm: bool = False
    counters: Counter[str] = field(default_factory=Counter)
    key_cache: KeyCache = field(init=False)
    account_cache: dict[str, tuple[Account | None, float]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    finishing: set[asyncio.Task[None]] = field(default_factory=set)
    """Background work a shutdown lets end first (:meth:`spawn` with ``finish``)."""
    segments: SegmentCache = field(default_factory=SegmentCache)
    """The log segments the feed read last (for every reader of this process)."""
    feed_entries: EntryCache = field(default_factory=EntryCache)
    """The entries the feed read last, and those just written for the accounts it delivers
    (for every reader of this process)."""
    sealing_here: KeptRecords = field(default_factory=KeptRecords)
    """The seal queue records this process wrote, kept for its sealer while it holds the lease."""
    delivering: dict[str, str] = field(default_factory=dict)
    """The destinations this process delivers to now (it holds their leases): id to account."""
    ingest: IngestContext = field(init=False)
    """How entries are written (validation, routing, the writer), failures counted here."""
    holder: str = field(init=False)
    """This process among the deployment's instances and workers (the holder of its leases)."""
    cursor_secret: bytes | None = None
    """Signs cursors: ``AUDITLOG_CURSOR_SECRET``, else the deployment's shared secret (read at
    setup), so a cursor from one instance or worker pages on every other."""

    def __post_init__(self) -> None:
        self.key_cache = KeyCache(self.settings.key_cache_s)
        self.ingest = replace(
            IngestContext.for_settings(self.es, self.settings, self.counters),
            streamed=lambda: set(self.delivering.values()), written=self.feed_entries.keep_written,
            kept_records=self.sealing_here,
        )  # fmt: skip
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        if self.settings.cursor_secret is not None:
            self.cursor_secret = str(self.settings.cursor_secret).encode()

    def spawn(self, work: Coroutine[Any, Any, None], finish: bool = False) -> None:
        """Run ``work`` in the background, kept until it ends (cancelled at shutdown; with
        ``finish``, given :data:`FINISH_S` to end first)."""
        task = asyncio.create_task(work)
        kept = self.finishing if finish else self.tasks
        kept.add(task)
        task.add_done_callback(kept.discard)

    def cursor_key(self) -> bytes:
        if self.cursor_secret is None:
            raise engine_unavailable("the service is starting; retry in a few seconds")
        return self.cursor_secret


def runtime_of(request: Request) -> Runtime:
    runtime = request.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime
