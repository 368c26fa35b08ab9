"""The ingest MAC's HMAC-SHA256, computed from precomputed key states, against the standard
library's."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from service.integrity.keys import HmacSha256


@pytest.mark.parametrize("key", [b"", b"k" * 32, b"\x00\xff" * 32, b"long" * 40])
def test_the_precomputed_hmac_is_rfc_2104_hmac_sha256(key: bytes) -> None:
    for message in (b"", b"abc", b"x" * 1000):
        assert (
            HmacSha256(key).hexdigest(message) == hmac.new(key, message, hashlib.sha256).hexdigest()
        )
