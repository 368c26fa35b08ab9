"""The Merkle tree of an account's log, as RFC 9162 (Certificate Transparency 2.0) defines it.

Leaf hash SHA-256(0x00 || leaf), node hash SHA-256(0x01 || left || right), the tree over n leaves
split at the largest power of two below n. :class:`Frontier` appends leaves in O(log n) keeping
only the roots of the perfect subtrees on the tree's right edge (what the sealer keeps between
seals); the proofs and their verification follow RFC 9162 sections 2.1.3 and 2.1.4.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not prove what it claims."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass
class Frontier:
    """The right edge of a tree: the roots of its perfect subtrees, largest first."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        """Append a leaf hash."""
        merged, size, hashes = leaf, self.size, self.hashes
        while size & 1:  # a subtree of the new leaf's size is complete: merge it
            merged = node_hash(hashes.pop(), merged)
            size >>= 1
        hashes.append(merged)
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Append leaf hashes, the same tree as appending each, a perfect subtree at a time
        (its hashes level by level: the sealer appends thousands at once)."""
        done = 0
        while done < len(leaves):
            width = 1 << ((len(leaves) - done).bit_length() - 1)
            if self.size:  # a subtree starts at a multiple of its width
                width = min(width, self.size & -self.size)
            level = leaves[done : done + width]
            while len(level) > 1:
                level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
            merged, complete = level[0], self.size // width
            while complete & 1:  # as in :meth:`append`, one subtree of this width at a time
                merged = node_hash(self.hashes.pop(), merged)
                complete >>= 1
            self.hashes.append(merged)
            self.size += width
            done += width

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The root of the tree over ``leaves`` (leaf hashes)."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


class _Nodes:
    """The hashes of every perfect, aligned subtree over ``leaves`` (level by level, built once:
    about n hashes), so that any subtree's hash takes O(log n) node hashes and a proof
    O(log² n): many proofs over one tree cost little more than one."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[Sequence[bytes]] = [leaves]
        level = leaves
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end])."""
        size = end - start
        if size & (size - 1) == 0 and start % size == 0:  # perfect and aligned: stored
            return self.levels[size.bit_length() - 1][start // size]
        k = _split(size)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, leaves): the audit path of leaf ``index`` in the tree over ``leaves``."""
    return inclusion_proofs([index], leaves)[0]


def inclusion_proofs(indices: Sequence[int], leaves: Sequence[bytes]) -> list[list[bytes]]:
    """The audit paths of several leaves of one tree (its nodes hashed once)."""
    nodes = _Nodes(leaves)
    return [_path(index, len(leaves), nodes) for index in indices]


def _path(index: int, size: int, nodes: _Nodes) -> list[bytes]:
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(nodes.subtree(start + k, end))
            end = start + k
        else:
            path.append(nodes.subtree(start, start + k))
            start += k
    return path[::-1]


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(old_size, leaves): that the tree of ``old_size`` leaves is a prefix of this one."""
    if not 0 <= old_size <= len(leaves):
        raise ProofError(f"size {old_size} is not within a tree of {len(leaves)}")
    if old_size in (0, len(leaves)):
        return []
    return _subproof(old_size, _Nodes(leaves), 0, len(leaves), True)


def _subproof(m: int, nodes: _Nodes, start: int, end: int, whole: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [nodes.subtree(start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, nodes, start, start + k, whole), nodes.subtree(start + k, end)]
    return [*_subproof(m - k, nodes, start + k, end, False), nodes.subtree(start, start + k)]


def _sized(*hashes: bytes) -> None:
    if any(len(h) != 32 for h in hashes):
        raise ProofError("every hash is 32 bytes")


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2; :class:`ProofError` unless ``proof`` puts ``leaf`` at ``index``."""
    _sized(leaf, root, *proof)
    if index >= size:
        raise ProofError("the index is beyond the tree")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root:
        raise ProofError("the leaf is not in the tree with that root")


def verify_consistency(
    old_size: int, size: int, old_root: bytes, root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2; :class:`ProofError` unless the old tree is a prefix of the new one."""
    if old_size < 1 or old_size > size:
        raise ProofError(
            "the old size must be from 1 to the new size (an empty tree proves nothing)"
        )
    if old_size == size:
        if proof or old_root != root:
            raise ProofError("equal sizes need an empty proof and equal roots")
        return
    _sized(old_root, root, *proof)
    if not proof:
        raise ProofError("the proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root starts the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != old_root or sr != root:
        raise ProofError("the trees are not consistent")
