"""The canonical form of an entry, and its digest: what the account's log binds.

The canonical form is the JSON Canonicalization Scheme (RFC 8785): object members sorted by the
UTF-16 code units of their names, no whitespace, strings escaped as ECMAScript's
``JSON.stringify`` does, numbers written as ECMAScript writes an IEEE 754 double. One rule goes
beyond RFC 8785, which is defined for I-JSON only: an integer whose magnitude exceeds 2^53 (ingest
accepts integers up to 2^64 - 1 in metadata) is written as its exact decimal digits, never rounded
through a double. Within ±2^53 that is exactly what RFC 8785 writes, so the two agree on every
I-JSON value.

The digest of an entry is SHA-256 of the canonical form of exactly the fields a user sees and
exports: :data:`ENTRY_FIELDS`.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson

_ABSENT = object()
ENTRY_FIELDS = ("account_id", "id", "timestamp", "category", "type", "actor", "action",
                "message", "metadata")  # fmt: skip
"""The fields an entry's digest covers: those the API returns and exports carry (``local_time``
is derived from ``timestamp``); not the service's bookkeeping (``ingested_at``, ``search_text``,
``integrity``)."""

_SAFE = 2**53
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}  # fmt: skip


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _number(value: float) -> str:
    """ECMAScript's Number.prototype.toString for a finite double (RFC 8785 section 3.2.2.3)."""
    if not math.isfinite(value):
        raise ValueError("NaN and infinities have no JSON form")
    if value == 0:
        return "0"
    text = repr(value)
    if "e" not in text:  # 1e-4 <= |value| < 1e16: Python writes the same shortest digits
        return text[:-2] if text.endswith(".0") else text
    sign = "-" if value < 0 else ""
    digits, exponent = _shortest(abs(value))  # value = 0.digits x 10^exponent
    k, n = len(digits), exponent
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        body = f"0.{'0' * -n}{digits}"
    else:
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        e = n - 1
        body = f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
    return sign + body


def _shortest(value: float) -> tuple[str, int]:
    """The shortest digits that read back as ``value`` (Python's repr finds them), and the
    exponent n with value = 0.d1d2... x 10^n."""
    mantissa, _, exp = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = (0 if whole == "0" else len(whole)) + (int(exp) if exp else 0)
    if whole == "0":  # 0.000ddd: the leading zeros of the fraction move the point left
        point -= len(fraction) - len(fraction.lstrip("0"))
    digits = digits.rstrip("0") or "0"
    return digits, point


def _utf16_key(name: str) -> bytes:
    return name.encode("utf-16-be")


def canonical(value: Any) -> str:
    """The RFC 8785 form of a JSON value (integers beyond ±2^53 exact, see the module)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value) if abs(value) > _SAFE else _number(float(value))
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        members = sorted(value.items(), key=lambda item: _utf16_key(item[0]))
        return "{" + ",".join(f"{_string(k)}:{canonical(v)}" for k, v in members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    raise TypeError(f"{type(value).__name__} has no JSON form")


class _NotFast(Exception):
    """A key at or past U+E000: UTF-16 order may differ from the code point order orjson sorts
    by."""


def _prepared(value: Any) -> Any:
    """``value`` with every float replaced by its canonical text (an ``orjson.Fragment``), so
    that orjson's sorted output is byte for byte the canonical form: orjson writes strings as
    RFC 8785 does and integers exactly, as the rule above does."""
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if not key.isascii() and max(map(ord, key)) >= 0xE000:
                raise _NotFast
            inner = type(item)
            plain = inner is str or inner is int or inner is bool or item is None
            out[key] = item if plain else _prepared(item)
        return out
    if kind is float:
        return orjson.Fragment(_number(value).encode())
    if kind is list or kind is tuple:
        return [_prepared(item) for item in value]
    return value


def canonical_bytes(value: Any) -> bytes:
    """The canonical form in UTF-8: through orjson where it writes exactly that, else
    :func:`canonical`."""
    try:
        return orjson.dumps(_prepared(value), option=orjson.OPT_SORT_KEYS)
    except (_NotFast, TypeError):  # a key past U+E000, or an integer beyond 64 bits
        return canonical(value).encode("utf-8")


def entry_digest(source: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical form of the entry's :data:`ENTRY_FIELDS`."""
    try:  # the fields' names are ASCII: only their values need preparing, strings not even that
        covered = {}
        for name in ENTRY_FIELDS:
            value = source.get(name, _ABSENT)
            if value is not _ABSENT:
                covered[name] = value if type(value) is str else _prepared(value)
        form = orjson.dumps(covered, option=orjson.OPT_SORT_KEYS)
    except (_NotFast, TypeError):
        form = canonical({name: source[name] for name in ENTRY_FIELDS if name in source}).encode()
    return hashlib.sha256(form).hexdigest()
