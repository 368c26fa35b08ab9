"""Shaping entries into export rows (lists in the columns' order), one bounded slice at a time.

Columns (the contract's order): ``id``, ``timestamp_local`` (ISO 8601 with the offset of the
export's timezone — the same text as ``local_time`` in the API), ``timestamp_utc``, ``category``,
``type``, ``actor_id``, ``actor_name``, ``actor_email``, ``action``, ``message``, the known
metadata keys of the categories in the export, ``metadata_other`` (JSON of the other keys), then
``entry_digest``: the digest of the entry's canonical form, recomputed from what the engine holds,
which the account's log binds (the cells themselves may be formula-guarded, cut or typed, so they
cannot be canonicalised again).
Text cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return are prefixed with an
apostrophe so that no spreadsheet evaluates them.

Rows are plain lists built in one pass per entry; pandas converts the timestamps, vectorised over
a whole page at once. The writers take the rows as they are (CSV through the standard library's
C writer): a pandas frame per page cost more to build and to write than the rows themselves.
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from service.integrity.canonical import entry_digest

BASE_COLUMNS = (
    "id",
    "timestamp_local",
    "timestamp_utc",
    "category",
    "type",
    "actor_id",
    "actor_name",
    "actor_email",
    "action",
    "message",
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_columns(metadata_columns: list[str]) -> list[str]:
    return [*BASE_COLUMNS, *metadata_columns, "metadata_other", "entry_digest"]


def metadata_columns_of(columns: list[str]) -> list[str]:
    """The known metadata columns among an export's ``columns``."""
    return columns[len(BASE_COLUMNS) : -2]


def local_timestamps(utc: list[str], tz: ZoneInfo) -> list[str]:
    """``YYYY-MM-DDTHH:MM:SS.mmm+HH:MM`` in ``tz``, vectorised (numpy formats the wall time);
    an offset of seconds too (Monrovia's -00:44:30 until 1972) as ``+HH:MM:SS``, as Python's
    ``isoformat`` writes it (the API's ``local_time``)."""
    if not utc:
        return []
    instants = pd.to_datetime(pd.Series(utc, dtype=object), utc=True, format="ISO8601")
    wall = instants.dt.tz_convert(tz).dt.tz_localize(None)
    offsets = (wall - instants.dt.tz_localize(None)).dt.total_seconds().round().astype(int)
    text = np.datetime_as_string(wall.to_numpy(dtype="datetime64[ms]"), unit="ms")
    names = {s: _offset(s) for s in offsets.unique()}
    return [t + names[s] for t, s in zip(text.tolist(), offsets.tolist(), strict=True)]


def _offset(seconds: int) -> str:
    sign, size = "+" if seconds >= 0 else "-", abs(int(seconds))
    text = f"{sign}{size // 3600:02d}:{size % 3600 // 60:02d}"
    return text + (f":{size % 60:02d}" if size % 60 else "")


class RowShaper:
    """Shapes ``_source`` documents into export rows for a fixed list of metadata columns.

    One pass per entry: each value goes straight to its cell (a known metadata key to its column,
    the other keys into ``metadata_other``). A missing value is None and numbers stay numbers;
    with ``text``, every cell is a string instead: ``""`` for a missing value, a number's ``str``
    (what the CSV writer would write for it, without its per-cell conversions).
    """

    def __init__(self, metadata_columns: list[str], text: bool = False) -> None:
        self.slots = {key: i for i, key in enumerate(metadata_columns, len(BASE_COLUMNS))}
        self.other = len(BASE_COLUMNS) + len(metadata_columns)
        self.text = text
        self.empty = "" if text else None
        self.blank: list[Any] = [self.empty] * (self.other + 2)

    def rows(
        self, sources: list[dict[str, Any]], local: list[str], digests: list[str] | None = None
    ) -> list[list[Any]]:
        """The rows of ``sources``; ``local`` holds their ``local_timestamps`` and ``digests``
        their entry digests (computed here when not given), in order."""
        slots, other, blank, risky = self.slots, self.other, self.blank, _RISKY
        text, empty = self.text, self.empty
        if digests is None:
            digests = [entry_digest(s) for s in sources]
        rows = []
        for source, when, digest in zip(sources, local, digests, strict=True):
            actor = source.get("actor") or {}
            row = blank.copy()
            row[0] = _text(source["id"])
            row[1] = when
            row[2] = source["timestamp"]
            row[3] = source["category"]
            row[4] = source["type"]
            row[5] = _text(actor.get("id", empty))
            row[6] = _text(actor.get("name", empty))
            row[7] = _text(actor.get("email", empty))
            row[8] = _text(source["action"])
            row[9] = _text(source.get("message", ""))
            rest: dict[str, Any] = {}
            for key, value in (source.get("metadata") or {}).items():
                slot = slots.get(key)
                if slot is None:
                    rest[key] = value
                elif type(value) is str:
                    row[slot] = ("'" + value) if value[:1] in risky else value
                elif value is None:
                    continue  # the blank cell
                elif isinstance(value, dict | list):  # unexpected in a known key: JSON text
                    row[slot] = _JSON.encode(value)
                else:
                    row[slot] = str(value) if text else value
            if rest:  # JSON: starts with "{"
                row[other] = _JSON_SORTED.encode(rest)
            row[other + 1] = digest
            rows.append(row)
        return rows


def shape_rows(
    sources: list[dict[str, Any]],
    metadata_columns: list[str],
    tz: ZoneInfo,
    text: bool = False,
) -> list[list[Any]]:
    """``_source`` documents as export rows, in the columns' order."""
    local = local_timestamps([s["timestamp"] for s in sources], tz)
    return RowShaper(metadata_columns, text).rows(sources, local)


_RISKY = frozenset(FORMULA_START)
_JSON = json.JSONEncoder(ensure_ascii=False)
_JSON_SORTED = json.JSONEncoder(ensure_ascii=False, sort_keys=True)
"""Built once: ``json.dumps`` with these options builds an encoder per call (0.6 of 2 µs)."""


def _text(value: Any) -> Any:
    """Formula-like text prefixed with an apostrophe, so that no spreadsheet evaluates it."""
    return ("'" + value) if type(value) is str and value[:1] in _RISKY else value
