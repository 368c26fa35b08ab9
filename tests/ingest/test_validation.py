"""Validation of one entry, without the engine: addresses, timestamps, integer ranges."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.validation import Rejected, validate_entry

TEMPLATES = Path(__file__).resolve().parents[2] / "index_templates"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _api_entry(**fields: object) -> dict[str, object]:
    return {"category": "api", "action": "api.request", "actor": {"type": "system", "id": "s"},
            "timestamp": "2026-11-26T10:15:00.123Z", **fields}  # fmt: skip


@pytest.mark.parametrize("ip", ["10.0.0.1", "2001:db8::1", "::ffff:10.0.0.1"])
def test_addresses_are_accepted(ip: str) -> None:
    entry = validate_entry(_api_entry(metadata={"ip": ip}), "acme", NOW, 300, TEMPLATES)
    assert entry.source["metadata"]["ip"] == ip


@pytest.mark.parametrize("ip", ["999.1.1.1", "10.0.0", "01.2.3.4", "1" * 65, "::1" + " " * 70, 42])
def test_what_is_not_an_address_is_rejected_naming_the_field(ip: object) -> None:
    with pytest.raises(Rejected) as caught:
        validate_entry(_api_entry(metadata={"ip": ip}), "acme", NOW, 300, TEMPLATES)
    assert caught.value.field == "metadata.ip"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("2026-11-26T10:15:00.123Z", "2026-11-26T10:15:00.123Z"),
     ("2026-11-26t10:15:00.1z", "2026-11-26T10:15:00.100Z"),
     ("2026-11-26T11:15:00.123456789+01:00", "2026-11-26T10:15:00.123Z"),
     ("2026-11-26T10:15:00-00:00", "2026-11-26T10:15:00.000Z")],
)  # fmt: skip
def test_timestamps_are_stored_in_utc_to_the_millisecond(sent: str, stored: str) -> None:
    entry = validate_entry(_api_entry(timestamp=sent), "acme", NOW, 300, TEMPLATES)
    assert entry.source["timestamp"] == stored
    assert entry.source["ingested_at"] == "2026-11-26T12:00:00.000Z"


@pytest.fixture
def templates_with_a_minimum(tmp_path: Path) -> Path:
    """The templates, with ``metadata.status_code`` (an integer) given a minimum of 1.5."""
    shutil.copytree(TEMPLATES, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "entries-meta-api.json"
    body = json.loads(path.read_text())
    fields = body["template"]["mappings"]["properties"]["metadata"]["properties"]
    assert fields["status_code"]["type"] == "integer"
    fields["status_code"]["meta"] = {"min": "1.5"}
    path.write_text(json.dumps(body))
    return tmp_path


@pytest.mark.parametrize(
    ("value", "problem"),
    [(2, None), (2**31 - 1, None), (None, None), (1, "must be >= 1.5"), (-5, "must be >= 1.5"),
     (2**31, "is out of range"), (True, "must be an integer"), (2.0, "must be an integer"),
     ("2", "must be an integer")],
)  # fmt: skip
def test_integer_metadata_keeps_its_range_and_minimum(
    templates_with_a_minimum: Path, value: object, problem: str | None
) -> None:
    raw = _api_entry(metadata={"status_code": value})
    if problem is None:
        entry = validate_entry(raw, "acme", NOW, 300, templates_with_a_minimum)
        assert entry.source["metadata"] == {"status_code": value}
        return
    with pytest.raises(Rejected) as caught:
        validate_entry(raw, "acme", NOW, 300, templates_with_a_minimum)
    assert (caught.value.field, caught.value.message) == ("metadata.status_code", problem)


@pytest.mark.parametrize(
    "sent", ["2026-03-31T24:00:00.000Z", "2026-03-31T24:00:00Z", "2026-11-26T10:15:00Z\n"]
)
def test_an_hour_past_23_or_a_final_newline_is_not_a_timestamp(sent: str) -> None:
    with pytest.raises(Rejected) as caught:
        validate_entry(_api_entry(timestamp=sent), "acme", NOW, 300, TEMPLATES)
    assert caught.value.field == "timestamp"
    assert "RFC 3339" in caught.value.message


@pytest.mark.parametrize(
    "sent", ["2026-11-26T10:15:00+00:99", "2026-11-26T10:15:00+00:60", "2026-11-26T10:15:00-01:75",
             "2026-11-26T10:15:00+24:00", "2026-11-26T10:15:00.5-99:00"],
)  # fmt: skip
def test_an_offset_past_23_hours_or_59_minutes_is_not_a_timestamp(sent: str) -> None:
    with pytest.raises(Rejected) as caught:
        validate_entry(_api_entry(timestamp=sent), "acme", NOW, 300, TEMPLATES)
    assert caught.value.field == "timestamp"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("2026-11-26T23:59:00+23:59", "2026-11-26T00:00:00.000Z"),
     ("2026-11-25T00:01:00-23:59", "2026-11-26T00:00:00.000Z")],
)  # fmt: skip
def test_the_widest_offsets_are_read(sent: str, stored: str) -> None:
    entry = validate_entry(_api_entry(timestamp=sent), "acme", NOW, 300, TEMPLATES)
    assert entry.source["timestamp"] == stored


def _nested(levels: int) -> object:
    value: object = "leaf"
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


def test_metadata_values_nest_at_most_64_arrays_or_objects() -> None:
    fits = _api_entry(metadata={"x": _nested(64), "wide": [[1, 2]] * 1000})
    assert validate_entry(fits, "acme", NOW, 300, TEMPLATES).source["metadata"]["x"] == _nested(64)
    for deep in ([1, [2, _nested(63)]], _nested(65), _nested(1000)):
        with pytest.raises(Rejected) as caught:
            validate_entry(_api_entry(metadata={"ok": 1, "x": deep}), "acme", NOW, 300, TEMPLATES)
        assert caught.value.field == "metadata.x"
        assert "nested more than 64 levels" in caught.value.message
