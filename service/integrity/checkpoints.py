"""Leaves and checkpoints of an account's log: what each binds and how a checkpoint is signed.

A **leaf** is the canonical JSON of ``{"category", "digest", "id", "timestamp"}`` of one entry:
its digest binds the content, and the category and timestamp stay checkable once the entry was
lawfully deleted (integration entries after 30 days), because the leaf, kept in the segment, still
hashes to the signed root.

A **checkpoint** signs ``{"account_id", "genesis", "key_id", "previous", "root", "sealed_at",
"seq", "tree_size"}`` in canonical JSON with Ed25519; ``previous`` is the hash of the checkpoint
before it (SHA-256 of its canonical form with its signature), ``""`` for the first.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from service.integrity.canonical import canonical_bytes
from service.integrity.keys import IntegrityKeys
from service.integrity.merkle import leaf_hash

HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
SIGNED_FIELDS = ("account_id", "genesis", "key_id", "previous", "root", "sealed_at", "seq",
                 "tree_size")  # fmt: skip


def leaf(entry_id: str, category: str, timestamp: str, digest: str) -> dict[str, str]:
    return {"id": entry_id, "category": category, "timestamp": timestamp, "digest": digest}


def leaf_of(source: dict[str, Any], digest: Any) -> dict[str, str] | None:
    """The leaf of a stored entry whose digest is ``digest``; ``None`` when the entry lacks a
    field of it (not one the service stored)."""
    fields = [source.get("id"), source.get("category"), source.get("timestamp"), digest]
    if not all(isinstance(f, str) for f in fields):
        return None
    return leaf(*(str(f) for f in fields))


def well_formed(stored: object) -> bool:
    """A stored leaf: string id, category and timestamp, and a lowercase hex SHA-256 digest."""
    if not isinstance(stored, dict):
        return False
    fields = [stored.get(k) for k in ("id", "category", "timestamp", "digest")]
    return all(isinstance(f, str) for f in fields) and bool(HEX_DIGEST.fullmatch(str(fields[3])))


def leaf_hash_of(stored: dict[str, str]) -> bytes:
    """The RFC 9162 hash of the leaf's canonical JSON: its four string members in code point
    order, as RFC 8785 sorts these ASCII names; orjson writes strings as RFC 8785 does."""
    category, digest = stored["category"], stored["digest"]
    entry_id, timestamp = stored["id"], stored["timestamp"]
    covered = {"category": category, "digest": digest, "id": entry_id, "timestamp": timestamp}
    if type(category) is type(digest) is type(entry_id) is type(timestamp) is str:
        return leaf_hash(orjson.dumps(covered))
    return leaf_hash(canonical_bytes(covered))


def signed_part(checkpoint: dict[str, Any]) -> bytes:
    return canonical_bytes({k: checkpoint[k] for k in SIGNED_FIELDS})


def checkpoint_hash(checkpoint: dict[str, Any]) -> str:
    body = {k: checkpoint[k] for k in SIGNED_FIELDS}
    return hashlib.sha256(
        canonical_bytes({**body, "signature": checkpoint["signature"]})
    ).hexdigest()


def new_checkpoint(
    keys: IntegrityKeys,
    account_id: str,
    seq: int,
    tree_size: int,
    root: bytes,
    previous: str,
    sealed_at: str,
    genesis: bool = False,
) -> dict[str, Any]:
    """A signed checkpoint (the document stored has ``kind`` and the frontier besides)."""
    body: dict[str, Any] = {"account_id": account_id, "genesis": genesis, "key_id": keys.key_id,
                            "previous": previous, "root": root.hex(), "sealed_at": sealed_at,
                            "seq": seq, "tree_size": tree_size}  # fmt: skip
    return {**body, "signature": keys.sign(signed_part(body))}


def public(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint as clients get it: the signed fields and the signature."""
    return {**{k: checkpoint[k] for k in SIGNED_FIELDS}, "signature": checkpoint["signature"]}
