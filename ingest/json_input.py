"""Reading the JSON that clients send: one parser for every way in, nothing silently changed.

orjson reads every body, NDJSON line and imported record. It refuses what is not JSON (``NaN``,
``Infinity``, invalid UTF-8, lone surrogates), but reads an integer beyond 64 bits as a rounded
double; such an integer is refused instead, naming the problem (send it as a string). The exact
check runs only where a long run of digits appears at all, so ordinary input pays one scan.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS = re.compile(rb"\d{19}")
"""Every integer with fewer digits fits in 64 bits, so orjson reads it exactly."""
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


class TooLongInteger(ValueError):
    pass


def _exact_int(text: str) -> int:
    value = int(text)
    if not _INT64_MIN <= value <= _UINT64_MAX:
        shown = text if len(text) <= 24 else f"{text[:21]}..."
        raise TooLongInteger(f"the integer {shown} does not fit in 64 bits; send it as a string")
    return value


def loads(data: bytes | str) -> Any:
    """The JSON value of ``data``; ``ValueError`` (with the reason) when it is not valid JSON or
    holds an integer that does not fit in 64 bits."""
    value = orjson.loads(data)
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_DIGITS.search(raw):
        json.loads(raw, parse_int=_exact_int)  # raises only for an integer orjson rounded
    return value
