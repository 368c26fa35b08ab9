"""Exports against the real engine: rows equal the expected rows, row by row, in every format."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch
from openpyxl import load_workbook
from starlette.testclient import TestClient

from service.config import Settings
from service.export.stream import export_bytes, plan_export
from service.integrity.canonical import entry_digest
from service.search.filters import parse_view_filters
from service.search.indices import IndexNames
from service.search.scan import FIRST_PAGE_SIZE
from tests.helpers import new_account, open_search_contexts, refresh
from tests.search.dataset import ingest, make_entries

TZ = ZoneInfo("America/New_York")
NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=10)
WINDOW = {"from": START.isoformat(), "to": NOW.isoformat()}
BASE = ["id", "timestamp_local", "timestamp_utc", "category", "type", "actor_id", "actor_name",
        "actor_email", "action", "message"]  # fmt: skip
# The known metadata keys of webhook, then integration (contract order), then the rest.
COLUMNS = [*BASE, "webhook_id", "url", "event", "status_code", "attempt", "duration_ms", "error",
           "provider", "object", "operation", "record_id", "contact_name", "status",
           "metadata_other", "entry_digest"]  # fmt: skip
RISKY = ["=SUM(A1:A2)", "+33 6 12", "-10 credits", "@import", "\tindented", "\rreturn"]


@pytest.fixture(scope="module")
def data(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
    account, headers = new_account(client, timezone="America/New_York")
    entries = make_entries(5, 1200, START, NOW - timedelta(minutes=5), ("webhook", "integration"))
    for n, entry in enumerate(entries[:60]):
        entry["message"] = RISKY[n % len(RISKY)]
        if entry["category"] == "webhook":
            entry["metadata"] = {
                "url": "https://hooks.acme.test/x?a=1", "status_code": 502, "attempt": 3,
                "duration_ms": 1250, "x_trace": {"span": n},
            }  # fmt: skip
    ingest(client, headers, entries)
    refresh(es, settings.index_prefix)
    return account, headers, entries


def expected_rows(entries: list[dict[str, Any]], account: str) -> list[list[Any]]:
    """Independently: order by (timestamp, id) descending, local time with zoneinfo, the digest
    of each entry as stored (with its account)."""
    rows = []
    for e in sorted(entries, key=lambda e: (e["timestamp"], e["id"]), reverse=True):
        utc = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        meta = e["metadata"]
        other = {k: v for k, v in meta.items() if k not in COLUMNS}
        row = [e["id"], utc.astimezone(TZ).isoformat(timespec="milliseconds"), e["timestamp"],
               e["category"], e["type"], e["actor"]["id"], e["actor"]["name"], None, e["action"],
               e["message"]]  # fmt: skip
        row += [meta.get(c) for c in COLUMNS[len(BASE) : -2]]
        row.append(json.dumps(other, sort_keys=True) if other else None)
        row.append(entry_digest({**e, "account_id": account}))
        rows.append([("'" + v) if isinstance(v, str) and v[:1] in "=+-@\t\r" and v else v
                     for v in row])  # fmt: skip
    return rows


def _export(client: TestClient, headers: dict[str, str], fmt: str, **params: Any) -> Any:
    resp = client.get("/v1/export", params={**WINDOW, "format": fmt, **params}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp


def test_csv_rows_equal_the_expected_rows(data: Any, client: TestClient) -> None:
    account, headers, entries = data
    resp = _export(client, headers, "csv")
    assert resp.headers["content-type"].startswith("text/csv")
    begin, end = START.astimezone(TZ).date(), NOW.astimezone(TZ).date()
    assert resp.headers["content-disposition"] == (
        f'attachment; filename="audit-log_{account}_{begin}_{end}.csv"'
    )
    rows = list(csv.reader(io.StringIO(resp.text, newline="")))
    assert rows[0] == COLUMNS
    expected = [
        ["" if v is None else str(v) for v in row] for row in expected_rows(entries, account)
    ]
    assert len(rows) - 1 == len(expected)
    for got, want in zip(rows[1:], expected, strict=True):
        assert got == want


def test_xlsx_rows_equal_the_expected_rows(data: Any, client: TestClient, tmp_path: Any) -> None:
    account, headers, entries = data
    path = tmp_path / "export.xlsx"
    path.write_bytes(_export(client, headers, "xlsx").content)
    book = load_workbook(path, read_only=True)
    assert book.sheetnames == ["Entries", "Export info"]
    width = len(COLUMNS)  # the contract's text columns, then the entry's time as date-times
    rows = [list(r) for r in book["Entries"].iter_rows(values_only=True)]
    assert rows[0] == [*COLUMNS, "datetime_local", "datetime_utc"]
    expected = expected_rows(entries, account)  # carriage returns included (lxml escapes them)
    assert [r[:width] for r in rows[1:]] == expected
    info = {r[0]: r[1] for r in book["Export info"].iter_rows(values_only=True)}
    assert info["row count"] == len(entries) and info["timezone"] == "America/New_York"
    assert info["from"].startswith(START.strftime("%Y-%m-%dT%H:%M:%S"))


def test_ndjson_is_the_api_view(data: Any, client: TestClient) -> None:
    _, headers, entries = data
    lines = _export(client, headers, "ndjson", category="webhook").text.splitlines()
    exported = [json.loads(line) for line in lines]
    api: list[dict[str, Any]] = []
    params: dict[str, Any] = {**WINDOW, "category": "webhook", "size": 200}
    while True:
        page = client.get("/v1/entries", params=params, headers=headers).json()
        api += page["entries"]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert [{k: v for k, v in e.items() if k != "entry_digest"} for e in exported] == api
    assert all(e["entry_digest"] == entry_digest(e) for e in exported)  # what the log binds
    assert len(exported) == sum(e["category"] == "webhook" for e in entries)


def test_local_timestamps_equal_the_page(data: Any, client: TestClient) -> None:
    _, headers, _ = data
    rows = list(csv.DictReader(io.StringIO(_export(client, headers, "csv", q="amber").text)))
    page = client.get("/v1/entries", params={**WINDOW, "q": "amber", "size": 200}, headers=headers)
    shown = {e["id"]: e["local_time"] for e in page.json()["entries"]}
    exported = {r["id"]: r["timestamp_local"] for r in rows}
    assert len(shown) == 200 and {k: exported[k] for k in shown} == shown


def test_empty_result_is_the_header_only(data: Any, client: TestClient, tmp_path: Any) -> None:
    _, headers, _ = data
    csv_text = _export(client, headers, "csv", q="nothingmatchesthis").text
    assert csv_text.splitlines() == [",".join([*COLUMNS[:10], "metadata_other", "entry_digest"])]
    path = tmp_path / "empty.xlsx"
    path.write_bytes(_export(client, headers, "xlsx", q="nothingmatchesthis").content)
    rows = list(load_workbook(path, read_only=True)["Entries"].iter_rows(values_only=True))
    assert len(rows) == 1
    assert _export(client, headers, "ndjson", q="nothingmatchesthis").content == b""


def test_a_window_without_any_index_is_the_header_only(data: Any, client: TestClient) -> None:
    _, headers, _ = data
    resp = _export(client, headers, "csv", **{"from": "2001-01-01", "to": "2001-02-01"})
    assert resp.status_code == 200 and resp.headers["x-total-count"] == "0"
    assert resp.text.splitlines() == [",".join([*COLUMNS[:10], "metadata_other", "entry_digest"])]


def test_bad_export_parameters_are_4xx(data: Any, client: TestClient) -> None:
    _, headers, _ = data
    for params, field in [({"format": "pdf"}, "format"), ({"q": "type:fatal"}, "q"),
                          ({"tz": "Nowhere/City"}, "tz")]:  # fmt: skip
        resp = client.get("/v1/export", params=params, headers=headers)
        assert resp.status_code == 400 and resp.json()["error"]["field"] == field


def test_export_is_recorded_in_the_audit_log(data: Any, client: TestClient, es: Elasticsearch,
                                             settings: Settings) -> None:  # fmt: skip
    _, headers, entries = data
    text = _export(client, headers, "csv", category="integration").text
    refresh(es, settings.index_prefix)
    found = client.get("/v1/entries", params={"q": "action:export.completed", "range": "1h"},
                       headers=headers).json()  # fmt: skip
    assert found["total"] >= 1
    meta = found["entries"][0]["metadata"]
    assert meta["format"] == "csv" and meta["filters"]["category"] == "integration"
    rows = sum(e["category"] == "integration" for e in entries)
    assert meta["rows"] == rows == len(list(csv.reader(io.StringIO(text)))) - 1 > 500
    assert meta["from"].startswith(START.strftime("%Y-%m-%dT%H:%M"))


def test_an_export_of_exactly_one_first_page_is_recorded_with_its_rows(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    _, headers = new_account(client)
    ingest(client, headers, make_entries(8, FIRST_PAGE_SIZE, START, NOW - timedelta(minutes=5)))
    refresh(es, settings.index_prefix)
    text = _export(client, headers, "csv").text
    assert len(text.splitlines()) == FIRST_PAGE_SIZE + 1
    refresh(es, settings.index_prefix)
    found = client.get("/v1/entries", params={"q": "action:export.completed", "range": "1h"},
                       headers=headers).json()  # fmt: skip
    assert [e["metadata"]["rows"] for e in found["entries"]] == [FIRST_PAGE_SIZE]


def test_async_job_reports_progress_and_matches_the_download(data: Any, client: TestClient) -> None:
    _, headers, entries = data
    started = client.post("/v1/exports", params={**WINDOW, "format": "csv"}, headers=headers)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["rows_total"] == len(entries) and job["status"] == "running"
    deadline = time.monotonic() + 60
    while job["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(f"/v1/exports/{job['id']}", headers=headers).json()
    assert job["status"] == "done", job
    assert job["rows_done"] == job["rows_total"] == len(entries)
    download = client.get(job["download"], headers=headers)
    assert download.status_code == 200
    assert len(download.content) == job["size"]
    import hashlib

    assert hashlib.sha256(download.content).hexdigest() == job["sha256"]
    assert download.content == _export(client, headers, "csv").content
    _, stranger = new_account(client)
    assert client.get(f"/v1/exports/{job['id']}", headers=stranger).status_code == 404
    assert client.get(job["download"], headers=stranger).status_code == 404
    assert client.get("/v1/exports/exp_nope", headers=headers).status_code == 404


def test_a_job_whose_service_died_reads_failed(
    data: Any, client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account, headers, _ = data
    stale = (datetime.now(UTC) - timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    job_id = "exp_0000000000000000c0ffee01"
    job = {"id": job_id, "account_id": account, "status": "running", "format": "csv",
           "filename": "x.csv", "filters": {}, "rows_done": 10, "rows_total": 100,
           "created_at": stale, "updated_at": stale,
           "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}  # fmt: skip
    es.index(index=f"{settings.index_prefix}-export-jobs", id=job["id"], document=job,
             refresh=True)  # a service killed mid-job leaves exactly this behind  # fmt: skip
    seen = client.get(f"/v1/exports/{job_id}", headers=headers).json()
    assert seen["status"] == "failed" and "interrupted" in seen["error"]
    assert client.get(f"/v1/exports/{job_id}/download", headers=headers).status_code == 409


def test_an_export_releases_its_point_in_time(
    data: Any, client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    _, headers, entries = data
    before = open_search_contexts(es, settings.index_prefix)
    for fmt in ("csv", "xlsx", "ndjson"):
        resp = _export(client, headers, fmt)
        assert int(resp.headers["x-total-count"]) >= len(entries) > 500  # more than a first page
    _export(client, headers, "csv", q="nothingmatchesthis")
    assert open_search_contexts(es, settings.index_prefix) == before


async def _cut_after_the_header(engine_url: str, settings: Settings, account: str) -> list[str]:
    """Export a view of one page, its audit entry taking a while to write, and stop reading the
    download after the header; what the audit entry's writer got done."""
    es = AsyncElasticsearch(engine_url)
    written: list[str] = []

    async def record() -> None:
        await asyncio.sleep(0.3)  # still in flight when the download is cut
        written.append("export.completed")

    try:
        window = {"from": [START.isoformat()], "to": [NOW.isoformat()]}
        filters = parse_view_filters(window, account, "UTC", datetime.now(UTC))
        plan = await plan_export(es, IndexNames(settings.index_prefix), filters, "csv", "desc",
                                 settings.templates_dir)  # fmt: skip
        chunks = export_bytes(plan, record)
        assert (await anext(chunks)).startswith(b"id,timestamp_local")
        await chunks.aclose()  # the client is gone
        return written
    finally:
        await es.close()


def test_a_download_cut_off_after_every_entry_was_read_is_still_recorded(
    client: TestClient, es: Elasticsearch, settings: Settings, engine_url: str
) -> None:
    account, headers = new_account(client)
    ingest(client, headers, make_entries(9, 20, START, NOW - timedelta(minutes=5)))
    refresh(es, settings.index_prefix)
    before = open_search_contexts(es, settings.index_prefix)
    written = asyncio.run(_cut_after_the_header(engine_url, settings, account))
    assert written == ["export.completed"]
    assert open_search_contexts(es, settings.index_prefix) == before
