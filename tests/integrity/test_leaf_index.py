"""The compact leaf index verification matches entries with: positions by id, entries sealed
twice, and which unseen leaves may lawfully be gone."""

from __future__ import annotations

import hashlib

from service.integrity.leaf_index import NEVER, LeafIndex


def _digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_positions_digests_and_unseen_leaves() -> None:
    index = LeafIndex()
    for n in range(1000):
        index.add(f"e{n}", _digest(n), lawful_from=100 if n % 10 == 0 else NEVER)
    assert index.freeze() == []
    assert index.positions(["e0", "e999", "e500", "nope", "e1000"]) == [0, 999, 500, -1, -1]
    assert index.digest_at(500) == bytes.fromhex(_digest(500))
    for n in range(0, 1000, 2):
        index.seen[n] = True
    missing, lawful = index.unseen(now=100)
    assert missing.tolist() == [n for n in range(1, 1000, 2)]  # odd ones: none expiring
    assert lawful == 0  # every expiring one (n % 10 == 0) was seen
    index.seen[10] = False
    assert index.unseen(now=99)[0].tolist()[:2] == [1, 3] and index.unseen(now=99)[1] == 0
    assert 10 not in index.unseen(now=100)[0].tolist() and index.unseen(now=100)[1] == 1


def test_an_entry_sealed_twice_is_found_at_its_later_positions() -> None:
    index = LeafIndex()
    for entry_id in ("a", "b", "a", "c", "a"):
        index.add(entry_id, _digest(0))
    assert index.freeze() == [2, 4]
    assert index.positions(["a", "c"]) == [0, 3]


class _HalfCollisions(LeafIndex):
    """Every id shares the first half of its hash: lookups must go by the second half."""

    def _hash(self, entry_id: str) -> tuple[int, int]:
        return 7, super()._hash(entry_id)[1]


def test_ids_sharing_the_first_half_of_their_hash_are_told_apart() -> None:
    index = _HalfCollisions()
    for n in range(50):
        index.add(f"e{n}", _digest(n))
    assert index.freeze() == []
    assert index.positions([f"e{n}" for n in range(49, -1, -1)] + ["x"]) == [
        *range(49, -1, -1),
        -1,
    ]


def test_an_empty_index() -> None:
    index = LeafIndex()
    assert index.freeze() == []
    assert index.positions(["a"]) == [-1]
    missing, lawful = index.unseen(now=0)
    assert missing.tolist() == [] and lawful == 0
