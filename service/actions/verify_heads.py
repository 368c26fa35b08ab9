"""Anchoring: the heads a customer kept, checked against the service's log.

Every streaming destination receives the account log's signed checkpoints (its **heads**), so
the customer holds a copy the service's operator cannot change. A log rewritten or cut short in
the engine (its newest entries removed with their segments and checkpoints, or the whole log
sealed again as a new history, even signed with the service's own keys) verifies clean on its
own; it cannot agree with every head handed out before. Each kept head (identical copies once):

1. **not signed by us** unless it is a well-formed checkpoint whose Ed25519 signature verifies
   under a trusted key (the current key and ``previous/`` keys): a damaged or forged copy, which
   says nothing about the log;
2. **contradicted** when the service's log disagrees with it:

   - **rolled back**: its ``seq`` is past the service's latest checkpoint;
   - the service has no checkpoint of its ``seq``, or one that differs in any signed field or
     the signature (the fields that differ are named);
   - the service's first ``tree_size`` leaves do not hash to its root (or the stored log holds
     fewer): whatever the checkpoints say, the log no longer extends this head;

3. **matching** otherwise.

A file whose heads of the account are all not signed by us checked nothing: the verification
fails (``none_verified`` says why), since a log sealed again under new keys (the old ones
dropped) would otherwise pass against real heads. The file's unreadable lines are reported.

Checkpoints and leaves are read once, in order, as far as the newest kept head; memory holds the
kept heads and the Merkle tree's right edge.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from service.actions.heads_file import KeptHeads
from service.actions.verify import Problems
from service.integrity.checkpoints import (
    HEX_DIGEST,
    SIGNED_FIELDS,
    leaf_hash_of,
    signed_part,
    well_formed,
)
from service.integrity.keys import IntegrityKeys
from service.integrity.merkle import Frontier
from service.runtime import Runtime
from service.search.integrity_log import IntegrityLog

COMPARED = (*SIGNED_FIELDS, "signature")
KINDS: dict[str, type] = {"genesis": bool, "seq": int, "tree_size": int}
"""The type of each checkpoint member that is not a string."""
LABELS = {str: "a string", bool: "true or false", int: "an integer"}
Head = dict[str, Any]


@dataclass
class HeadsCheck:
    """The ``heads`` section of the verification report."""

    checked: int = 0
    """Distinct heads of the account in the file."""
    matching: int = 0
    contradicted: Problems = field(default_factory=Problems)
    not_signed_by_us: Problems = field(default_factory=Problems)
    duplicates: int = 0
    ignored: int = 0
    other_accounts: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0
    unreadable_lines: list[int] = field(default_factory=list)

    @property
    def none_verified(self) -> str | None:
        """Why nothing was checked, when the file holds heads of the account and none of them
        is signed by the service's keys."""
        if not self.checked or self.matching or self.contradicted.count:
            return None
        return (
            f"no head of the account could be checked ({self.checked} in the file): none is "
            "signed by the service's keys (see not_signed_by_us). They are another deployment's "
            "heads, or AUDITLOG_KEYS_DIR lacks the previous/ key that signed them (kept at a key "
            "rotation), or the log was sealed again under new keys"
        )

    @property
    def ok(self) -> bool:
        return not self.contradicted.count and self.none_verified is None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "matching": self.matching,
                "contradicted": {"count": self.contradicted.count,
                                 "heads": self.contradicted.sample},
                "not_signed_by_us": {"count": self.not_signed_by_us.count,
                                     "heads": self.not_signed_by_us.sample},
                "none_verified": self.none_verified,
                "duplicates": self.duplicates, "ignored": self.ignored,
                "unreadable": {"count": self.unreadable, "lines": self.unreadable_lines},
                "other_accounts": self.other_accounts}  # fmt: skip


def malformed(head: Head) -> str | None:
    """Why ``head`` is not a checkpoint (the first field that is wrong), or ``None``."""
    for name in COMPARED:
        kind = KINDS.get(name, str)
        if type(head.get(name)) is not kind:
            return f"not a checkpoint: its {name} is missing or not {LABELS[kind]}"
    if head["seq"] < 1 or head["tree_size"] < 0:
        return "not a checkpoint: its seq or tree_size is out of range"
    if not HEX_DIGEST.fullmatch(head["root"]):
        return "not a checkpoint: its root is not a SHA-256 in hex"
    return None


