"""Shaping a page into export rows: every text cell that a spreadsheet would evaluate is escaped."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from service.export.shaping import export_columns, shape_rows

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
