"""Odd input found by trying the service as an attacker and a careless client would: every case
is a 4xx naming the parameter or field, or the answer a user expects — never a 5xx, a 503 for
the client's own mistake, or silent loss."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from openpyxl import load_workbook
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import ADMIN, entry, new_account, refresh, wait_ready

READS = ["/v1/entries", "/v1/histogram", "/v1/export"]
BAD_ZONES = ["America", "Etc", "x" * 256, "right/UTC", "posix/Europe/Paris", "posixrules",
             "Factory", "localtime", "Europe/Paris\x00", "../../etc/localtime"]  # fmt: skip
PAGE = "/settings/audit-logs"
EXCEL_MAX_CELL = 32_767
"""Excel's limit of a cell's text, in UTF-16 code units."""


@pytest.fixture(scope="module")
def east(client: TestClient) -> tuple[str, dict[str, str]]:
    """An account east of UTC (its local midnight of year 1 is before year 1 in UTC)."""
    return new_account(client, timezone="Asia/Tokyo", scopes=("ingest", "read", "export"))


def _field(response: Any) -> str | None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    return response.json()["error"]["field"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("tz", BAD_ZONES)
def test_a_timezone_the_engine_does_not_take_is_a_400_naming_tz(
    client: TestClient, east: tuple[str, dict[str, str]], path: str, tz: str
) -> None:
    response = client.get(path, params={"tz": tz}, headers=east[1])
    assert response.status_code == 400 and _field(response) == "tz"


@pytest.mark.parametrize(
    ("body", "field"), [({"format": []}, "format"), ({"order": []}, "order"), ({"q": [1]}, "q")]
)
def test_an_export_job_body_of_empty_or_odd_arrays_names_the_field(
    client: TestClient, east: tuple[str, dict[str, str]], body: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/exports", json=body, headers=east[1])
    assert response.status_code == 400 and _field(response) == field


def test_a_content_length_of_thousands_of_digits_is_not_a_5xx(
    client: TestClient, east: tuple[str, dict[str, str]]
) -> None:
    headers = {**east[1], "Content-Type": "application/json", "Content-Length": "9" * 5000}
    response = client.post("/v1/entries", content=b"{}", headers=headers)
    assert response.status_code < 500


@pytest.mark.parametrize("tz", ["America", "x" * 300, "right/UTC"])
def test_an_export_job_with_a_bad_timezone_names_tz(
    client: TestClient, east: tuple[str, dict[str, str]], tz: str
) -> None:
    in_query = client.post("/v1/exports", params={"tz": tz}, headers=east[1])
    in_body = client.post("/v1/exports", json={"tz": tz}, headers=east[1])
    assert _field(in_query) == _field(in_body) == "tz"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "after:0001-01-01"}, "q"),  # local midnight in Tokyo is before year 1 in UTC
        ({"q": "before:9999-12-31T23:30:00-01:00"}, "q"),
        ({"q": "after:0001-01-01T00:00:00+14:00 before:9999-12-31"}, "q"),
        ({"to": "9999-12-31T23:59:59.9999Z"}, "to"),
        ({"from": "0001-01-01", "to": "9999-12-31"}, "from"),
        ({"from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z"}, "from"),
        ({"from": "0001-03-01T00:00:00Z", "to": "0005-01-01T00:00:00Z"}, None),
        ({"q": "after:0001-03-03 before:0005-01-01", "range": "all"}, None),
        ({"from": "2026-11-10", "to": "2026-11-01", "q": "after:2026-01-01"}, "from"),
    ],
)
@pytest.mark.parametrize("path", READS)
def test_instants_of_year_1_and_9999_are_a_400_naming_them_or_answered(
    client: TestClient,
    east: tuple[str, dict[str, str]],
    path: str,
    params: dict[str, str],
    field: str | None,
) -> None:
    response = client.get(path, params=params, headers=east[1])
    if field is None:  # inside the range: answered, weekly and monthly buckets of year 1 included
        assert response.status_code == 200, response.text[:300]
    else:
        assert response.status_code == 400 and _field(response) == field


@pytest.mark.parametrize("interval", ["week", "month"])
def test_histogram_buckets_of_year_1_east_of_utc_are_answered(
    client: TestClient, east: tuple[str, dict[str, str]], interval: str
) -> None:
    params = {"from": "0001-03-01T00:00:00Z", "to": "0003-01-01T00:00:00Z", "interval": interval}
    response = client.get("/v1/histogram", params=params, headers=east[1])
    assert response.status_code == 200, response.text[:300]
    assert response.json()["buckets"][0]["start"].startswith("0001-0")


def test_a_histogram_of_too_many_buckets_names_the_window(
    client: TestClient, east: tuple[str, dict[str, str]]
) -> None:
    params = {"from": "0001-03-02", "to": "9999-12-29"}
    response = client.get("/v1/histogram", params=params, headers=east[1])
    assert response.status_code == 400 and _field(response) == "from"
    assert "narrow" in response.json()["error"]["message"]
    by_day = client.get("/v1/histogram", params={**params, "interval": "day"}, headers=east[1])
    assert _field(by_day) == "interval"


@pytest.mark.parametrize(
    "size", ["²", "\u0661\u0660", "\uff15", "\U0001d7d9", "1\u0660", "0" * 5000 + "5"]
)
def test_only_ascii_digits_count_as_a_size(
    client: TestClient, east: tuple[str, dict[str, str]], size: str
) -> None:
    response = client.get("/v1/entries", params={"size": size}, headers=east[1])
    assert response.status_code == 400 and _field(response) == "size"


def _sign_in(client: TestClient, headers: dict[str, str]) -> TestClient:
    key = headers["Authorization"].removeprefix("Bearer ")
    response = client.post(f"{PAGE}/sign-in", data={"key": key}, follow_redirects=False)
    assert response.status_code == 303
    return client


@pytest.mark.parametrize(
    "params",
    [{"end": "9999-12-31"}, {"start": "0001-01-01"}, {"start": "0001-01-01", "end": "9999-12-31"},
     {"q": "after:0001-01-01"}, {"q": "before:9999-12-31T23:30:00-01:00"}],
)  # fmt: skip
def test_the_page_answers_dates_of_year_1_and_9999(
    settings: Settings, east: tuple[str, dict[str, str]], params: dict[str, str]
) -> None:
    from service.app import create_app

    with TestClient(create_app(settings)) as page:
        wait_ready(page)
        _sign_in(page, east[1])
        response = page.get(PAGE, params=params)
    assert response.status_code < 500, response.text[-500:]


DEEP = b"[" * 60_000


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/admin/accounts", "POST"), ("/v1/admin/keys", "POST"), ("/v1/exports", "POST"),
     ("/v1/admin/accounts/acme", "PATCH"), ("/v1/entries", "POST")],
)  # fmt: skip
def test_deeply_nested_bodies_are_a_400_naming_the_body(
    client: TestClient, east: tuple[str, dict[str, str]], path: str, method: str
) -> None:
    headers = {**(ADMIN if "admin" in path else east[1]), "Content-Type": "application/json"}
    response = client.request(method, path, content=DEEP, headers=headers)
    assert response.status_code == 400 and _field(response) == "body"


LONE_SURROGATE = '"\\ud800"'


@pytest.mark.parametrize(
    ("path", "method", "body", "auth"),
    [
        ("/v1/admin/accounts", "POST", '{"id": "lone-surrogate", "name": %s}', "admin"),
        ("/v1/admin/accounts/acme", "PATCH", '{"name": %s}', "admin"),
        ("/v1/admin/keys", "POST", '{"account_id": "acme", "scopes": ["read"], "name": %s}',
         "admin"),
        ("/v1/exports", "POST", '{"q": %s}', "account"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_a_400_not_an_outage(
    client: TestClient,
    east: tuple[str, dict[str, str]],
    path: str,
    method: str,
    body: str,
    auth: str,
) -> None:
    headers = {**(ADMIN if auth == "admin" else east[1]), "Content-Type": "application/json"}
    response = client.request(method, path, content=body % LONE_SURROGATE, headers=headers)
    assert response.status_code == 400 and _field(response) == "body"
    assert "Retry-After" not in response.headers


@pytest.mark.parametrize("zone", [*BAD_ZONES, "x" * 5000])
def test_an_account_timezone_the_engine_does_not_take_is_refused(
    client: TestClient, east: tuple[str, dict[str, str]], zone: str
) -> None:
    account_id = east[0]
    patched = client.patch(f"/v1/admin/accounts/{account_id}", json={"timezone": zone},
                           headers=ADMIN)  # fmt: skip
    assert patched.status_code == 400 and _field(patched) == "timezone"
    created = client.post("/v1/admin/accounts", json={"id": "tz-odd", "timezone": zone},
                          headers=ADMIN)  # fmt: skip
    assert created.status_code == 400 and _field(created) == "timezone"
    assert client.get("/v1/histogram", headers=east[1]).status_code == 200


@pytest.mark.parametrize("zone", ["UTC", "US/Eastern", "Etc/GMT+5", "Asia/Kathmandu"])
def test_links_and_zones_both_sides_know_are_accepted_and_usable(
    client: TestClient, zone: str
) -> None:
    _, headers = new_account(client, timezone=zone)
    for path in READS:
        assert client.get(path, headers=headers).status_code == 200, (path, zone)


def test_an_instant_before_1970_written_with_an_offset_is_refused(
    client: TestClient, east: tuple[str, dict[str, str]]
) -> None:
    sent = entry(timestamp="1970-01-01T00:00:00+14:00", category="api")
    result = client.post("/v1/entries", json=sent, headers=east[1]).json()["results"][0]
    assert result["status"] == "rejected" and result["error"]["field"] == "timestamp"
    on_time = entry(timestamp="1970-01-01T00:00:00-01:00", category="api")
    assert client.post("/v1/entries", json=on_time, headers=east[1]).json()["created"] == 1


def _export(client: TestClient, headers: dict[str, str], fmt: str) -> bytes:
    response = client.get("/v1/export", params={"format": fmt, "range": "all"}, headers=headers)
    assert response.status_code == 200, response.text[:300]
    return response.content


def test_a_cell_with_a_semicolon_is_quoted_in_csv(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    _, headers = new_account(client)
    sent = entry(category="api", actor={"type": "user", "id": "a;=1+1;b", "name": "x;y"},
                 message="plain", metadata={"note": "c;=2+2"})  # fmt: skip
    assert client.post("/v1/entries", json=sent, headers=headers).json()["created"] == 1
    refresh(es, settings.index_prefix)
    text = _export(client, headers, "csv").decode()
    assert '"a;=1+1;b"' in text and '"x;y"' in text
    for line in text.splitlines()[1:]:  # no bare semicolon: every one sits in a quoted cell
        assert not [cell for cell in _RAW_CELL.findall(line) if ";" in cell and cell[:1] != '"']
    rows = list(csv.reader(io.StringIO(text)))
    assert "a;=1+1;b" in [row[rows[0].index("actor_id")] for row in rows]


_RAW_CELL = re.compile(r'"(?:[^"]|"")*"|[^,]+')
"""A cell of a CSV line as written: quoted, or bare up to the next comma."""


def test_a_value_longer_than_an_excel_cell_is_cut_visibly(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    _, headers = new_account(client)
    long_value = "0123456789" * 4_000
    sent = entry(category="api", metadata={"payload": long_value})
    assert client.post("/v1/entries", json=sent, headers=headers).json()["created"] == 1
    refresh(es, settings.index_prefix)

    assert long_value in _export(client, headers, "ndjson").decode()
    rows = list(csv.reader(io.StringIO(_export(client, headers, "csv").decode())))
    whole = next(cell for row in rows for cell in row if long_value in cell)  # metadata's JSON
    book = load_workbook(io.BytesIO(_export(client, headers, "xlsx")), read_only=True)
    cells = [c for row in book["Entries"].iter_rows(values_only=True) for c in row
             if isinstance(c, str) and len(c) > 1000]  # fmt: skip
    assert len(cells) == 1
    cut = cells[0]
    assert len(cut.encode("utf-16-le")) // 2 <= EXCEL_MAX_CELL
    assert cut.endswith("CSV and NDJSON carry the whole value]")
    kept = cut[: cut.rindex(" [… ")]
    assert whole.startswith(kept)
    assert f"[… {len(whole) - len(kept):,} characters cut" in cut
    info = {row[0]: row[1] for row in book["Export info"].iter_rows(values_only=True)}
    assert info["cut cells"] == 1 and "cut" in info["cut cells note"]


def test_excel_counts_utf16_units_and_a_pair_is_never_split() -> None:
    from service.export.writers import cut_to_cell

    pairs = "😀" * 20_000  # 20,000 characters, but 40,000 UTF-16 units for Excel
    cell, cut = cut_to_cell(pairs)
    kept = cell[: cell.rindex(" [… ")]
    assert len(cell.encode("utf-16-le")) // 2 <= EXCEL_MAX_CELL
    assert kept == "😀" * len(kept) and cut == 20_000 - len(kept) > 0
    fits = "x" * EXCEL_MAX_CELL
    assert cut_to_cell(fits) == (fits, 0)
