"""The Merkle tree against RFC 9162 and the published vectors of transparency-dev/merkle
(``merkle_vectors/``, Apache 2.0, commit 417fb0c): every happy path verifies and every
tampered proof (flipped bits, extra or missing hashes, wrong sizes) is refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from service.integrity.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent / "merkle_vectors"
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
ROOTS = ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
         "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]  # fmt: skip


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in case.get("proof") or []]


def _cases(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS))) for f in files]


def test_roots_of_every_prefix_match_the_reference() -> None:
    hashes = [leaf_hash(leaf) for leaf in LEAVES]
    assert root_of([]) == EMPTY_ROOT
    for size in range(len(LEAVES) + 1):
        assert root_of(hashes[:size]).hex() == ROOTS[size]
        frontier = Frontier()
        for h in hashes[:size]:
            frontier.append(h)
        assert frontier.root().hex() == ROOTS[size] and frontier.size == size


def test_extending_by_many_leaves_is_appending_each() -> None:
    """The sealer appends a segment's leaves at once: whatever the tree's size before and the
    number appended, the right edge is the one appending them one by one gives."""
    hashes = [leaf_hash(b"%d" % i) for i in range(70)]
    for before in range(34):
        for count in range(36):
            one_by_one, at_once = Frontier(), Frontier()
            for h in hashes[:before]:
                one_by_one.append(h)
                at_once.append(h)
            for h in hashes[before : before + count]:
                one_by_one.append(h)
            at_once.extend(hashes[before : before + count])
            assert (at_once.size, at_once.hashes) == (one_by_one.size, one_by_one.hashes)
    frontier = Frontier()
    frontier.extend(hashes[:8])
    assert frontier.root() == root_of(hashes[:8])


@pytest.mark.parametrize("case", _cases("inclusion"))
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    def check() -> None:
        verify_inclusion(case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), _proof(case),
                         _b64(case["root"]))  # fmt: skip

    if case["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


@pytest.mark.parametrize("case", _cases("consistency"))
def test_consistency_vectors(case: dict[str, Any]) -> None:
    def check() -> None:
        verify_consistency(case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]),
                           _proof(case))  # fmt: skip

    if case["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


def test_generated_proofs_verify_for_every_leaf_and_size_pair() -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(37)]
    for size in range(1, len(hashes) + 1):
        root = root_of(hashes[:size])
        for index in range(size):
            verify_inclusion(
                index, size, hashes[index], inclusion_proof(index, hashes[:size]), root
            )
        for old in range(1, size + 1):
            proof = consistency_proof(old, hashes[:size])
            verify_consistency(old, size, root_of(hashes[:old]), root, proof)
    with pytest.raises(ProofError):  # a leaf at the wrong place
        verify_inclusion(3, 37, hashes[4], inclusion_proof(3, hashes), root_of(hashes))
    with pytest.raises(ProofError):  # a rewritten history
        forked = [*hashes[:10], leaf_hash(b"x"), *hashes[11:20]]
        verify_consistency(12, 20, root_of(forked[:12]), root_of(hashes[:20]),
                           consistency_proof(12, hashes[:20]))  # fmt: skip
