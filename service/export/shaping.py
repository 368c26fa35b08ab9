"""Shaping a page of entries into export rows with pandas, one bounded chunk at a time.

Columns (the contract's order): ``id``, ``timestamp_local`` (ISO 8601 with the offset of the
export's timezone — the same text as ``local_time`` in the API), ``timestamp_utc``, ``category``,
``type``, ``actor_id``, ``actor_name``, ``actor_email``, ``action``, ``message``, the known
metadata keys of the categories in the export, then ``metadata_other`` (JSON of the other keys).
Text cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return are prefixed with an
apostrophe so that no spreadsheet evaluates them.
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

BASE_COLUMNS = ("id", "timestamp_local", "timestamp_utc", "category", "type", "actor_id",
                "actor_name", "actor_email", "action", "message")  # fmt: skip
FORMULA_START = r"^[=+\-@\t\r]"


def export_columns(metadata_columns: list[str]) -> list[str]:
    return [*BASE_COLUMNS, *metadata_columns, "metadata_other"]


def local_timestamps(utc: pd.Series, tz: ZoneInfo) -> pd.Series:
    """``YYYY-MM-DDTHH:MM:SS.mmm+HH:MM`` in ``tz``, vectorised."""
    local = pd.to_datetime(utc, utc=True, format="ISO8601").dt.tz_convert(tz)
    millis = (local.dt.microsecond // 1000).astype(str).str.zfill(3)
    offset = local.dt.strftime("%z")
    return local.dt.strftime("%Y-%m-%dT%H:%M:%S.") + millis + offset.str[:3] + ":" + offset.str[3:]


def _other(metadata: dict[str, Any], known: set[str]) -> str | None:
    rest = {k: v for k, v in metadata.items() if k not in known}
    return json.dumps(rest, ensure_ascii=False, sort_keys=True) if rest else None


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix formula-like text with an apostrophe, in every text column."""
    for column in frame.columns:
        values = frame[column]
        is_text = values.map(lambda v: isinstance(v, str))
        if not is_text.any():
            continue
        text = values[is_text].astype(str)
        risky = text.str.contains(FORMULA_START, regex=True)
        if risky.any():
            frame.loc[risky[risky].index, column] = "'" + text[risky]
    return frame


def shape_page(
    sources: list[dict[str, Any]], metadata_columns: list[str], tz: ZoneInfo
) -> pd.DataFrame:
    """One page of ``_source`` documents as export rows (object columns: ints stay ints)."""
    known = set(metadata_columns)
    actors = [s.get("actor", {}) for s in sources]
    metadata = [s.get("metadata") or {} for s in sources]
    utc = pd.Series([s["timestamp"] for s in sources], dtype=object)
    data: dict[str, pd.Series] = {
        "id": pd.Series([s["id"] for s in sources], dtype=object),
        "timestamp_local": local_timestamps(utc, tz).astype(object) if sources else utc,
        "timestamp_utc": utc,
        "category": pd.Series([s["category"] for s in sources], dtype=object),
        "type": pd.Series([s["type"] for s in sources], dtype=object),
        "actor_id": pd.Series([a.get("id") for a in actors], dtype=object),
        "actor_name": pd.Series([a.get("name") for a in actors], dtype=object),
        "actor_email": pd.Series([a.get("email") for a in actors], dtype=object),
        "action": pd.Series([s["action"] for s in sources], dtype=object),
        "message": pd.Series([s.get("message", "") for s in sources], dtype=object),
    }
    for key in metadata_columns:
        data[key] = pd.Series([_cell(m.get(key)) for m in metadata], dtype=object)
    data["metadata_other"] = pd.Series([_other(m, known) for m in metadata], dtype=object)
    return neutralise(pd.DataFrame(data, columns=export_columns(metadata_columns)))


def _cell(value: Any) -> Any:
    """Scalars as they are; lists and objects (unexpected in a known key) as JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value
