"""GET /v1/entries and /v1/histogram on a generated data set, against pandas answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import new_account, refresh
from tests.search.dataset import frame, has_phrase, has_word, ingest, make_entries

NOW = datetime.now(UTC)
START = NOW - timedelta(days=20)
WINDOW = {"from": START.isoformat(), "to": NOW.isoformat()}  # excludes the setup audit entries


@pytest.fixture(scope="module")
def data(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> tuple[str, dict[str, str], pd.DataFrame]:
    account, headers = new_account(client, timezone="Europe/Paris")
    entries = make_entries(1, 3000, START, NOW)
    ingest(client, headers, entries)
    refresh(es, settings.index_prefix)
    return account, headers, frame(entries)


def _get(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    resp = client.get("/v1/entries", params={**WINDOW, **params}, headers=headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _facet(body: dict[str, Any], name: str) -> dict[str, int]:
    return {b["value"]: b["count"] for b in body["facets"][name] if b["count"]}


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().items()}


def test_total_and_unfiltered_facets(data: Any, client: TestClient) -> None:
    _, headers, df = data
    body = _get(client, headers)
    assert (body["total"], body["total_relation"]) == (len(df), "eq")
    assert _facet(body, "category") == _counts(df["category"])
    assert _facet(body, "type") == _counts(df["type"])
    assert _facet(body, "actor") == _counts(df["actor"])
    assert _facet(body, "provider") == _counts(df["provider"].dropna())
    labels = {b["value"]: b["label"] for b in body["facets"]["actor"]}
    assert labels["u_1"] == "Person1 Tester"


@pytest.mark.parametrize(
    "selection",
    [
        {"category": ["webhook"]},
        {"category": ["webhook", "signal"], "type": ["error"]},
        {"category": ["integration", "api"], "type": ["warning", "error"], "actor": ["u_2"]},
        {"provider": ["hubspot"], "actor": ["u_1", "u_3"]},
    ],
)
def test_multi_select_facets(
    data: Any, client: TestClient, selection: dict[str, list[str]]
) -> None:
    _, headers, df = data
    body = _get(client, headers, **selection)
    column = {"category": "category", "type": "type", "actor": "actor", "provider": "provider"}

    def matching(except_facet: str | None) -> pd.DataFrame:
        mask = pd.Series(True, index=df.index)
        for facet, values in selection.items():
            if facet != except_facet:
                mask &= df[column[facet]].isin(values)
        return df[mask]

    assert body["total"] == len(matching(None))
    for facet in ("category", "type", "actor", "provider"):
        expected = _counts(matching(facet)[column[facet]].dropna())
        assert _facet(body, facet) == expected, facet
    for facet, values in selection.items():
        assert {b["value"] for b in body["facets"][facet] if b["selected"]} == set(values)
    ids = {e["id"] for e in body["entries"]}
    assert ids <= set(matching(None)["id"])


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("amber", lambda df: has_word(df, "amber")),
        ("amber cedar", lambda df: has_word(df, "amber") & has_word(df, "cedar")),
        ('"amber cedar"', lambda df: has_phrase(df, "amber cedar")),
        ("-amber", lambda df: ~has_word(df, "amber")),
        ('birch -"birch delta"', lambda df: has_word(df, "birch") & ~has_phrase(df, "birch delta")),
        ("type:warning,error", lambda df: df["type"].isin(["warning", "error"])),
        ("category:webhook -type:notice",
         lambda df: (df["category"] == "webhook") & (df["type"] != "notice")),
        ("actor:u_4 ember", lambda df: (df["actor"] == "u_4") & has_word(df, "ember")),
        ("action:webhook.*", lambda df: df["action"].str.startswith("webhook.")),
        ("action:ai.run.failed", lambda df: df["action"] == "ai.run.failed"),
        ("provider:attio status:failed",
         lambda df: (df["provider"] == "attio") & (df["status"] == "failed")),
        ("-provider:hubspot category:integration",
         lambda df: (df["category"] == "integration") & (df["provider"] != "hubspot")),
    ],
)  # fmt: skip
def test_search_text(data: Any, client: TestClient, q: str, expected: Any) -> None:
    _, headers, df = data
    body = _get(client, headers, q=q, size=200)
    want = df[expected(df)]
    assert body["total"] == len(want)
    assert {e["id"] for e in body["entries"]} <= set(want["id"])


def test_after_and_before_qualifiers(data: Any, client: TestClient) -> None:
    _, headers, df = data
    day = (NOW - timedelta(days=10)).astimezone(ZoneParis).date()
    upper = day + timedelta(days=3)
    body = _get(client, headers, q=f"after:{day} before:{upper}")
    local = df["ts"].dt.tz_convert("Europe/Paris").dt.date
    assert body["total"] == int(((local >= day) & (local < upper)).sum())


def test_entries_carry_local_time_in_the_view_timezone(data: Any, client: TestClient) -> None:
    _, headers, _ = data
    body = _get(client, headers, size=5, tz="America/New_York")
    for item in body["entries"]:
        utc = datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00"))
        local = datetime.fromisoformat(item["local_time"])
        assert local == utc
        assert local.utcoffset() == utc.astimezone(ZoneNY).utcoffset()
        assert item["timestamp"].endswith("Z")


def test_bad_parameters_are_400_naming_them(data: Any, client: TestClient) -> None:
    _, headers, _ = data
    for params, field in [
        ({"category": "nope"}, "category"), ({"type": "fatal"}, "type"),
        ({"range": "5y"}, "range"), ({"from": "yesterday"}, "from"), ({"tz": "Mars/Base"}, "tz"),
        ({"size": "1000"}, "size"), ({"order": "up"}, "order"), ({"q": "categroy:x"}, "q"),
        ({"q": '"open'}, "q"), ({"cursor": "garbage"}, "cursor"), ({"colour": "red"}, "colour"),
    ]:  # fmt: skip
        resp = client.get("/v1/entries", params=params, headers=headers)
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["error"]["field"] == field


from zoneinfo import ZoneInfo  # noqa: E402

ZoneParis = ZoneInfo("Europe/Paris")
ZoneNY = ZoneInfo("America/New_York")