def _signed(check: HeadsCheck, keys: IntegrityKeys, kept: KeptHeads) -> list[Head]:
    """The distinct heads the service's keys signed, by ``seq``; the others reported."""
    seen: set[str] = set()
    signed: list[Head] = []
    for head in kept.heads:
        identity = json.dumps(head, sort_keys=True)
        if identity in seen:
            check.duplicates += 1
            continue
        seen.add(identity)
        check.checked += 1
        seq = head.get("seq")
        why = malformed(head)
        if why is None and head["key_id"] not in keys.public:
            why = f"its key {head['key_id']} is not one of the service's keys"
        elif why is None and not keys.verifies(head["key_id"], signed_part(head),
                                               head["signature"]):  # fmt: skip
            why = "the signature does not verify: a damaged or forged copy"
        if why is None:
            signed.append(head)
        else:
            check.not_signed_by_us.add(seq=seq, reason=why)
    return sorted(signed, key=lambda h: (h["seq"], h["tree_size"]))


async def verify_heads(
    runtime: Runtime, keys: IntegrityKeys, account_id: str, kept: KeptHeads
) -> HeadsCheck:
    """Each head ``kept`` holds against the account's log as the engine holds it now."""
    check = HeadsCheck(ignored=kept.ignored, other_accounts=dict(kept.other_accounts),
                       unreadable=kept.unreadable,
                       unreadable_lines=list(kept.unreadable_lines))  # fmt: skip
    heads = _signed(check, keys, kept)
    if not heads:
        return check
    log = IntegrityLog(runtime.es, runtime.names)
    latest = await log.latest_checkpoint(account_id)
    latest_seq = int(latest["seq"]) if latest else 0
    sealed = int(latest["tree_size"]) if latest else 0
    reasons: dict[int, list[str]] = {n: [] for n in range(len(heads))}
    await _against_checkpoints(heads, reasons, log.checkpoints(account_id), latest_seq)
    await _against_leaves(heads, reasons, _leaves(log, account_id), sealed)
    for n, head in enumerate(heads):
        if reasons[n]:
            check.contradicted.add(seq=head["seq"], tree_size=head["tree_size"],
                                   reason="; ".join(reasons[n]))  # fmt: skip
        else:
            check.matching += 1
    return check


async def _against_checkpoints(
    heads: list[Head],
    reasons: dict[int, list[str]],
    checkpoints: AsyncIterator[dict[str, Any]],
    latest_seq: int,
) -> None:
    """Each head against the service's checkpoint of its ``seq`` (read in order, once)."""
    stored: dict[str, Any] | None = None
    for n, head in enumerate(heads):
        seq = head["seq"]
        if seq > latest_seq:
            reasons[n].append(f"rolled back: the service's log ends before this head (its "
                              f"latest checkpoint is seq {latest_seq})")  # fmt: skip
            continue
        while stored is None or int(stored.get("seq", 0)) < seq:
            stored = await anext(checkpoints, None)
            if stored is None:
                break
        if stored is None or int(stored.get("seq", 0)) != seq:
            reasons[n].append(f"the service's log has no checkpoint {seq}")
            if stored is None:
                stored = {"seq": latest_seq + 1}  # nothing more to read
            continue
        differ = [name for name in COMPARED if stored.get(name) != head[name]]
        if differ:
            reasons[n].append(f"the service's checkpoint {seq} differs in {', '.join(differ)}")


async def _leaves(log: IntegrityLog, account_id: str) -> AsyncIterator[dict[str, str] | str]:
    """The stored leaves in order, then a string saying why they end early (a gap, a damaged
    leaf); nothing more after the last segment."""
    position = 0
    async for segment in log.segments(account_id):
        stored = segment.get("leaves")
        if segment.get("start") != position or not isinstance(stored, list):
            yield f"the service's log holds no leaf at position {position}"
            return
        for item in stored:
            if not well_formed(item):
                yield f"the service's leaf at position {position} is damaged"
                return
            yield item
            position += 1


async def _against_leaves(
    heads: list[Head],
    reasons: dict[int, list[str]],
    leaves: AsyncIterator[dict[str, str] | str],
    sealed: int,
) -> None:
    """Each head's root against the root of the service's first ``tree_size`` leaves, by tree
    size (the leaves hashed once, as far as the service's latest checkpoint reaches)."""
    frontier, ended = Frontier(), ""
    for n in sorted(reasons, key=lambda n: heads[n]["tree_size"]):
        size = heads[n]["tree_size"]
        if size > sealed:
            reasons[n].append(f"its tree size {size} is past the service's sealed log "
                              f"({sealed} entries)")  # fmt: skip
            continue
        while not ended and frontier.size < size:
            item = await anext(leaves, f"the service's log holds {frontier.size} leaves")
            if isinstance(item, str):
                ended = item
            else:
                frontier.append(leaf_hash_of(item))
        if frontier.size < size:
            reasons[n].append(f"{ended}, short of its tree size {size}")
        elif frontier.root().hex() != heads[n]["root"]:
            reasons[n].append(f"the service's first {size} leaves do not hash to its root: "
                              "the log no longer extends this head")  # fmt: skip
