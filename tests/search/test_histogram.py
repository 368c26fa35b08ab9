"""GET /v1/histogram across daylight saving changes, checked against the raw entries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import new_account, refresh
from tests.search.dataset import frame, ingest, make_entries

# Europe/Paris leaves summer time on 2026-10-25, America/New_York on 2026-11-01.
PARIS, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")
KEPT = ("audit", "credits", "ai", "webhook", "signal", "api")


@pytest.fixture(scope="module")
def dst_data(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> tuple[dict[str, str], pd.DataFrame]:
    _, headers = new_account(client, timezone="Europe/Paris")
    start = datetime(2026, 10, 19, tzinfo=PARIS)
    end = datetime(2026, 11, 6, tzinfo=NEW_YORK)
    entries = make_entries(2, 4000, start, end, KEPT)
    ingest(client, headers, entries)
    refresh(es, settings.index_prefix)
    return headers, frame(entries)


def _expected(df: pd.DataFrame, starts: list[datetime], end: datetime) -> list[int]:
    bounds = [*starts[1:], end]
    lows = pd.to_datetime(starts, utc=True)
    highs = pd.to_datetime(bounds, utc=True)
    return [
        int(((df["ts"] >= lo) & (df["ts"] < hi)).sum()) for lo, hi in zip(lows, highs, strict=True)
    ]


@pytest.mark.parametrize("tz", [PARIS, NEW_YORK])
@pytest.mark.parametrize("interval", ["day", "hour"])
def test_buckets_match_across_dst(
    dst_data: Any, client: TestClient, tz: ZoneInfo, interval: str
) -> None:
    headers, df = dst_data
    params = {"from": "2026-10-20", "to": "2026-11-05", "tz": tz.key, "interval": interval}
    resp = client.get("/v1/histogram", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["interval"], body["tz"]) == (interval, tz.key)
    starts = [datetime.fromisoformat(b["start"]) for b in body["buckets"]]
    window_start = datetime(2026, 10, 20, tzinfo=tz)
    window_end = datetime(2026, 11, 5, tzinfo=tz)
    assert starts[0] == window_start
    lengths = {(b - a) for a, b in zip(starts, [*starts[1:], window_end], strict=True)}
    if interval == "day":
        assert len(starts) == 16
        assert all(s.astimezone(tz).hour == 0 and s.utcoffset() == s.astimezone(tz).utcoffset()
                   for s in starts)  # fmt: skip
        assert lengths == {timedelta(hours=24), timedelta(hours=25)}  # the long fall-back day
    else:
        assert lengths == {timedelta(hours=1)}
        assert len(starts) == 16 * 24 + 1  # one repeated local hour
    counts = [b["count"] for b in body["buckets"]]
    assert counts == _expected(df, starts, window_end)
    in_window = int(((df["ts"] >= window_start) & (df["ts"] < window_end)).sum())
    assert sum(counts) == body["total"] == in_window
    split_sums = [sum(b["split"].values()) for b in body["buckets"]]
    assert split_sums == counts
    entries = client.get("/v1/entries", params={k: v for k, v in params.items()
                                                 if k != "interval"}, headers=headers)  # fmt: skip
    assert entries.json()["total"] == body["total"]


def test_auto_interval_and_split_by_type(dst_data: Any, client: TestClient) -> None:
    headers, df = dst_data
    params = {"from": "2026-10-20", "to": "2026-11-05", "split": "type", "category": "webhook"}
    body = client.get("/v1/histogram", params=params, headers=headers).json()
    assert body["interval"] == "day" and len(body["buckets"]) <= 120
    webhook = df[df["category"] == "webhook"]
    by_type: dict[str, int] = {}
    for bucket in body["buckets"]:
        for key, count in bucket["split"].items():
            by_type[key] = by_type.get(key, 0) + count
    window = webhook[(webhook["ts"] >= pd.Timestamp("2026-10-19T22:00Z"))
                     & (webhook["ts"] < pd.Timestamp("2026-11-04T23:00Z"))]  # fmt: skip
    assert by_type == {str(k): int(v) for k, v in window["type"].value_counts().items()}


def test_histogram_rejects_bad_interval_and_split(dst_data: Any, client: TestClient) -> None:
    headers, _ = dst_data
    for params, field in [({"interval": "fortnight"}, "interval"), ({"split": "actor"}, "split"),
                          ({"interval": "minute", "range": "all"}, "interval")]:  # fmt: skip
        resp = client.get("/v1/histogram", params=params, headers=headers)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["field"] == field
