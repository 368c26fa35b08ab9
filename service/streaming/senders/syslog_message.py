"""One RFC 5424 syslog message per stream event: header, our structured data, the event as JSON.

``<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [auditlog@32473 id=".." ...] BOM{event JSON}``

- PRI = facility * 8 + severity. The facility is the setting ``facility``: 0-23 or a name
  (``audit`` = 13 "log audit", the default; ``local0``…``local7`` = 16-23; ``auth`` = 4,
  ``authpriv`` = 10, ``user`` = 1…). The severity comes from the entry's ``type``: error → 3 (err),
  warning → 4 (warning), notice → 5 (notice); a checkpoint is 6 (info).
- TIMESTAMP is when the event happened (an entry's timestamp, a checkpoint's ``sealed_at``, an
  OCSF event's ``time``) in UTC with milliseconds; the exact value stays in the JSON. HOSTNAME is
  the setting ``host`` (default: this host's name), APP-NAME the setting ``app_name`` (default
  ``auditlog``), PROCID ``-``, MSGID the entry's action (``checkpoint`` for a checkpoint), cut to
  RFC 5424's 32 printable ASCII characters.
- STRUCTURED-DATA: one element ``auditlog@32473`` with ``id`` (the idempotency key of
  :func:`.event_fields.entry_id`: receivers drop a message whose id they already have),
  ``position``, ``account``, ``category``, ``type`` and ``action`` (a checkpoint: ``seq`` and
  ``tree_size``), values escaped as RFC 5424 §6.3.3 requires (``"``, ``\\`` and ``]``). 32473
  is the private enterprise number RFC 5612 reserves for documentation (RFC 5424's own examples
  use it): a number registered for the service replaces it in :data:`SD_ID` once IANA assigns it.
- MSG: a UTF-8 BOM and the event as compact JSON.

A message longer than the setting ``max_message_bytes`` (default 64 KiB; at least 2,048, so that
header and structured data always fit) is never cut blindly: the largest strings of the event are
shortened, each ending with ``[truncated: N bytes]``, until the message fits, and the element
carries ``truncated="<bytes of the full JSON>"``; the receiver fetches the whole entry by its id.
Should shortening strings not suffice, MSG is a small JSON stub with the event's type, position
and id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from service.streaming.senders.base import Event
from service.streaming.senders.event_fields import entry_id, is_checkpoint, utc_text

SD_ID = "auditlog@32473"
BOM = b"\xef\xbb\xbf"
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
              "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12,
              "audit": 13, "alert": 14, "clock": 15,
              **{f"local{n}": 16 + n for n in range(8)}}  # fmt: skip
DEFAULT_FACILITY = FACILITIES["audit"]
SEVERITIES = {"error": 3, "warning": 4, "notice": 5}
CHECKPOINT_SEVERITY = 6
UNKNOWN_SEVERITY = 5
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
MIN_MAX_MESSAGE_BYTES = 2048
MAX_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SD_VALUE_CHARS = 200
"""Longest SD-PARAM value but ``id`` (at most 128 characters by the contract): the JSON has all."""
_SD_ESCAPES = str.maketrans({'"': '\\"', "\\": "\\\\", "]": "\\]"})
_NOT_PRINTABLE = re.compile(r"[^\x21-\x7e]")


def sd_escape(value: str) -> str:
    """A PARAM-VALUE: ``"``, ``\\`` and ``]`` preceded by a backslash (RFC 5424 §6.3.3)."""
    return value.translate(_SD_ESCAPES)


def printable(text: str, limit: int) -> str:
    """A header field: printable US-ASCII (others become ``_``), at most ``limit``, or ``-``."""
    return _NOT_PRINTABLE.sub("_", text)[:limit] or "-"


@dataclass(frozen=True)
class Described:
    """What the header and the structured data say of one event."""

    severity: int
    timestamp: str
    msgid: str
    params: dict[str, Any]


def describe(event: Event) -> Described:
    """Severity, TIMESTAMP, MSGID and SD-PARAMs of an event: an entry, a checkpoint, or an entry
    mapped to OCSF (which has only its id and time to tell: see :mod:`.event_fields`).
    :class:`DeliveryError` (not retried) for an event without an id."""
    key = entry_id(event)
    timestamp = utc_text(event) or "-"
    if is_checkpoint(event):
        signed = event["checkpoint"]
        params = {"id": key, "position": event.get("position"),
                  "account": event.get("account_id") or signed.get("account_id"),
                  "type": "checkpoint", "seq": signed.get("seq"),
                  "tree_size": signed.get("tree_size")}  # fmt: skip
        return Described(CHECKPOINT_SEVERITY, timestamp, "checkpoint", params)
    nested = event.get("entry")
    entry: dict[str, Any] = nested if isinstance(nested, dict) else {}
    kind, action = entry.get("type"), entry.get("action")
    params = {"id": key, "position": event.get("position"),
              "account": event.get("account_id") or entry.get("account_id"),
              "category": entry.get("category"), "type": kind, "action": action}  # fmt: skip
    severity = SEVERITIES.get(kind, UNKNOWN_SEVERITY) if isinstance(kind, str) else UNKNOWN_SEVERITY
    return Described(severity, timestamp, action if isinstance(action, str) else "-", params)


