"""What a running service holds: settings, the engine client, names, the ingest context,
readiness, counters.

Created by the lifespan in :mod:`service.app` and handed to requests as ``request.state.runtime``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from starlette.requests import Request

from ingest.pipeline import IngestContext
from service.config import Settings
from service.key_cache import KeyCache
from service.search.accounts import Account
from service.search.client import Engine
from service.search.indices import IndexNames


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
    ingest: IngestContext = field(init=False)
    """How entries are written (validation, routing, the writer), failures counted here."""

    def __post_init__(self) -> None:
        self.key_cache = KeyCache(self.settings.key_cache_s)
        self.ingest = IngestContext.for_settings(self.es, self.settings, self.counters)


def runtime_of(request: Request) -> Runtime:
    runtime = request.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime
