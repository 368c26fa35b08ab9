"""The ingest MAC's HMAC-SHA256, computed from precomputed key states, against the standard
library's; what loading a keys directory says when it cannot."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from service.integrity.keys import HmacSha256, KeysError, load_keys


@pytest.mark.parametrize("key", [b"", b"k" * 32, b"\x00\xff" * 32, b"long" * 40])
def test_the_precomputed_hmac_is_rfc_2104_hmac_sha256(key: bytes) -> None:
    for message in (b"", b"abc", b"x" * 1000):
        assert (
            HmacSha256(key).hexdigest(message) == hmac.new(key, message, hashlib.sha256).hexdigest()
        )


def test_a_keys_directory_without_keys_says_how_to_create_them(tmp_path: Path) -> None:
    missing = tmp_path / "keys"
    with pytest.raises(KeysError) as raised:
        load_keys(missing)
    assert str(raised.value) == (
        f"no integrity keys in {missing} ({missing / 'signing.pem'} is missing): create them "
        f"once with `auditlog integrity init-keys {missing}`"
    )
