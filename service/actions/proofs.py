"""What a customer checks the account's log with: its signed head, an entry's inclusion proof,
a consistency proof between two tree sizes, and the public keys."""

from __future__ import annotations

from typing import Any

from service.errors import ServiceError, bad_request
from service.integrity.checkpoints import leaf_hash_of, public
from service.integrity.keys import IntegrityKeys, public_pem
from service.integrity.merkle import consistency_proof, inclusion_proof
from service.runtime import Runtime
from service.search.integrity_log import IntegrityLog


def _damaged() -> ServiceError:
    return ServiceError(
        409, "log_damaged", "the account's stored log is incomplete; run `auditlog verify`"
    )


async def head(runtime: Runtime, account_id: str) -> dict[str, Any]:
    latest = await IntegrityLog(runtime.es, runtime.names).latest_checkpoint(account_id)
    if latest is None:
        raise ServiceError(404, "not_found", "nothing of this account is sealed yet")
    return public(latest)


async def _leaf_hashes(runtime: Runtime, account_id: str, size: int) -> list[bytes]:
    hashes: list[bytes] = []
    async for segment in IntegrityLog(runtime.es, runtime.names).segments(account_id):
        hashes.extend(leaf_hash_of(item) for item in segment["leaves"])
        if len(hashes) >= size:
            break
    return hashes[:size]


async def inclusion(runtime: Runtime, account_id: str, entry_id: str) -> dict[str, Any]:
    """The entry's leaf, its position and its audit path under the latest checkpoint."""
    log = IntegrityLog(runtime.es, runtime.names)
    segment = await log.segment_of(account_id, entry_id)
    checkpoint = await head(runtime, account_id)
    if segment is None:
        raise ServiceError(404, "not_found", f"entry '{entry_id}' is not sealed (yet)", "id")
    offset = segment["ids"].index(entry_id)
    position = int(segment["start"]) + offset
    size = int(checkpoint["tree_size"])
    if position >= size:
        raise ServiceError(404, "not_found", f"entry '{entry_id}' is not sealed (yet)", "id")
    hashes = await _leaf_hashes(runtime, account_id, size)
    if len(hashes) < size:
        raise _damaged()
    item = segment["leaves"][offset]
    return {
        "id": entry_id,
        "position": position,
        "leaf": item,
        "leaf_hash": leaf_hash_of(item).hex(),
        "proof": [h.hex() for h in inclusion_proof(position, hashes)],
        "checkpoint": checkpoint,
    }


async def consistency(runtime: Runtime, account_id: str, first: int, second: int) -> dict[str, Any]:
    """A proof that the log at size ``first`` is a prefix of the log at size ``second``."""
    latest = await head(runtime, account_id)
    size = int(latest["tree_size"])
    if not 1 <= first <= second:
        raise bad_request("from must be at least 1 and at most to", "from")
    if second > size:
        raise bad_request(f"to is past the sealed log ({size} entries)", "to")
    hashes = await _leaf_hashes(runtime, account_id, second)
    if len(hashes) < second:
        raise _damaged()
    log = IntegrityLog(runtime.es, runtime.names)
    checkpoints = {}
    for n in (first, second):
        found = await log.checkpoint_at_size(account_id, n)
        checkpoints[str(n)] = public(found) if found else None
    return {
        "from": first,
        "to": second,
        "proof": [h.hex() for h in consistency_proof(first, hashes)],
        "checkpoints": checkpoints,
    }


def public_keys(keys: IntegrityKeys) -> dict[str, Any]:
    return {
        "current": keys.key_id,
        "keys": [{"key_id": k, "algorithm": "Ed25519", "public_key_pem": public_pem(v)}
                 for k, v in sorted(keys.public.items())],
    }  # fmt: skip
