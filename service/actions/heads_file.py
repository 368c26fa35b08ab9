"""The heads a customer kept: the account log's signed checkpoints, read out of what their
receiver stored.

A streaming destination receives each checkpoint as an event of its own,
``{"event_type": "checkpoint", "account_id": ..., "checkpoint": {...}}``. The file is read as
JSON values, one or more a line (NDJSON, or Splunk HEC envelopes one after another), or, when
its first line is not whole JSON, as one document (a JSON array, a webhook batch, pretty
printed). In each value, a checkpoint is:

- a checkpoint event, or a bare checkpoint (an object with ``seq``, ``tree_size``, ``root`` and
  ``signature``);
- inside a webhook batch (``{"events": [...]}``), an array, a Splunk HEC envelope or search
  result (``event``, ``result``, ``_raw``: the event as a JSON string), an Elasticsearch hit
  (``_source``) or search answer (``hits.hits``).

A line that is not JSON is a log line (syslog): the event is the JSON after its UTF-8 BOM (as
the syslog sender writes it), else from its first ``{"event_type"``. Anything else (entries,
OCSF events, other text) is counted as ignored. Only the heads of the account asked for are
kept; those of other accounts are counted. Memory holds the account's heads, not the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKERS = frozenset({"seq", "tree_size", "root", "signature"})
"""The members that make an object a bare checkpoint."""
MAX_DEPTH = 6
"""Wrappers unwrapped, at most (a batch in an array in a hit...)."""
BOM = "\ufeff"
EVENT_START = '{"event_type"'
_DECODER = json.JSONDecoder()


class HeadsFileError(Exception):
    """The file cannot be read, is not what it should be (naming the line), or holds no head
    of the account."""


@dataclass
class KeptHeads:
    account_id: str
    heads: list[dict[str, Any]] = field(default_factory=list)
    """The account's checkpoints, in file order, as found (not checked)."""
    ignored: int = 0
    """Values and lines that are not checkpoints (entries, OCSF events, other text)."""
    other_accounts: dict[str, int] = field(default_factory=dict)
    """Checkpoints of other accounts, by account."""

    def add(self, value: Any, depth: int = 0) -> None:
        """Keep the checkpoints of ``value``, unwrapping what receivers wrap events in."""
        if isinstance(value, list) and depth < MAX_DEPTH:
            for item in value:
                self.add(item, depth + 1)
            return
        if not isinstance(value, dict):
            self.ignored += 1
            return
        if value.get("event_type") == "checkpoint" and isinstance(value.get("checkpoint"), dict):
            self._keep(value["checkpoint"])
        elif value.keys() >= MARKERS:
            self._keep(value)
        elif (inner := _unwrapped(value)) is not None and depth < MAX_DEPTH:
            self.add(inner, depth + 1)
        else:
            self.ignored += 1

    def _keep(self, checkpoint: dict[str, Any]) -> None:
        owner = checkpoint.get("account_id")
        if owner == self.account_id:
            self.heads.append(checkpoint)
        else:
            name = owner if isinstance(owner, str) else repr(owner)
            self.other_accounts[name] = self.other_accounts.get(name, 0) + 1


def _unwrapped(value: dict[str, Any]) -> Any:
    """What a receiver's wrapper holds: a webhook batch's events, a Splunk envelope's or
    result's event, an Elasticsearch hit's source or answer's hits; ``None`` for none."""
    for name, kind in (("events", list), ("event", dict), ("result", dict), ("_source", dict)):
        if isinstance(value.get(name), kind):
            return value[name]
    hits = value.get("hits")
    if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
        return hits["hits"]
    raw = value.get("_raw")
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            return None
    return None


def read_heads(path: Path, account_id: str) -> KeptHeads:
    """The heads of ``account_id`` that ``path`` holds; :class:`HeadsFileError` naming the line
    when it cannot be read, or when it holds no head of the account."""
    kept = KeptHeads(account_id)
    try:
        whole = _read_lines(path, kept)
        if whole:
            _read_document(path, kept)
    except OSError as e:
        raise HeadsFileError(f"cannot read {path}: {e}") from e
    if not kept.heads:
        others = ", ".join(sorted(kept.other_accounts))
        held = f"; it holds checkpoints of {others}" if others else ""
        other = f"{kept.ignored} other value{'' if kept.ignored == 1 else 's'} ignored"
        raise HeadsFileError(
            f"{path} holds no checkpoint of account '{account_id}' ({other}{held}): give the "
            "checkpoint events a streaming destination received"
        )
    return kept


def _read_lines(path: Path, kept: KeptHeads) -> bool:
    """Read ``path`` line by line; True when its first line is not whole JSON (a document
    spread over lines: read it whole instead, nothing kept from here)."""
    with path.open("rb") as lines:
        first = True
        for number, raw in enumerate(lines, start=1):
            text = _decoded(path, number, raw).strip().removeprefix(BOM)
            if not text:
                continue
            if text[0] in "{[":
                try:
                    values = list(_values(text))
                except ValueError as e:
                    if first:
                        return True
                    raise _invalid(path, number, e) from e
            else:
                values = _carried(path, number, text)
                if not values:
                    kept.ignored += 1  # a line of text with no event
            first = False
            for value in values:
                kept.add(value)
    return False


def _read_document(path: Path, kept: KeptHeads) -> None:
    data = path.read_bytes()
    text = _decoded(path, 0, data).removeprefix(BOM)
    try:
        for value in _values(text):
            kept.add(value)
    except ValueError as e:
        raise _invalid(path, e.lineno if isinstance(e, json.JSONDecodeError) else 0, e) from e


def _decoded(path: Path, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = number or raw.count(b"\n", 0, e.start) + 1
        raise HeadsFileError(f"{path}, line {line}: not UTF-8 text") from e


def _values(text: str) -> Iterator[Any]:
    """The JSON values of ``text``, one after another (whitespace between them)."""
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return
        try:
            value, at = _DECODER.raw_decode(text, at)
        except RecursionError as e:
            raise ValueError("JSON nested too deeply") from e
        yield value


def _carried(path: Path, number: int, line: str) -> list[Any]:
    """The event a log line carries (after its BOM, else from ``{"event_type"``), if any."""
    at = line.find(BOM)
    start = at + 1 if at >= 0 else line.find(EVENT_START)
    if start < 0:
        return []
    try:
        value, _ = _DECODER.raw_decode(line, start)
    except (ValueError, RecursionError) as e:
        raise _invalid(path, number, e) from e
    return [value]


def _invalid(path: Path, number: int, error: Exception) -> HeadsFileError:
    detail = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
    where = f", line {number}" if number else ""
    return HeadsFileError(f"{path}{where}: not JSON ({detail})")
