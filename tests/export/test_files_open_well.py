"""Export files that open well: XLSX date-time columns, frozen header, autofilter and widths; a CSV
byte-order mark on request; the ``Export info`` sheet and the export's audit entry in words.

The account is in America/New_York and the entries straddle the end of daylight saving time
(01:30 happens twice on Nov 2, 2025): expected wall times come from zoneinfo, not from the code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from elasticsearch import Elasticsearch
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from starlette.testclient import TestClient

from service.config import Settings
from service.export.in_words import filters_in_words, window_in_words
from service.export.writers import XlsxWriter
from service.search.filters import parse_view_filters
from tests.helpers import entry, new_account, refresh

TZ = ZoneInfo("America/New_York")
WINDOW = {"from": "2025-11-01", "to": "2025-11-03"}  # local midnights
FILTERS = {"category": "webhook", "type": "error", "q": "timeout"}
IN_WORDS = 'Source: Webhook; Type: Error; Search: "timeout"'
WINDOW_IN_WORDS = "Nov 1, 2025 00:00 to Nov 3, 2025 00:00 (America/New_York)"
MATCHING = ["2025-11-01T04:00:00.000Z", "2025-11-02T05:30:00.123Z", "2025-11-02T06:30:00.456Z",
            "2025-11-02T23:59:59.999Z", "2025-11-03T04:59:59.999Z"]  # fmt: skip
BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def data(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> tuple[dict[str, str], list[str]]:
    _, headers = new_account(client, timezone="America/New_York")
    entries = [entry(id=f"m{n}", timestamp=ts, message=f"read timeout #{n}")
               for n, ts in enumerate(MATCHING)]  # fmt: skip
    entries += [
        entry(id="notice", timestamp=MATCHING[1], type="notice", message="timeout"),
        entry(id="other-text", timestamp=MATCHING[1], message="connection refused"),
        entry(id="audit", timestamp=MATCHING[1], category="audit", message="timeout",
              action="settings.updated", metadata={}),
        entry(id="too-late", timestamp="2025-11-03T05:00:00.000Z", message="timeout"),
    ]  # fmt: skip
    resp = client.post("/v1/entries", json={"entries": entries}, headers=headers)
    assert resp.json()["created"] == len(entries), resp.text
    refresh(es, settings.index_prefix)
    return headers, [f"m{n}" for n in reversed(range(len(MATCHING)))]  # newest first


def _get(client: TestClient, headers: dict[str, str], **params: str) -> Any:
    resp = client.get("/v1/export", params={**WINDOW, **FILTERS, **params}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp


def test_xlsx_has_real_date_times_beside_the_text_columns(data: Any, client: TestClient) -> None:
    headers, ids = data
    text_header = next(csv.reader(io.StringIO(_get(client, headers, format="csv").text)))
    book = load_workbook(io.BytesIO(_get(client, headers, format="xlsx").content))
    sheet = book["Entries"]
    rows = list(sheet.iter_rows())
    header = [c.value for c in rows[0]]
    assert header == [*text_header, "datetime_local", "datetime_utc"]  # v1's columns kept first
    local_at, utc_at = header.index("datetime_local"), header.index("datetime_utc")
    assert [r[0].value for r in rows[1:]] == ids
    for row in rows[1:]:
        utc = datetime.fromisoformat(MATCHING[int(row[0].value[1:])].replace("Z", "+00:00"))
        assert row[header.index("timestamp_utc")].value == MATCHING[int(row[0].value[1:])]
        local, in_utc = row[local_at], row[utc_at]
        assert isinstance(local.value, datetime) and isinstance(in_utc.value, datetime)
        assert local.value == utc.astimezone(TZ).replace(tzinfo=None)
        assert in_utc.value == utc.astimezone(UTC).replace(tzinfo=None)
        assert local.number_format == in_utc.number_format == "yyyy-mm-dd hh:mm:ss.000"
    twice = [r[local_at].value for r in rows[1:] if r[0].value in ("m1", "m2")]
    assert [t.strftime("%H:%M") for t in twice] == ["01:30", "01:30"]  # EST, then EDT
    assert rows[0][0].font.b and "America/New_York" in rows[0][local_at].comment.text


def test_xlsx_header_is_frozen_filtered_and_columns_are_sized(
    data: Any, client: TestClient
) -> None:
    headers, ids = data
    book = load_workbook(io.BytesIO(_get(client, headers, format="xlsx").content))
    sheet = book["Entries"]
    header = [c.value for c in next(sheet.iter_rows())]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{get_column_letter(len(header))}{len(ids) + 1}"

    def width(name: str) -> float:
        return float(sheet.column_dimensions[get_column_letter(header.index(name) + 1)].width)

    assert width("message") >= 60
    assert 20 <= width("id") <= 40 and 20 <= width("actor_id") <= 40
    assert width("message") > width("url") > width("status_code")
    assert width("datetime_local") >= len("2025-11-02 01:30:00.123")


def test_export_info_gives_the_window_in_the_timezone_and_the_filters_in_words(
    data: Any, client: TestClient
) -> None:
    headers, ids = data
    book = load_workbook(io.BytesIO(_get(client, headers, format="xlsx").content))
    info = {r[0]: r[1] for r in book["Export info"].iter_rows(values_only=True)}
    assert info["filters"] == IN_WORDS
    assert info["window"] == WINDOW_IN_WORDS
    assert (info["from"], info["to"]) == ("2025-11-01T04:00:00.000Z", "2025-11-03T05:00:00.000Z")
    assert info["timezone"] == "America/New_York" and info["row count"] == len(ids)
    assert book["Export info"].freeze_panes is None


def test_csv_starts_with_a_byte_order_mark_only_when_asked(data: Any, client: TestClient) -> None:
    headers, ids = data
    plain = _get(client, headers, format="csv").content
    assert not plain.startswith(BOM) and plain.startswith(b"id,timestamp_local,")
    assert _get(client, headers, format="csv", bom="false").content == plain
    marked = _get(client, headers, format="csv", bom="true").content
    assert marked == BOM + plain
    rows = list(csv.DictReader(io.StringIO(marked.decode("utf-8-sig"), newline="")))
    assert [r["id"] for r in rows] == ids
    assert not _get(client, headers, format="ndjson", bom="true").content.startswith(BOM)
    assert _get(client, headers, format="xlsx", bom="true").content.startswith(b"PK")


def _manifest(client: TestClient, headers: dict[str, str], export_id: str) -> dict[str, Any]:
    for _ in range(200):
        resp = client.get(f"/v1/exports/{export_id}/manifest", headers=headers)
        if resp.status_code == 200:
            return dict(resp.json())
        assert resp.status_code == 202, resp.text
        time.sleep(0.3)
    raise AssertionError("the manifest was not signed")


def _job_file(client: TestClient, headers: dict[str, str], **kwargs: Any) -> tuple[bytes, str]:
    started = client.post("/v1/exports", headers=headers, **kwargs)
    assert started.status_code == 202, started.text
    job = started.json()
    for _ in range(300):
        if job["status"] != "running":
            break
        time.sleep(0.2)
        job = client.get(f"/v1/exports/{job['id']}", headers=headers).json()
    assert job["status"] == "done", job
    return client.get(job["download"], headers=headers).content, job["id"]


def test_a_byte_order_mark_is_in_the_job_file_and_its_manifest(
    data: Any, client: TestClient
) -> None:
    headers, _ = data
    plain = _get(client, headers, format="csv").content
    by_query, _ = _job_file(client, headers, params={**WINDOW, **FILTERS, "bom": "true"})
    by_body, job_id = _job_file(client, headers, json={**WINDOW, **FILTERS, "bom": True})
    assert by_query == by_body == BOM + plain
    manifest = _manifest(client, headers, job_id)
    assert manifest["file_sha256"] == hashlib.sha256(by_body).hexdigest()
    assert manifest["file_bytes"] == len(by_body)
    download = _get(client, headers, format="csv", bom="true")
    signed = _manifest(client, headers, download.headers["x-export-id"])
    assert signed["file_sha256"] == hashlib.sha256(download.content).hexdigest()


def test_a_bad_bom_is_a_400_naming_it(data: Any, client: TestClient) -> None:
    headers, _ = data
    for value in ("yes", "1", "TRUE", ""):
        resp = client.get("/v1/export", params={"format": "csv", "bom": value}, headers=headers)
        assert resp.status_code == 400 and resp.json()["error"]["field"] == "bom", resp.text
        resp = client.post("/v1/exports", params={"bom": value}, headers=headers)
        assert resp.status_code == 400 and resp.json()["error"]["field"] == "bom", resp.text
    for body in ({"bom": 1}, {"bom": "maybe"}, {"bom": None}):
        resp = client.post("/v1/exports", json=body, headers=headers)
        assert resp.status_code == 400 and resp.json()["error"]["field"] == "bom", resp.text


def _audit_entry(client: TestClient, headers: dict[str, str], export_id: str) -> dict[str, Any]:
    params = {"action": "export.completed", "range": "1h", "size": 200}
    found = client.get("/v1/entries", headers=headers, params=params)
    assert found.status_code == 200, found.text
    [recorded] = [e for e in found.json()["entries"] if e["metadata"]["export_id"] == export_id]
    return dict(recorded)


def test_the_exports_audit_entry_reads_like_a_person_wrote_it(
    data: Any, client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    headers, ids = data
    export_id = _get(client, headers, format="csv").headers["x-export-id"]
    refresh(es, settings.index_prefix)
    recorded = _audit_entry(client, headers, export_id)
    who = recorded["actor"]["name"]
    assert recorded["message"] == (
        f"{who} exported {len(ids)} entries as CSV (download) from {WINDOW_IN_WORDS}. "
        f"Filters: {IN_WORDS}"
    )
    meta = recorded["metadata"]  # the machine-readable facts, as they were
    assert (meta["from"], meta["to"]) == ("2025-11-01T04:00:00.000Z", "2025-11-03T05:00:00.000Z")
    assert meta["filters"]["category"] == "webhook" and meta["filters"]["q"] == "timeout"
    assert meta["rows"] == len(ids) and meta["format"] == "csv"
    assert meta["from"] not in recorded["message"] and "{" not in recorded["message"]


def test_an_export_with_filters_too_long_for_a_message_is_still_recorded(
    data: Any, client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    headers, _ = data
    actors = [f"{n:02d}" + "a" * 254 for n in range(50)]  # 12,800 characters of filters
    resp = client.get("/v1/export", params={"format": "csv", "actor": actors}, headers=headers)
    assert resp.status_code == 200 and resp.text.startswith("id,"), resp.text
    refresh(es, settings.index_prefix)
    recorded = _audit_entry(client, headers, resp.headers["x-export-id"])
    assert recorded["message"].endswith("…") and len(recorded["message"]) <= 10_000
    assert recorded["message"].split("Filters: ")[1].startswith(f"Actor: {actors[0]}, ")
    assert len(recorded["metadata"]["filters"]["actor"]) == 50


def test_every_filter_in_words() -> None:
    params = {"category": ["integration,webhook"], "type": ["warning", "error"], "q": ["-x"],
              "provider": ["hubspot"], "actor": ["u_1"], "action": ["webhook.*"]}  # fmt: skip
    filters = parse_view_filters(params, "acme", "Europe/Paris", datetime.now(UTC))
    assert filters_in_words(filters) == (
        "Source: Integration, Webhook; Type: Warning, Error; Provider: HubSpot; Actor: u_1; "
        'Action: webhook.*; Search: "-x"'
    )
    phrase = parse_view_filters({"q": ['"connection reset" type:error']}, "acme", "UTC",
                                datetime.now(UTC))  # fmt: skip
    assert filters_in_words(phrase) == 'Search: "connection reset" type:error'
    assert filters_in_words(parse_view_filters({}, "acme", "UTC", datetime.now(UTC))) == "none"
    everything = parse_view_filters({"range": ["all"]}, "acme", "Asia/Kolkata", datetime.now(UTC))
    assert window_in_words(everything.window, everything.tz).startswith("the first entry to ")


def test_every_sheet_of_a_workbook_is_laid_out(tmp_path: Any) -> None:
    writer = XlsxWriter(rows_per_sheet=2, zone_name="Asia/Kolkata")
    columns = ["id", "timestamp_local", "timestamp_utc", "message"]
    writer.start(columns)
    writer.write_rows([[f"e{n}", "2026-03-29T07:30:00.001+05:30", "2026-03-29T02:00:00.001Z", "m"]
                       for n in range(3)])  # fmt: skip
    book = load_workbook(io.BytesIO(b"".join(writer.finish({"row count": 3}))))
    assert book.sheetnames == ["Entries", "Entries 2", "Export info"]
    assert [book[n].auto_filter.ref for n in book.sheetnames[:2]] == ["A1:F3", "A1:F2"]
    assert [book[n].freeze_panes for n in book.sheetnames[:2]] == ["A2", "A2"]
    last = book["Entries 2"]["E2"].value, book["Entries 2"]["F2"].value
    assert last == (datetime(2026, 3, 29, 7, 30, 0, 1000), datetime(2026, 3, 29, 2, 0, 0, 1000))
    plain = XlsxWriter()
    plain.start(["n", "text"])  # no timestamps: no date-time columns
    plain.write_rows([[1, "a"]])
    sheet = load_workbook(io.BytesIO(b"".join(plain.finish({}))))["Entries"]
    assert [c.value for c in sheet[1]] == ["n", "text"] and sheet.auto_filter.ref == "A1:B2"
