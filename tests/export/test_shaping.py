"""Shaping a page into export rows: every text cell that a spreadsheet would evaluate is escaped."""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from service.export.shaping import export_columns, local_timestamps, shape_rows
from service.export.writers import CsvWriter
from service.search.entries import present

SOURCE = {
    "id": "-first", "timestamp": "2026-11-26T10:15:00.123Z", "category": "audit", "type": "notice",
    "actor": {"type": "user", "id": "+u_42", "name": "=HYPERLINK(\"x\")", "email": "@jane"},
    "action": "-x.changed", "message": "\tindented",
    "metadata": {"target_name": "=1+1", "ip": "10.0.0.1", "note": "=kept inside the JSON",
                 "target_id": "\rreturn"},
}  # fmt: skip


def test_formula_like_text_is_escaped_in_every_text_column() -> None:
    columns = ["target_type", "target_id", "target_name", "ip"]
    [shaped] = shape_rows([SOURCE], columns, ZoneInfo("Europe/Paris"))
    row = dict(zip(export_columns(columns), shaped, strict=True))
    assert row["id"] == "'-first"
    assert (row["actor_id"], row["actor_name"], row["actor_email"]) == (
        "'+u_42",
        '\'=HYPERLINK("x")',
        "'@jane",
    )
    assert (row["action"], row["message"]) == ("'-x.changed", "'\tindented")
    assert (row["target_name"], row["target_id"]) == ("'=1+1", "'\rreturn")
    assert row["ip"] == "10.0.0.1" and row["target_type"] is None
    assert row["timestamp_local"] == "2026-11-26T11:15:00.123+01:00"
    assert json.loads(row["metadata_other"]) == {"note": "=kept inside the JSON"}


def test_safe_text_and_numbers_are_left_as_they_are() -> None:
    source = {**SOURCE, "id": "e1", "action": "x.changed", "message": "a - b = c",
              "actor": {"type": "system", "id": "billing"}, "category": "credits",
              "metadata": {"credits_used": -0.0, "credits_balance": -12.5}}  # fmt: skip
    [row] = shape_rows([source], ["credits_used", "credits_balance"], ZoneInfo("UTC"))
    assert row[0] == "e1" and row[8:10] == ["x.changed", "a - b = c"]
    assert row[10:12] == [-0.0, -12.5] and row[5:8] == ["billing", None, None]


def test_text_rows_are_the_rows_as_the_csv_writer_writes_them() -> None:
    columns = ["credits_used", "credits_balance", "target_name", "ip", "flag"]
    sources = [SOURCE, {**SOURCE, "id": "e2", "actor": {"type": "system", "id": "billing"},
                        "message": "one, two", "metadata": {"credits_used": 3, "credits_balance":
                        -12.5, "flag": True, "ip": None, "other": [1, "a,b"]}}]  # fmt: skip
    rows = shape_rows(sources, columns, ZoneInfo("UTC"))
    text = shape_rows(sources, columns, ZoneInfo("UTC"), text=True)
    assert text[1][5:8] == ["billing", "", ""] and text[1][10:15] == ["3", "-12.5", "", "", "True"]
    assert all(type(cell) is str for row in text for cell in row)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([export_columns(columns), *rows])
    writer = CsvWriter()
    written = writer.start(export_columns(columns)) + writer.write_rows(text)
    assert written == buffer.getvalue().encode()


@pytest.mark.parametrize("zone", ["Africa/Monrovia", "UTC", "Europe/Paris", "Asia/Kolkata",
                                  "Australia/Lord_Howe", "America/St_Johns"])  # fmt: skip
def test_local_timestamps_are_the_apis_local_time_even_with_an_offset_of_seconds(zone: str) -> None:
    """Monrovia was 44 min 30 s behind UTC until 1972: the export's local time carries the
    seconds of its offset, as the API's does (it wrote -00:45, and a wall time 30 s off)."""
    stamps = ["1971-11-04T17:59:48.628Z", "1972-05-01T00:00:00.000Z", "2026-03-29T01:30:00.001Z",
              "2026-10-25T00:59:59.999Z", "1970-01-01T00:00:00.000Z"]  # fmt: skip
    tz = ZoneInfo(zone)
    shown = [present({"timestamp": s}, cast(Any, SimpleNamespace(tz=tz)))["local_time"]
             for s in stamps]  # fmt: skip
    assert local_timestamps(stamps, tz) == shown