def structured_data(params: Mapping[str, Any]) -> str:
    parts = [SD_ID]
    for name, value in params.items():
        if value is None or isinstance(value, Mapping | list):
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if name != "id" and len(text) > SD_VALUE_CHARS:
            text = text[: SD_VALUE_CHARS - 1] + "…"
        parts.append(f'{name}="{sd_escape(text)}"')
    return "[" + " ".join(parts) + "]"


def compact_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        # Text that is not valid UTF-8 (a lone surrogate): JSON's \u escapes carry it.
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode()


def _strings(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _replace(value: Any, path: tuple[Any, ...], new: str) -> Any:
    """A copy of ``value`` with the string at ``path`` replaced (containers on the path copied)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copied = list(value)
    copied[head] = _replace(copied[head], rest, new)
    return copied


def shorten(event: Event, budget: int) -> bytes:
    """The event's JSON in at most ``budget`` bytes: its largest strings cut, each ending with
    ``[truncated: N bytes]``; a stub naming the event if that is not enough."""
    current: Any = dict(event)
    # The path of each string cut → (its original UTF-8 bytes, how many of them are kept).
    kept: dict[tuple[Any, ...], tuple[bytes, int]] = {}
    body = compact_json(current)
    for _ in range(64):
        excess = len(body) - budget
        if excess <= 0:
            return body
        path, text = max(_strings(current), key=lambda found: len(compact_json(found[1])),
                         default=((), ""))  # fmt: skip
        if len(compact_json(text)) <= 64:
            break
        whole = text.encode("utf-8", "replace")
        original, keep = kept.get(path, (whole, len(whole)))
        cut = original[: max(0, keep - excess - 40)].decode("utf-8", "ignore").encode()
        kept[path] = (original, len(cut))
        marker = f"[truncated: {len(original) - len(cut)} bytes]"
        current = _replace(current, path, cut.decode() + marker)
        body = compact_json(current)
    stub = {"event_type": event.get("event_type"), "position": event.get("position"),
            "id": describe(event).params.get("id"), "truncated": True}  # fmt: skip
    return compact_json(stub)


@dataclass(frozen=True)
class MessageFormat:
    """How events become messages for one destination (see the module's docstring)."""

    facility: int = DEFAULT_FACILITY
    hostname: str = "-"
    app_name: str = "auditlog"
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], *, default_host: str) -> MessageFormat:
        """The format a destination's settings ask for; :class:`ValueError` naming the setting."""
        return cls(
            facility=_facility(settings.get("facility", DEFAULT_FACILITY)),
            hostname=_header_setting(settings, "host", default=default_host, limit=255),
            app_name=_header_setting(settings, "app_name", default="auditlog", limit=48),
            max_bytes=_max_bytes(settings.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)),
        )

    def encode(self, event: Event) -> bytes:
        """One SYSLOG-MSG of at most ``max_bytes`` octets."""
        described = describe(event)
        header = (f"<{self.facility * 8 + described.severity}>1 "
                  f"{described.timestamp} {self.hostname} {self.app_name} - "
                  f"{printable(described.msgid, 32)} ")  # fmt: skip
        body = compact_json(event)
        head = (header + structured_data(described.params) + " ").encode("utf-8", "replace")
        if len(head) + len(BOM) + len(body) <= self.max_bytes:
            return head + BOM + body
        params = {**described.params, "truncated": len(body)}
        head = (header + structured_data(params) + " ").encode("utf-8", "replace")
        return head + BOM + shorten(event, self.max_bytes - len(head) - len(BOM))


def _facility(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in FACILITIES:
        return FACILITIES[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 23:
        return value
    raise ValueError("facility: a number from 0 to 23 or a name (audit, local0…local7, auth…)")


def _header_setting(settings: Mapping[str, Any], name: str, *, default: str, limit: int) -> str:
    value = settings.get(name)
    if value is None or value == "":
        return printable(default, limit)
    if not isinstance(value, str) or _NOT_PRINTABLE.search(value) or len(value) > limit:
        raise ValueError(f"{name}: at most {limit} printable ASCII characters, no spaces")
    return value


def _max_bytes(value: Any) -> int:
    number = value if isinstance(value, int) and not isinstance(value, bool) else 0
    if MIN_MAX_MESSAGE_BYTES <= number <= MAX_MAX_MESSAGE_BYTES:
        return number
    raise ValueError(
        f"max_message_bytes: a number of bytes from {MIN_MAX_MESSAGE_BYTES} "
        f"to {MAX_MAX_MESSAGE_BYTES}"
    )
