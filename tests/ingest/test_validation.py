"""Validation of one entry, without the engine: addresses and timestamps."""

from __future__ import annotations

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
