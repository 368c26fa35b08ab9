"""Validation of one entry as sent: every field checked, normalised, or rejected naming it.

Rules (documented in the README): ``id`` ≤128 of ``[A-Za-z0-9._:-]``; when absent the service
generates one in a namespace of its own (:func:`generated_id`: ``~`` and 32 hex digits, which no
client can send, so it needs no claim to stay unique);
``timestamp`` RFC 3339 with an offset, not more than ``AUDITLOG_MAX_FUTURE_SKEW_S`` ahead, stored
in UTC with milliseconds (defaults to the time of receipt); ``category`` and ``type`` from the
contract (``type`` defaults to ``notice``); ``actor.type`` and ``actor.id`` required; ``action``
required; ``message`` at most 10,000 characters; known metadata keys typed by the templates;
unknown metadata keys named as the engine takes them (not empty, no empty part between dots, no
path into a known key) and their values nested at most ``MAX_METADATA_DEPTH`` levels;
``integration`` entries older than their retention are rejected as expired.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ingest.schema import INT_BOUNDS, KEYWORD_MAX, FieldRule, metadata_rules
from service.search.identifiers import STORED_ID
from service.vocabulary import ACTOR_TYPES, CATEGORIES, EXPIRING_CATEGORIES, STORED_TIMESTAMP, TYPES

ENTRY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
GENERATED_MARK = "~"
"""The first character of every generated id; ``ENTRY_ID`` refuses it in what clients send."""
ACTION = re.compile(r"^[A-Za-z0-9_.:/*-]{1,256}\Z")
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt]([01]\d|2[0-3]):(\d{2}):(\d{2})(\.\d{1,9})?"
    r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)\Z"
)
"""RFC 3339 with an offset of ``HH:MM``, hours 00-23 and minutes 00-59 (``fromisoformat`` reads
``+00:99`` as 99 minutes)."""
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\Z")
TOP_LEVEL = {
    "id",
    "account_id",
    "timestamp",
    "category",
    "type",
    "actor",
    "action",
    "message",
    "metadata",
}
ACTOR_FIELDS = {"type", "id", "name", "email"}
MAX_MESSAGE = 10_000
MAX_ACTOR_FIELD = 256
MAX_IP_TEXT = 64
"""Longer than any address (and only short texts go into the cache of checked addresses)."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""No entry is older (instants are compared, whatever offset a timestamp was written with)."""
EXPIRY = timedelta(days=30)
MAX_METADATA_DEPTH = 64
"""Arrays and objects nested in one metadata value at most: entries are serialised again a few
levels deeper (search answers, exports, webhook payloads), and orjson stops at 254 levels."""
ENGINE_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2008\u2009\u200a\u2028\u2029\u205f\u3000"
)
"""What Elasticsearch counts as whitespace in a field name (Java's ``Character.isWhitespace``:
Python's ``isspace`` but for U+0085, U+00A0, U+2007 and U+202F)."""


