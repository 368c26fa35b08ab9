"""Destinations' secrets, encrypted with ``AUDITLOG_DESTINATION_KEY`` (AES-256-GCM).

The engine only ever holds the ciphertext: ``v1.<nonce>.<ciphertext>`` in base64url, the
destination's id bound as associated data (a ciphertext copied to another destination does not
decrypt). The key is a setting, never stored in the engine: 32 random bytes in base64
(``openssl rand -base64 32``).
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "v1"


class SecretsKeyError(ValueError):
    """The key is not 32 bytes of base64, or a ciphertext does not open with it."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecretsBox:
    def __init__(self, key_text: str) -> None:
        try:
            key = base64.b64decode(key_text.strip(), validate=False)
        except (binascii.Error, ValueError) as e:
            raise SecretsKeyError("AUDITLOG_DESTINATION_KEY is not base64") from e
        if len(key) != 32:
            raise SecretsKeyError("AUDITLOG_DESTINATION_KEY must be 32 bytes, in base64")
        self._aead = AESGCM(key)

    def seal(self, destination_id: str, secrets: dict[str, str]) -> str:
        nonce = os.urandom(12)
        plain = json.dumps(secrets, sort_keys=True).encode()
        sealed = self._aead.encrypt(nonce, plain, destination_id.encode())
        return f"{PREFIX}.{_b64(nonce)}.{_b64(sealed)}"

    def open(self, destination_id: str, text: str) -> dict[str, str]:
        try:
            prefix, nonce, sealed = text.split(".")
            if prefix != PREFIX:
                raise ValueError(prefix)
            plain = self._aead.decrypt(_unb64(nonce), _unb64(sealed), destination_id.encode())
        except (ValueError, InvalidTag, binascii.Error) as e:
            raise SecretsKeyError(
                "the destination's secrets do not open with AUDITLOG_DESTINATION_KEY"
            ) from e
        opened = json.loads(plain)
        return {str(k): str(v) for k, v in opened.items()}
