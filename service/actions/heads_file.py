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

A line that cannot be read (not UTF-8, or JSON cut short: syslog receivers cut long lines,
rsyslog at 8 KiB by default) is counted as unreadable, its number kept, and reading goes on,
whatever the line seemed to hold (a cut checkpoint too). A whole document stops at its first
unreadable value (then the file is also read as lines, in case only its first line was cut, and
the reading that finds more heads is kept). Only a file that cannot be opened, or holds no
checkpoint of the account, is an error.
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
UNREADABLE_SHOWN = 10
"""Unreadable lines named in the report, at most (the first ones)."""
_DECODER = json.JSONDecoder()


class HeadsFileError(Exception):
    """The file cannot be opened, or holds no head of the account (naming the first line that
    could not be read, if any)."""


@dataclass
class KeptHeads:
    account_id: str
    heads: list[dict[str, Any]] = field(default_factory=list)
    """The account's checkpoints, in file order, as found (not checked)."""
    ignored: int = 0
    """Values and lines that are not checkpoints (entries, OCSF events, other text)."""
    other_accounts: dict[str, int] = field(default_factory=dict)
    """Checkpoints of other accounts, by account."""
    unreadable: int = 0
    """Lines (or a document's rest) that could not be read: not UTF-8, or JSON cut short."""
    unreadable_lines: list[int] = field(default_factory=list)
    """The first :data:`UNREADABLE_SHOWN` of them, by line number (when known)."""
    first_unreadable: str = ""
    """Why the first of them could not be read, with its line."""

    def skip(self, number: int, why: str) -> None:
        """Count line ``number`` (0: not known) as unreadable, ``why``."""
        self.unreadable += 1
        if number and len(self.unreadable_lines) < UNREADABLE_SHOWN:
            self.unreadable_lines.append(number)
        if not self.first_unreadable:
            self.first_unreadable = f"line {number}: {why}" if number else why

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
    """The heads of ``account_id`` that ``path`` holds; :class:`HeadsFileError` when it cannot
    be opened, or holds no head of the account."""
    kept = KeptHeads(account_id)
    try:
        if _read_lines(path, kept, document=True):
            _read_document(path, kept)
            if kept.unreadable:  # a document cut short, or lines the first of which is cut
                lines = KeptHeads(account_id)
                _read_lines(path, lines, document=False)
                kept = lines if len(lines.heads) > len(kept.heads) else kept
    except OSError as e:
        raise HeadsFileError(f"cannot read {path}: {e}") from e
    if not kept.heads:
        raise HeadsFileError(_none_held(path, kept))
    return kept


def _none_held(path: Path, kept: KeptHeads) -> str:
    others = ", ".join(sorted(kept.other_accounts))
    details = [f"{kept.ignored} other value{'' if kept.ignored == 1 else 's'} ignored"]
    if kept.unreadable:
        lines = "line" if kept.unreadable == 1 else "lines"
        details.append(f"{kept.unreadable} {lines} unreadable, the first: {kept.first_unreadable}")
    if others:
        details.append(f"it holds checkpoints of {others}")
    return (
        f"{path} holds no checkpoint of account '{kept.account_id}' ({'; '.join(details)}): give "
        "the checkpoint events a streaming destination received"
    )


def _read_lines(path: Path, kept: KeptHeads, *, document: bool) -> bool:
    """Read ``path`` line by line; True when ``document`` may start on its first line and that
    line is not whole JSON (a document spread over lines: read it whole instead, nothing kept
    from here)."""
    with path.open("rb") as lines:
        first = document
        for number, raw in enumerate(lines, start=1):
            try:
                text = raw.decode("utf-8").strip().removeprefix(BOM)
            except UnicodeDecodeError:
                kept.skip(number, "not UTF-8 text")
                first = False
                continue
            if not text:
                continue
            if text[0] in "{[":
                values: list[Any] = []
                try:
                    values.extend(_values(text))
                except ValueError as e:
                    if first:
                        return True
                    kept.skip(number, _not_json(e))
            else:
                values = _carried(kept, number, text)
            first = False
            for value in values:
                kept.add(value)
    return False


def _read_document(path: Path, kept: KeptHeads) -> None:
    """Read ``path`` as JSON values spread over lines, as far as its first unreadable one."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError as e:
        kept.skip(data.count(b"\n", 0, e.start) + 1, "not UTF-8 text")
        return
    try:
        for value in _values(text):
            kept.add(value)
    except ValueError as e:
        kept.skip(e.lineno if isinstance(e, json.JSONDecodeError) else 0, _not_json(e))


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


def _carried(kept: KeptHeads, number: int, line: str) -> list[Any]:
    """The event a log line carries (after its BOM, else from ``{"event_type"``), if any."""
    at = line.find(BOM)
    start = at + 1 if at >= 0 else line.find(EVENT_START)
    if start < 0:
        kept.ignored += 1  # a line of text with no event
        return []
    try:
        value, _ = _DECODER.raw_decode(line, start)
    except (ValueError, RecursionError) as e:
        kept.skip(number, _not_json(e))
        return []
    return [value]


def _not_json(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "not JSON (JSON nested too deeply)"
    detail = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
    return f"not JSON ({detail})"