class Rejected(Exception):
    """The entry is invalid; ``field`` names the culprit."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(slots=True)
class ValidEntry:
    id: str
    account_id: str
    timestamp: datetime
    source: dict[str, Any]
    generated: bool = False
    """The id was generated for this entry now (:func:`generated_id`): it needs no claim."""


def generated_id() -> str:
    """A new entry id no client can send: ``~``, the milliseconds since the epoch (12 hex
    digits, so ids sort by when they were made) and 80 random bits (20 hex digits)."""
    return f"{GENERATED_MARK}{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def is_generated(entry_id: str) -> bool:
    """Whether ``entry_id`` was made by :func:`generated_id` (or by a client: it cannot be)."""
    return entry_id.startswith(GENERATED_MARK)


def parse_timestamp(value: object, field: str = "timestamp") -> datetime:
    """An aware datetime from an RFC 3339 string (nanoseconds truncated to microseconds)."""
    if not isinstance(value, str) or not RFC3339.match(value):
        raise Rejected(
            field, "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-26T10:15:00Z"
        )
    try:  # the pattern admits only forms that fromisoformat reads (digits past 6 truncated)
        return datetime.fromisoformat(value.upper())
    except ValueError as e:
        raise Rejected(field, f"is not a valid date or time: {e}") from e


def format_utc(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (the stored form of every timestamp)."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")  # ...+00:00
    return text[:-6] + "Z"


def _stored_form(sent: object, timestamp: datetime) -> str:
    """``format_utc(timestamp)``; the text as sent when it is already in that form (most are)."""
    if isinstance(sent, str) and STORED_TIMESTAMP.fullmatch(sent):
        return sent
    return format_utc(timestamp)


@functools.lru_cache(maxsize=4096)
def _is_ip(value: str) -> bool:
    """Addresses repeat from entry to entry (the same people, the same servers)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _string(value: object, field: str, limit: int, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise Rejected(field, "must be a non-empty string" if required else "must be a string")
    if len(value) > limit:
        raise Rejected(field, f"is longer than {limit} characters")
    return value


def _actor(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Rejected("actor", "must be an object with at least type and id")
    if not ACTOR_FIELDS.issuperset(value):
        unknown = set(value) - ACTOR_FIELDS
        raise Rejected(f"actor.{sorted(unknown)[0]}", "is not a known actor field")
    if value.get("type") not in ACTOR_TYPES:
        raise Rejected("actor.type", f"must be one of {', '.join(ACTOR_TYPES)}")
    actor = {"type": str(value["type"])}
    actor["id"] = _string(value.get("id"), "actor.id", MAX_ACTOR_FIELD) or ""
    name = _string(value.get("name"), "actor.name", MAX_ACTOR_FIELD, required=False)
    if name is not None:
        actor["name"] = name
    email = _string(value.get("email"), "actor.email", 320, required=False)
    if email is not None:
        if not EMAIL.match(email):
            raise Rejected("actor.email", "is not an email address")
        actor["email"] = email
    return actor


def _check_metadata_value(key: str, value: object, rule: FieldRule) -> None:
    field = f"metadata.{key}"
    if value is None:
        return
    if rule.type in INT_BOUNDS:
        low, high = INT_BOUNDS[rule.type]
        if isinstance(value, bool) or not isinstance(value, int):
            raise Rejected(field, "must be an integer")
        if not low <= value <= high:
            raise Rejected(field, "is out of range")
    elif rule.type == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Rejected(field, "must be a number")
        if not math.isfinite(value):
            raise Rejected(field, "must be a finite number")
    elif rule.type == "ip":
        if not isinstance(value, str) or len(value) > MAX_IP_TEXT or not _is_ip(value):
            raise Rejected(field, "must be an IPv4 or IPv6 address")
    else:
        if not isinstance(value, str):
            raise Rejected(field, "must be a string")
        if len(value) > KEYWORD_MAX:
            raise Rejected(field, f"is longer than {KEYWORD_MAX} characters")
    if rule.minimum is not None and isinstance(value, int | float) and value < rule.minimum:
        raise Rejected(field, f"must be >= {rule.minimum:g}")
    if rule.enum is not None and value not in rule.enum:
        raise Rejected(field, f"must be one of {', '.join(rule.enum)}")


@dataclass(frozen=True, slots=True)
class _KeyCheck:
    """A known metadata key's rule, with the common valid values recognised without a call: a
    short text for a free keyword, an integer within range for an integer field."""

    rule: FieldRule
    plain_text: bool
    int_range: tuple[int, int] | None


def _key_check(rule: FieldRule) -> _KeyCheck:
    plain_text = rule.type == "keyword" and rule.enum is None
    int_range = None
    if rule.type in INT_BOUNDS and rule.enum is None:
        low, high = INT_BOUNDS[rule.type]
        if rule.minimum is not None:
            low = max(low, math.ceil(rule.minimum))  # an integer >= minimum is >= its ceiling
        int_range = (low, high)
    return _KeyCheck(rule, plain_text, int_range)


@functools.cache
def _key_checks(templates_dir: Path) -> dict[str, dict[str, _KeyCheck]]:
    """Category → known metadata key → its check."""
    return {
        category: {key: _key_check(rule) for key, rule in rules.items()}
        for category, rules in metadata_rules(templates_dir).items()
    }


def _blank(text: str) -> bool:
    return not text.strip(ENGINE_WHITESPACE)


def _check_unknown_key(key: str, known: dict[str, _KeyCheck]) -> None:
    """Refuse the key names the engine refuses, or reads as a path into a known key: it splits a
    name at its dots (trailing empty parts dropped), and every part must have a character that
    is not whitespace. Only ``metadata``'s own keys are read so: unknown values are not parsed."""
    if key and "." not in key and key[0] not in ENGINE_WHITESPACE:
        return  # a name such as user-agent: taken as is
    if _blank(key):
        raise Rejected("metadata", "has a key that is empty or only whitespace")
    parts = key.split(".")
    while parts and not parts[-1]:
        parts.pop()
    if not parts or any(_blank(part) for part in parts):
        raise Rejected(
            f"metadata.{key}", "is not a usable key: a dot separates parts of a path, and no part "
            "may be empty or only whitespace (e.g. a..b, .a)",
        )  # fmt: skip
    if parts[0] in known:
        raise Rejected(
            f"metadata.{key}", f"is read as a path into the known key '{parts[0]}' (a dot "
            "separates the parts of a path): use another name",
        )  # fmt: skip


def _too_deep(level: list[Any]) -> bool:
    """Whether one of the arrays and objects of ``level`` nests more than
    :data:`MAX_METADATA_DEPTH` (counting itself): gone through level by level, without recursion,
    looking only into arrays and objects."""
    for _ in range(MAX_METADATA_DEPTH):
        level = [v for c in level for v in (c.values() if type(c) is dict else c)
                 if type(v) is dict or type(v) is list]  # fmt: skip
        if not level:
            return False
    return True


def _any_too_deep(nested: list[Any]) -> bool:
    """:func:`_too_deep`, answered without going through ``nested`` when its JSON holds at most
    :data:`MAX_METADATA_DEPTH` ``[`` and ``{`` besides its own (those in strings too): orjson
    writes it far faster than Python goes through it."""
    try:
        text = orjson.dumps(nested)
    except orjson.JSONEncodeError:  # nested past orjson's limit, or not JSON (not from a client)
        return _too_deep(nested)
    return text.count(b"[") + text.count(b"{") > MAX_METADATA_DEPTH + 1 and _too_deep(nested)


def _metadata(value: object, checks: dict[str, _KeyCheck]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Rejected("metadata", "must be an object")
    nested: list[Any] = []  # the unknown keys' arrays and objects (known keys take none)
    for key, item in value.items():
        check = checks.get(key)
        if check is None:  # unknown keys are kept as sent
            if not key.isidentifier():  # most keys are: not empty, no dot, no whitespace
                _check_unknown_key(key, checks)
            kind = type(item)
            if kind is dict or kind is list:
                nested.append(item)
            continue
        if check.plain_text:
            if type(item) is str and len(item) <= KEYWORD_MAX:
                continue
        elif (bounds := check.int_range) and type(item) is int and bounds[0] <= item <= bounds[1]:
            continue
        _check_metadata_value(key, item, check.rule)
    if nested and _any_too_deep(nested):  # all at once; then which key, only when one is
        key = next(k for k, v in value.items() if k not in checks and type(v) in (dict, list)
                   and _too_deep([v]))  # fmt: skip
        raise Rejected(
            f"metadata.{key}",
            f"is nested more than {MAX_METADATA_DEPTH} levels deep (arrays and objects)",
        )
    return value


class EntryChecks:
    """The checks of the entries received at ``now``, with what they share worked out once."""

    def __init__(
        self, now: datetime, max_skew_s: int, templates_dir: Path, restoring: bool = False
    ) -> None:
        self.restoring = restoring
        """An import: an id generated earlier (an export's) is kept, as a client's id is."""
        self.now = now
        self.max_skew_s = max_skew_s
        self.latest = now + timedelta(seconds=max_skew_s)
        self.expired_before = now - EXPIRY
        self.received_at = format_utc(now)
        self.metadata = _key_checks(templates_dir)

    def _when(self, sent: object) -> datetime:
        if sent is None:
            return self.now
        timestamp = parse_timestamp(sent)
        if timestamp < EPOCH:  # the instant: 1970-01-01T00:00:00+14:00 is in 1969
            raise Rejected("timestamp", "must not be before 1970")
        if timestamp > self.latest:
            raise Rejected("timestamp", f"is more than {self.max_skew_s} s in the future")
        return timestamp

    def entry(self, raw: object, account_id: str) -> ValidEntry:
        """The normalised entry of ``account_id``, or :class:`Rejected` naming the bad field."""
        if not isinstance(raw, dict):
            raise Rejected(None, "an entry must be a JSON object")
        if not TOP_LEVEL.issuperset(raw):
            unknown = set(raw) - TOP_LEVEL
            raise Rejected(sorted(unknown)[0], "is not a field of an entry")
        get = raw.get
        entry_id = get("id")
        generated = entry_id is None
        if generated:
            entry_id = generated_id()
        elif not isinstance(entry_id, str) or not (
            ENTRY_ID.match(entry_id) or (self.restoring and STORED_ID.match(entry_id))
        ):
            raise Rejected("id", "must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        category = get("category")
        if category not in CATEGORIES:
            raise Rejected("category", f"must be one of {', '.join(CATEGORIES)}")
        entry_type = get("type", "notice")
        if entry_type not in TYPES:
            raise Rejected("type", f"must be one of {', '.join(TYPES)}")
        sent = get("timestamp")
        timestamp = self._when(sent)
        if category in EXPIRING_CATEGORIES and timestamp < self.expired_before:
            raise Rejected("timestamp", f"expired: {category} entries are kept 30 days")
        action = get("action")
        if not isinstance(action, str) or not ACTION.match(action):
            raise Rejected("action", "must be 1-256 characters of A-Z a-z 0-9 _ . : / * -")
        message = get("message", "")
        if message is None:
            message = ""
        elif not isinstance(message, str):
            raise Rejected("message", "must be a string")
        elif len(message) > MAX_MESSAGE:
            raise Rejected("message", f"is longer than {MAX_MESSAGE} characters")
        source = {
            "id": entry_id,
            "account_id": account_id,
            "timestamp": _stored_form(sent, timestamp),
            "category": category,
            "type": entry_type,
            "actor": _actor(get("actor")),
            "action": action,
            "message": message,
            "metadata": _metadata(get("metadata"), self.metadata[str(category)]),
            "ingested_at": self.received_at,
        }
        return ValidEntry(entry_id, account_id, timestamp, source, generated)


def validate_entry(
    raw: object, account_id: str, now: datetime, max_skew_s: int, templates_dir: Path
) -> ValidEntry:
    """The normalised entry of ``account_id``, or :class:`Rejected` naming the bad field (one
    entry; :class:`EntryChecks` checks many received at the same time)."""
    return EntryChecks(now, max_skew_s, templates_dir).entry(raw, account_id)
