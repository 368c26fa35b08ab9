"""A short-lived cache of key lookups: a revocation elsewhere takes effect within its lifetime."""

from __future__ import annotations

import time

from service.search.accounts import KeyRecord


class KeyCache:
    """Key id → (record or None, fetched at); entries live at most ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[KeyRecord | None, float]] = {}

    def get(self, key_id: str) -> tuple[bool, KeyRecord | None]:
        hit = self._entries.get(key_id)
        if hit is None or time.monotonic() - hit[1] > self.ttl:
            return False, None
        return True, hit[0]

    def put(self, key_id: str, record: KeyRecord | None) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key_id] = (record, time.monotonic())

    def forget(self, key_id: str) -> None:
        self._entries.pop(key_id, None)
