"""Export manifests: what a signed statement about one export file says, and how it is checked.

A manifest names the export (id, account, format, file name, filters, the frozen window, order,
timezone), the file (its SHA-256 and size in bytes), its rows (how many, and SHA-256 of their
``entry_digest`` values, each followed by a newline, in file order) and the account log's signed
head under which every row is sealed (``head``: a checkpoint as ``/v1/integrity/head`` serves it;
``rows_unsealed`` counts the rows that were not sealed yet when the manifest was signed). The
service signs the canonical JSON of every field but ``signature`` with its Ed25519 checkpoint key
(``key_id``). Checking one needs only the file, the manifest and the public keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service.integrity.canonical import canonical_bytes
from service.integrity.checkpoints import signed_part
from service.integrity.keys import IntegrityKeys, signature_valid

VERSION = 1
FIELDS = ("version", "export_id", "account_id", "format", "filename", "filters", "from", "to",
          "timezone", "order", "rows", "rows_sha256", "file_sha256", "file_bytes", "head",
          "rows_unsealed", "created_at", "key_id")  # fmt: skip
"""Every signed field (the manifest is these and ``signature``)."""


class RowDigests:
    """SHA-256 over the rows' ``entry_digest`` values, each followed by ``\\n``, in file order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.rows = 0

    def add(self, digests: Iterable[str]) -> None:
        for digest in digests:
            self._hash.update(digest.encode() + b"\n")
            self.rows += 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def sign_manifest(keys: IntegrityKeys, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (every field of :data:`FIELDS` but ``key_id``) with ``key_id`` and its
    signature."""
    signed = {**{k: body[k] for k in FIELDS if k != "key_id"}, "key_id": keys.key_id}
    return {**signed, "signature": keys.sign(canonical_bytes(signed))}


def manifest_problems(manifest: Any, public: Mapping[str, Ed25519PublicKey]) -> list[str]:
    """Why the manifest is not one the holder of ``public`` signed (empty when it is): its
    fields, its signature, and the signature of the head it carries."""
    if not isinstance(manifest, dict):
        return ["the manifest is not a JSON object"]
    absent = [k for k in (*FIELDS, "signature") if k not in manifest]
    if absent:
        return [f"the manifest has no {', '.join(absent)}"]
    extra = sorted(set(manifest) - {*FIELDS, "signature"})
    if extra:
        return [f"the manifest has fields no manifest has: {', '.join(extra)}"]
    problems = []
    key_id = str(manifest["key_id"])
    body = {k: manifest[k] for k in FIELDS}
    try:
        message = canonical_bytes(body)
    except (TypeError, ValueError):
        return ["the manifest holds values JSON cannot carry"]
    if key_id not in public:
        problems.append(f"the manifest is signed by key {key_id}, not one of the keys given")
    elif not signature_valid(public[key_id], message, str(manifest["signature"])):
        problems.append("the manifest's signature does not verify: a field was changed")
    head = manifest["head"]
    if head is not None:
        problems += _head_problems(head, manifest, public)
    return problems


def _head_problems(
    head: Any, manifest: dict[str, Any], public: Mapping[str, Ed25519PublicKey]
) -> list[str]:
    try:
        message = signed_part(head)
        signer, signature = str(head["key_id"]), str(head["signature"])
    except (KeyError, TypeError, ValueError):
        return ["the manifest's head is not a checkpoint"]
    if signer not in public:
        return [f"the manifest's head is signed by key {signer}, not one of the keys given"]
    if not signature_valid(public[signer], message, signature):
        return ["the manifest's head has a signature that does not verify"]
    if head.get("account_id") != manifest["account_id"]:
        return ["the manifest's head is another account's"]
    return []
