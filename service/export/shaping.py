"""Shaping entries into export rows (tuples in the columns' order), one bounded slice at a time.

Columns (the contract's order): ``id``, ``timestamp_local`` (ISO 8601 with the offset of the
export's timezone — the same text as ``local_time`` in the API), ``timestamp_utc``, ``category``,
``type``, ``actor_id``, ``actor_name``, ``actor_email``, ``action``, ``message``, the known
metadata keys of the categories in the export, then ``metadata_other`` (JSON of the other keys).
Text cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return are prefixed with an
apostrophe so that no spreadsheet evaluates them.

Rows are built column by column from plain lists (pandas converts the timestamps, vectorised);
the writers take them as they are (CSV through the standard library's C writer): a pandas frame
per page cost more to build and to write than the rows themselves.
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

BASE_COLUMNS = ("id", "timestamp_local", "timestamp_utc", "category", "type", "actor_id",
                "actor_name", "actor_email", "action", "message")  # fmt: skip
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_columns(metadata_columns: list[str]) -> list[str]:
    return [*BASE_COLUMNS, *metadata_columns, "metadata_other"]


def local_timestamps(utc: list[str], tz: ZoneInfo) -> list[str]:
    """``YYYY-MM-DDTHH:MM:SS.mmm+HH:MM`` in ``tz``, vectorised (numpy formats the wall time)."""
    if not utc:
        return []
    instants = pd.to_datetime(pd.Series(utc, dtype=object), utc=True, format="ISO8601")
    wall = instants.dt.tz_convert(tz).dt.tz_localize(None)
    offsets = ((wall - instants.dt.tz_localize(None)).dt.total_seconds() // 60).astype(int)
    text = np.datetime_as_string(wall.to_numpy(dtype="datetime64[ms]"), unit="ms")
    names = {m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
             for m in offsets.unique()}  # fmt: skip
    return [t + names[m] for t, m in zip(text.tolist(), offsets.tolist(), strict=True)]


def _split_metadata(
    sources: list[dict[str, Any]], metadata_columns: list[str]
) -> tuple[dict[str, list[Any]], list[str | None]]:
    """One pass over each entry's own metadata: known keys by column, the rest as JSON."""
    known = set(metadata_columns)
    size = len(sources)
    columns: dict[str, list[Any]] = {k: [None] * size for k in metadata_columns}
    other: list[str | None] = [None] * size
    for i, source in enumerate(sources):
        rest: dict[str, Any] = {}
        for key, value in (source.get("metadata") or {}).items():
            if key in known:
                if type(value) is str:
                    if value.startswith(FORMULA_START):
                        value = "'" + value
                elif isinstance(value, dict | list):  # unexpected in a known key: JSON text
                    value = json.dumps(value, ensure_ascii=False)
                columns[key][i] = value
            else:
                rest[key] = value
        if rest:
            other[i] = json.dumps(rest, ensure_ascii=False, sort_keys=True)
    return columns, other


def shape_rows(
    sources: list[dict[str, Any]],
    metadata_columns: list[str],
    tz: ZoneInfo,
) -> list[tuple[Any, ...]]:
    """``_source`` documents as export rows (numbers stay numbers, a missing value is None)."""
    actors = [s.get("actor", {}) for s in sources]
    metadata, other = _split_metadata(sources, metadata_columns)
    utc = [s["timestamp"] for s in sources]
    columns: list[list[Any]] = [
        _texts([s["id"] for s in sources]),
        local_timestamps(utc, tz),
        utc,
        [s["category"] for s in sources],
        [s["type"] for s in sources],
        _texts([a.get("id") for a in actors]),
        _texts([a.get("name") for a in actors]),
        _texts([a.get("email") for a in actors]),
        _texts([s["action"] for s in sources]),
        _texts([s.get("message", "") for s in sources]),
        *(metadata[key] for key in metadata_columns),
        other,  # JSON: starts with "{"
    ]
    return list(zip(*columns, strict=True))


def _texts(values: list[Any]) -> list[Any]:
    """Formula-like text prefixed with an apostrophe, so that no spreadsheet evaluates it."""
    risky = FORMULA_START
    return [("'" + v) if type(v) is str and v.startswith(risky) else v for v in values]
