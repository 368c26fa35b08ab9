"""Reading the JSON that clients send: one parser for every way in, nothing silently changed.

orjson reads every body, NDJSON line and imported record. It refuses what is not JSON (``NaN``,
``Infinity``, invalid UTF-8, lone surrogates), but reads an integer beyond 64 bits as a rounded
double; such an integer is refused instead, naming the problem (send it as a string). The exact
check runs only where a long number appears at all; ordinary input pays one fast scan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import orjson

_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19
"""Translated, any run of 19 digits is a run of 19 zeros: found far faster than by a pattern."""
_LONG_NUMBER = re.compile(rb"[:\[,]\s*-?\d{19,}(?=[\s,\]}]|$)")
"""A number of 19 digits or more where a value starts (every integer with fewer digits fits in
64 bits, so orjson reads it exactly). Digits inside text, such as a LinkedIn URN, do not match."""
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_BOM = b"\xef\xbb\xbf"


class TooLongInteger(ValueError):
    pass


def _exact_int(text: str) -> int:
    value = int(text)
    if not _INT64_MIN <= value <= _UINT64_MAX:
        shown = text if len(text) <= 24 else f"{text[:21]}..."
        raise TooLongInteger(f"the integer {shown} does not fit in 64 bits; send it as a string")
    return value


def lines(body: bytes) -> Iterator[tuple[bytes, bool]]:
    """Each line of ``body`` (split at ``\n``) and whether it has a run of 19 digits: the body
    translated once rather than each line apart (see ``loads``' ``short_digits``)."""
    translated = body.translate(_DIGITS_AS_ZERO).split(b"\n")
    return zip(body.split(b"\n"), [_NINETEEN_DIGITS in t for t in translated], strict=True)


def loads(data: bytes | str, *, short_digits: bool = False) -> Any:
    """The JSON value of ``data`` (a leading UTF-8 byte-order mark is skipped); ``ValueError``
    (with the reason) when it is not valid JSON or holds an integer that does not fit in 64 bits.
    ``short_digits``: the caller knows ``data`` has no run of 19 digits (no integer to check)."""
    raw = data.encode() if isinstance(data, str) else data
    raw = raw.removeprefix(_BOM)
    value = orjson.loads(raw)
    if short_digits:
        return value
    if _NINETEEN_DIGITS in raw.translate(_DIGITS_AS_ZERO) and _LONG_NUMBER.search(raw):
        try:
            json.loads(raw, parse_int=_exact_int)  # raises only for an integer orjson rounded
        except RecursionError as e:  # orjson reads deeper nesting than the standard library
            raise ValueError("nested too deeply") from e
    return value
