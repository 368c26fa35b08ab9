"""What a customer checks the account's log with: its signed head, an entry's inclusion proof,
a consistency proof between two tree sizes, and the public keys."""

from __future__ import annotations

from typing import Any

from service.errors import ServiceError, bad_request
from service.integrity.checkpoints import leaf_hash_of, public, well_formed
from service.integrity.keys import IntegrityKeys, public_pem
from service.integrity.merkle import consistency_proof, inclusion_proofs
from service.runtime import Runtime
from service.search.integrity_log import IntegrityLog


def _damaged() -> ServiceError:
    return ServiceError(
        409, "log_damaged", "the account's stored log is incomplete; run `auditlog verify`"
    )


async def head(runtime: Runtime, account_id: str) -> dict[str, Any]:
    latest = await IntegrityLog(runtime.es, runtime.names).latest_checkpoint(account_id, False)
    if latest is None:
        raise ServiceError(404, "not_found", "nothing of this account is sealed yet")
    return public(latest)


async def _leaf_hashes(runtime: Runtime, account_id: str, size: int) -> list[bytes]:
    hashes, _ = await _leaves(runtime, account_id, size, set())
    return hashes


async def _leaves(
    runtime: Runtime, account_id: str, size: int, wanted: set[str]
) -> tuple[list[bytes], dict[str, tuple[int, dict[str, str]]]]:
    """The hashes of the first ``size`` leaves, and the position and leaf of each ``wanted``
    entry among them (one read of the segments)."""
    hashes: list[bytes] = []
    found: dict[str, tuple[int, dict[str, str]]] = {}
    async for segment in IntegrityLog(runtime.es, runtime.names).segments(account_id):
        stored = segment.get("leaves")
        if segment.get("start") != len(hashes) or not isinstance(stored, list):
            break  # a gap: the log is damaged
        for item in stored[: size - len(hashes)]:
            if not well_formed(item):
                raise _damaged()
            if item["id"] in wanted and item["id"] not in found:
                found[item["id"]] = (len(hashes), item)
            hashes.append(leaf_hash_of(item))
        if len(hashes) >= size:
            break
    return hashes, found


async def _checkpoint(runtime: Runtime, account_id: str, size: int | None) -> dict[str, Any]:
    """The latest checkpoint, or the one of ``size``."""
    if size is None:
        return await head(runtime, account_id)
    found = await IntegrityLog(runtime.es, runtime.names).checkpoint_at_size(account_id, size)
    if found is None:
        raise ServiceError(404, "not_found", f"no checkpoint has tree size {size}", "tree_size")
    return public(found)


async def inclusions(
    runtime: Runtime, account_id: str, entry_ids: list[str], size: int | None = None
) -> dict[str, Any]:
    """The leaves, positions and audit paths of ``entry_ids`` under the checkpoint of tree size
    ``size`` (the latest when ``None``); an entry not sealed under it has ``error`` instead."""
    checkpoint = await _checkpoint(runtime, account_id, size)
    tree_size = int(checkpoint["tree_size"])
    hashes, found = await _leaves(runtime, account_id, tree_size, set(entry_ids))
    if len(hashes) < tree_size:
        raise _damaged()
    sealed = [i for i in entry_ids if i in found]
    paths = dict(zip(sealed, inclusion_proofs([found[i][0] for i in sealed], hashes), strict=True))
    proofs: list[dict[str, Any]] = []
    for entry_id in entry_ids:
        if entry_id not in found:
            proofs.append({"id": entry_id, "error": "not sealed under this checkpoint"})
            continue
        position, item = found[entry_id]
        proofs.append({"id": entry_id, "position": position, "leaf": item,
                       "leaf_hash": leaf_hash_of(item).hex(),
                       "proof": [h.hex() for h in paths[entry_id]]})  # fmt: skip
    return {"checkpoint": checkpoint, "proofs": proofs}


async def inclusion(
    runtime: Runtime, account_id: str, entry_id: str, size: int | None = None
) -> dict[str, Any]:
    """The entry's leaf, its position and its audit path under the latest checkpoint (or the
    one of tree size ``size``); 404 when it is not sealed under it."""
    answer = await inclusions(runtime, account_id, [entry_id], size)
    proof = answer["proofs"][0]
    if "error" in proof:
        raise ServiceError(404, "not_found", f"entry '{entry_id}' is not sealed (yet)", "id")
    return {**proof, "checkpoint": answer["checkpoint"]}


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
