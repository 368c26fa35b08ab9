"""An account's sealed leaves, compact enough to verify millions of entries in little memory.

Verification matches every stored entry to its leaf by id. Keeping the leaves themselves (or a
dictionary of ids) costs hundreds of bytes per leaf; this index keeps, per position, a keyed
128-bit hash of the id (BLAKE2b under a key drawn for this index, so no one can choose ids that
collide), the 32-byte digest and the moment from which the entry may lawfully be gone: 56 bytes,
plus 8 for the sort order and 1 for "seen". A match by that hash stands for a match by id; a
digest that matches besides binds the whole entry (its id and account included).
"""

from __future__ import annotations

import hashlib
import secrets
from array import array

import numpy as np
import numpy.typing as npt

NEVER = np.iinfo(np.int64).max
"""``lawful_from`` of a leaf whose entry must be kept."""


class LeafIndex:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._hi, self._lo = array("Q"), array("Q")
        self._digests = bytearray()
        self._lawful_from = array("q")
        self._sorted_hi: npt.NDArray[np.uint64] = np.empty(0, np.uint64)
        self._sorted_lo: npt.NDArray[np.uint64] = np.empty(0, np.uint64)
        self._order: npt.NDArray[np.intp] = np.empty(0, np.intp)
        self.seen: npt.NDArray[np.bool_] = np.empty(0, np.bool_)

    def __len__(self) -> int:
        return len(self._hi)

    def _hash(self, entry_id: str) -> tuple[int, int]:
        h = hashlib.blake2b(entry_id.encode(), digest_size=16, key=self._key).digest()
        return int.from_bytes(h[:8], "little"), int.from_bytes(h[8:], "little")

    def add(self, entry_id: str, digest_hex: str, lawful_from: int = NEVER) -> None:
        """The leaf at the next position; ``lawful_from``: the Unix second from which its entry
        may be gone (retention), :data:`NEVER` if it must be kept."""
        hi, lo = self._hash(entry_id)
        self._hi.append(hi)
        self._lo.append(lo)
        self._digests += bytes.fromhex(digest_hex)
        self._lawful_from.append(lawful_from)

    def freeze(self) -> list[int]:
        """Sort for lookups (call once, after the last :meth:`add`); the positions of leaves
        whose id an earlier position already holds (an entry sealed twice; they count as
        seen)."""
        hi = np.frombuffer(self._hi, np.uint64) if len(self._hi) else np.empty(0, np.uint64)
        lo = np.frombuffer(self._lo, np.uint64) if len(self._lo) else np.empty(0, np.uint64)
        self._order = np.lexsort((np.arange(len(hi)), lo, hi))
        self._sorted_hi, self._sorted_lo = hi[self._order], lo[self._order]
        self.seen = np.zeros(len(hi), np.bool_)
        same = (self._sorted_hi[1:] == self._sorted_hi[:-1]) & (
            self._sorted_lo[1:] == self._sorted_lo[:-1]
        )
        twice = sorted(int(p) for p in self._order[1:][same])
        self.seen[twice] = True  # reported as sealed twice, not as missing
        return twice

    def positions(self, entry_ids: list[str]) -> list[int]:
        """Each id's (first) position, -1 for an id in no leaf."""
        if not entry_ids or not len(self._order):
            return [-1] * len(entry_ids)
        pairs = [self._hash(i) for i in entry_ids]
        hi = np.fromiter((p[0] for p in pairs), np.uint64, len(pairs))
        lo = np.fromiter((p[1] for p in pairs), np.uint64, len(pairs))
        last = len(self._order)
        at = np.minimum(np.searchsorted(self._sorted_hi, hi), last - 1)
        same_hi = self._sorted_hi[at] == hi
        match = same_hi & (self._sorted_lo[at] == lo)
        out: list[int] = np.where(match, self._order[at], -1).tolist()
        for n in np.flatnonzero(same_hi & ~match).tolist():  # another id shares the first half
            j = int(at[n]) + 1
            while j < last and self._sorted_hi[j] == hi[n]:
                if self._sorted_lo[j] == lo[n]:
                    out[n] = int(self._order[j])
                    break
                j += 1
        return out

    def digest_at(self, position: int) -> bytes:
        return bytes(self._digests[position * 32 : position * 32 + 32])

    def unseen(self, now: int) -> tuple[npt.NDArray[np.intp], int]:
        """Positions of leaves not :attr:`seen` whose entry must still be there (in order), and
        how many unseen ones may lawfully be gone at Unix second ``now``."""
        lawful_from = np.frombuffer(self._lawful_from, np.int64) if len(self) else np.empty(0)
        unseen = ~self.seen
        lawful = unseen & (lawful_from <= now)
        return np.flatnonzero(unseen & ~lawful), int(lawful.sum())
