"""A generated data set for search tests, and pandas answers computed independently of the code."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from starlette.testclient import TestClient

WORDS = ("amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor")
ACTORS = {f"u_{i}": f"Person{i} Tester" for i in range(1, 7)}
CATEGORIES = ("audit", "credits", "ai", "webhook", "signal", "api", "integration")
TYPES = ("notice",) * 7 + ("warning",) * 2 + ("error",)
ACTIONS = {
    "audit": ("settings.signal.updated", "keys.created"),
    "credits": ("credits.consumed",),
    "ai": ("ai.run.completed", "ai.run.failed"),
    "webhook": ("webhook.delivery.succeeded", "webhook.delivery.failed"),
    "signal": ("signal.run.completed",),
    "api": ("api.request",),
    "integration": ("integration.hubspot.contact.updated", "integration.attio.record.synced"),
}


def make_entries(
    seed: int, count: int, start: datetime, end: datetime, categories: tuple[str, ...] = CATEGORIES
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    span_ms = int((end - start).total_seconds() * 1000)
    entries = []
    for n in range(count):
        category = rng.choice(categories)
        actor = rng.choice(sorted(ACTORS))
        ts = start + timedelta(milliseconds=rng.randrange(span_ms))
        metadata: dict[str, Any] = {}
        if category == "integration":
            metadata = {"provider": rng.choice(("hubspot", "attio")),
                        "status": rng.choice(("success", "failed"))}  # fmt: skip
        entries.append({
            "id": f"g{seed}-{n:06d}",
            "timestamp": ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "category": category,
            "type": rng.choice(TYPES),
            "actor": {"type": "user", "id": actor, "name": ACTORS[actor]},
            "action": rng.choice(ACTIONS[category]),
            "message": " ".join(rng.choice(WORDS) for _ in range(4)),
            "metadata": metadata,
        })  # fmt: skip
    return entries


def ingest(client: TestClient, headers: dict[str, str], entries: list[dict[str, Any]]) -> None:
    for i in range(0, len(entries), 2000):
        resp = client.post("/v1/entries", json={"entries": entries[i : i + 2000]}, headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.json()["created"] == len(entries[i : i + 2000]), resp.json()["results"][:3]


def frame(entries: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [e["id"] for e in entries],
        "ts": pd.to_datetime([e["timestamp"] for e in entries], utc=True),
        "category": [e["category"] for e in entries],
        "type": [e["type"] for e in entries],
        "actor": [e["actor"]["id"] for e in entries],
        "action": [e["action"] for e in entries],
        "message": [e["message"] for e in entries],
        "provider": [e["metadata"].get("provider") for e in entries],
        "status": [e["metadata"].get("status") for e in entries],
    })  # fmt: skip


def has_word(df: pd.DataFrame, word: str) -> pd.Series:
    return df["message"].str.split().apply(lambda words: word in words)


def has_phrase(df: pd.DataFrame, phrase: str) -> pd.Series:
    return (" " + df["message"] + " ").str.contains(f" {phrase} ", regex=False)
