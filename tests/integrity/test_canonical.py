"""The canonical form against RFC 8785: its author's published vectors (``jcs_vectors/``, from
cyberphone/json-canonicalization, Apache 2.0, commit 19d51d7), the number table of RFC 8785
Appendix B, and the one documented extension: integers beyond 2^53 written exactly."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.integrity.canonical import ENTRY_FIELDS, canonical, canonical_bytes, entry_digest

VECTORS = Path(__file__).parent / "jcs_vectors"
NUMBERS = {  # RFC 8785 Appendix B: IEEE 754 bits -> the canonical text
    "0000000000000000": "0", "8000000000000000": "0", "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324", "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308", "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992", "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22", "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23", "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000", "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7", "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332", "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333", "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343", "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(p.name for p in (VECTORS / "input").glob("*.json")))
def test_the_published_vectors(name: str) -> None:
    value = json.loads((VECTORS / "input" / name).read_text(encoding="utf-8"))
    assert canonical(value) == (VECTORS / "output" / name).read_bytes().decode("utf-8")


@pytest.mark.parametrize(("bits", "text"), sorted(NUMBERS.items()))
def test_numbers_as_ecmascript_writes_them(bits: str, text: str) -> None:
    assert canonical(struct.unpack(">d", bytes.fromhex(bits))[0]) == text


def test_integers_beyond_two_to_the_53_are_exact_and_within_it_as_rfc_8785_writes_them() -> None:
    assert canonical(2**64 - 1) == "18446744073709551615"
    assert canonical(-(2**63)) == "-9223372036854775808"
    assert canonical(2**53 + 1) == "9007199254740993"  # a double would make it ...992
    assert canonical(2**53) == canonical(float(2**53)) == "9007199254740992"
    assert canonical(10**21) == "1000000000000000000000"  # exact, where a double writes 1e+21
    assert canonical(100) == canonical(100.0) == "100"


def test_an_entry_digest_covers_what_users_see_and_nothing_else() -> None:
    entry = {"account_id": "a", "id": "e1", "timestamp": "2026-11-20T10:15:00.123Z",
             "category": "webhook", "type": "notice", "actor": {"type": "user", "id": "u"},
             "action": "webhook.sent", "message": "m", "metadata": {"n": 2**60}}  # fmt: skip
    digest = entry_digest(entry)
    bookkeeping = {"search_text": "derived", "local_time": "x", "ingested_at": "2026-11-20",
                   "integrity": {"digest": "d"}}  # fmt: skip
    assert entry_digest({**entry, **bookkeeping}) == digest
    assert entry_digest(dict(reversed(list(entry.items())))) == digest
    changes = [("message", "M"), ("metadata", {"n": 2**60 + 1}), ("timestamp", "2026"),
               ("actor", {"type": "user", "id": "v"})]  # fmt: skip
    for field, value in changes:
        assert entry_digest({**entry, field: value}) != digest, field


TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(metadata=st.dictionaries(TEXT, VALUES, max_size=6), message=TEXT, name=TEXT)
def test_the_fast_digest_is_the_canonical_digest(
    metadata: dict[str, Any], message: str, name: str
) -> None:
    entry = {"id": "e", "account_id": "a", "message": message, "metadata": metadata,
             "actor": {"type": "user", "id": "u", "name": name}}  # fmt: skip
    covered = {k: v for k, v in entry.items() if k in ENTRY_FIELDS}
    assert entry_digest(entry) == hashlib.sha256(canonical_bytes(covered)).hexdigest()
