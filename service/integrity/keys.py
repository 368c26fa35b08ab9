"""The integrity keys: the Ed25519 key that signs checkpoints and the key of the ingest MAC.

Both live in a directory of the deployment's own (``AUDITLOG_KEYS_DIR``), never in the engine:

- ``signing.pem``: the current Ed25519 private key (PKCS #8 PEM); its key id is the first 16 hex
  digits of SHA-256 of its raw public key;
- ``mac.key``: 32 random bytes, hex, the key of the MAC every stored entry carries;
- ``previous/*.pem``: public keys of earlier signing keys, so checkpoints they signed still verify
  after a rotation (move the old ``signing.pem``'s public key there, put a new one in place).

``auditlog run`` creates the directory for the embedded engine; a deployment creates it once
with ``auditlog integrity init-keys DIR`` and gives every instance the same one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one key, its padded key states hashed once: a MAC costs two
    hash copies and updates (``hmac.new`` sets the key up again for every message, several times
    slower)."""

    BLOCK = 64

    def __init__(self, key: bytes) -> None:
        if len(key) > self.BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(self.BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def signature_valid(public: Ed25519PublicKey | None, message: bytes, signature: str) -> bool:
    """``signature`` (base64) is ``public``'s over ``message``."""
    if public is None:
        return False
    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


class KeysError(Exception):
    """The keys directory is missing, incomplete or unreadable."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class IntegrityKeys:
    signing: Ed25519PrivateKey
    key_id: str
    mac_key: bytes
    public: dict[str, Ed25519PublicKey]
    """Every key id that may have signed a checkpoint → its public key (the current one too)."""
    _hmac: HmacSha256 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hmac", HmacSha256(self.mac_key))

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.signing.sign(message)).decode()

    def verifies(self, signer: str, message: bytes, signature: str) -> bool:
        return signature_valid(self.public.get(signer), message, signature)

    def mac(self, account_id: str, leaf: dict[str, str]) -> str:
        """The ingest MAC: HMAC-SHA256 over the entry's account and its leaf (id, category,
        timestamp, digest), as a JSON array of those five strings."""
        message = orjson.dumps([account_id, leaf["id"], leaf["category"], leaf["timestamp"],
                                leaf["digest"]])  # fmt: skip
        return self._hmac.hexdigest(message)

    def mac_matches(self, account_id: str, leaf: dict[str, str] | None, mac: str) -> bool:
        return leaf is not None and hmac.compare_digest(self.mac(account_id, leaf), mac)

    def queue_mac(self, signed: bytes) -> str:
        """The MAC of a seal queue record: ``signed`` is the JSON array ``["queued", record id,
        index names, rows]`` (four members where an ingest MAC's message has five strings, and a
        first member no outcome's has)."""
        return self._hmac.hexdigest(signed)

    def outcome_mac(self, record_id: str, created: list[str], unsure: list[str]) -> str:
        """The MAC of a seal queue record's outcome: which of its entries the engine created,
        which it may have (JSON array ``["outcome", record_id, created, unsure]``)."""
        message = orjson.dumps(["outcome", record_id, created, unsure])
        return self._hmac.hexdigest(message)


def load_keys(directory: Path) -> IntegrityKeys:
    """The keys of ``directory``; :class:`KeysError` saying what is missing."""
    try:
        signing = serialization.load_pem_private_key((directory / "signing.pem").read_bytes(), None)
        mac_key = bytes.fromhex((directory / "mac.key").read_text().strip())
    except FileNotFoundError as e:
        hint = f"create them once with `auditlog integrity init-keys {directory}`"
        raise KeysError(
            f"no integrity keys in {directory} ({e.filename} is missing): {hint}"
        ) from e
    except (OSError, ValueError) as e:
        raise KeysError(f"cannot read the integrity keys in {directory}: {e}") from e
    if not isinstance(signing, Ed25519PrivateKey) or len(mac_key) < 32:
        raise KeysError(f"{directory}: signing.pem must be an Ed25519 key, mac.key 32 bytes hex")
    public = {key_id(signing.public_key()): signing.public_key()}
    for path in sorted((directory / "previous").glob("*.pem")):
        try:
            old = serialization.load_pem_public_key(path.read_bytes())
        except ValueError as e:
            raise KeysError(f"{path}: {e}") from e
        if not isinstance(old, Ed25519PublicKey):
            raise KeysError(f"{path}: not an Ed25519 public key")
        public[key_id(old)] = old
    return IntegrityKeys(signing, key_id(signing.public_key()), mac_key, public)


def create_keys(directory: Path) -> bool:
    """Create the keys of ``directory`` that are missing (True when any was); an existing key is
    never replaced (checkpoints and MACs made with it must stay verifiable). Private files are
    readable by their owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "previous").mkdir(exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    created = False
    for name, content in (("signing.pem", pem), ("mac.key", secrets.token_hex(32).encode())):
        try:
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        created = True
    return created
