"""The search text ``q``: its small grammar and its translation into an Elasticsearch query.

``q`` is parsed by a hand-written tokenizer into a :class:`SearchText` and compiled into a plain
``bool`` query dict. Nothing the user types reaches the engine as query syntax: every word,
phrase and value ends up as a literal in a ``match``, ``match_phrase``, ``term``, ``terms``,
``prefix`` or ``range`` clause.

Grammar (terms are separated by whitespace):

* ``word`` and ``"quoted phrase"`` must all match (ANDed); ``-word`` and ``-"phrase"`` exclude.
  A word or phrase matches the entry's ``search_text`` (message, action, actor name and email,
  text metadata; words in any case, split at punctuation by the standard analyzer), or is
  whole the value of one of the entry's identifiers, in any case: entry id, actor id, webhook,
  Signal, AI Agent, API key and target ids, an IP address in any notation
  (:mod:`service.search.identifiers`). A part of an id is not a match (``wh_8f3a`` does not find
  ``wh_8f3a1b2c``), except for the ids ``search_text`` holds as words (run and record ids, post
  URNs, URLs and paths: a UUID's or URL's words match one by one). Quoted text is always plain
  text; there are no escapes inside quotes. A quote ends a bare word (``foo"bar"`` is the word
  ``foo`` and the phrase ``bar``); an empty phrase is ignored.
* ``name:value[,value...]`` narrows by a qualifier (values ORed); ``-name:value`` excludes. A value
  may be quoted (``actor:"Jane Doe"``). Names are case-insensitive; ``category``, ``type`` and
  ``provider`` values are too (they are lower-cased), the others are compared exactly, except
  that ``actor:`` takes an actor id (exact), name (whole, any case) or email (any case).
  ``id:`` takes entry ids (exact; a value that cannot be an entry id is an error). Repeating a
  qualifier ANDs the repetitions. ``action:`` values ending in ``*`` are prefixes.
* ``after:`` / ``before:`` take one ``YYYY-MM-DD`` (local midnight in the request timezone) or an
  RFC 3339 instant with ``Z`` or an offset; ``after`` is inclusive, ``before`` exclusive. They
  cannot be negated nor repeated. Parsing keeps them as a :class:`~datetime.date` or an aware
  :class:`~datetime.datetime`; :func:`compile_search_text` resolves them with the timezone.
* A token whose part before the first ``:`` is ASCII letters/underscores but not a qualifier is
  an error, except ``urn:``, ``http:`` and ``https:`` (post URNs and URLs are plain words) and
  an IPv6 address (``dead:beef::1``).

Every mistake is a 400 :class:`~service.errors.ServiceError` with ``field="q"``.
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from service.errors import bad_request
from service.search.identifiers import (
    actor_clause,
    checked_entry_ids,
    identifier_clauses,
    ip_address,
)
from service.vocabulary import CATEGORIES, PROVIDERS, TYPES

MAX_LENGTH = 1000
"""The longest ``q`` accepted, in characters."""
MAX_TERMS = 64
"""The most terms accepted: words, phrases, qualifier values and date bounds together."""

SEARCH_FIELD = "search_text"
QUALIFIER_FIELDS: dict[str, str] = {
    "id": "id",
    "category": "category",
    "type": "type",
    "actor": "actor.id",
    "action": "action",
    "provider": "metadata.provider",
    "status": "metadata.status",
}
"""The indexed field each list qualifier filters on (``actor:`` also its name and email)."""
DATE_QUALIFIERS = ("after", "before")
QUALIFIERS: tuple[str, ...] = (*QUALIFIER_FIELDS, *DATE_QUALIFIERS)

_CLOSED_LISTS: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "type": TYPES,
    "provider": PROVIDERS,
}
_PLAIN_PREFIXES = frozenset({"urn", "http", "https"})
_NAME_CHARS = frozenset(string.ascii_letters + "_")
_DIGITS = frozenset(string.digits)
_T = TypeVar("_T")
_INSTANT_HINT = "expected YYYY-MM-DD or an RFC 3339 instant such as 2026-11-01T10:00:00Z"


@dataclass(frozen=True)
class Qualifier:
    """One ``name:value,...`` term; ``negated`` when written ``-name:...``."""

    name: str
    values: tuple[str, ...]
    negated: bool = False


@dataclass(frozen=True)
class SearchText:
    """A parsed ``q``. ``after``/``before`` are dates (local midnight) or aware instants."""

    words: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    excluded_words: tuple[str, ...] = ()
    excluded_phrases: tuple[str, ...] = ()
    qualifiers: tuple[Qualifier, ...] = ()
    after: date | datetime | None = None
    before: date | datetime | None = None

    @property
    def term_count(self) -> int:
        texts = self.words + self.phrases + self.excluded_words + self.excluded_phrases
        values = sum(len(qualifier.values) for qualifier in self.qualifiers)
        bounds = sum(bound is not None for bound in (self.after, self.before))
        return len(texts) + values + bounds


class _Scanner:
    """A cursor over ``q`` that reads bare runs and quoted strings."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def at_boundary(self, ahead: int = 0) -> bool:
        char = self.peek(ahead)
        return char == "" or char.isspace()

    def skip_space(self) -> None:
        while self.peek().isspace():
            self.pos += 1

    def read_bare(self, stops: str) -> str:
        start = self.pos
        while not self.at_boundary() and self.peek() not in stops:
            self.pos += 1
        return self.text[start : self.pos]

    def read_quoted(self, where: str) -> str:
        start = self.pos + 1
        end = self.text.find('"', start)
        if end < 0:
            raise bad_request(f"unterminated quote {where}: {self.text[self.pos :]!r}", field="q")
        self.pos = end + 1
        return self.text[start:end]

    def bare_run(self) -> str:
        """The text from the cursor to the next space or quote (not consumed)."""
        end = self.pos
        while end < len(self.text) and not self.text[end].isspace() and self.text[end] != '"':
            end += 1
        return self.text[self.pos : end]

    def read_qualifier_name(self) -> str | None:
        """The lower-cased name of a ``name:`` at the cursor (consumed), else None."""
        end = self.pos
        while end < len(self.text) and self.text[end] in _NAME_CHARS:
            end += 1
        written = self.text[self.pos : end]
        name = written.lower()
        if not name or self.peek(end - self.pos) != ":" or name in _PLAIN_PREFIXES:
            return None
        if name not in QUALIFIERS:
            if ip_address(self.bare_run()) is not None:  # an IPv6 address such as dead:beef::1
                return None
            raise bad_request(
                f"unknown qualifier {written!r} (put it in quotes to search for the text)",
                field="q",
            )
        self.pos = end + 1
        return name


class _Collector:
    """Terms gathered while scanning, frozen into a :class:`SearchText` at the end."""

    def __init__(self) -> None:
        # Texts keyed by (negated, quoted).
        self.texts: defaultdict[tuple[bool, bool], list[str]] = defaultdict(list)
        self.qualifiers: list[Qualifier] = []
        self.bounds: dict[str, date] = {}

    def freeze(self) -> SearchText:
        return SearchText(
            words=tuple(self.texts[False, False]),
            phrases=tuple(self.texts[False, True]),
            excluded_words=tuple(self.texts[True, False]),
            excluded_phrases=tuple(self.texts[True, True]),
            qualifiers=tuple(self.qualifiers),
            after=self.bounds.get("after"),
            before=self.bounds.get("before"),
        )


def parse_search_text(text: str) -> SearchText:
    """Parse ``q``; raise a 400 ``ServiceError`` (``field="q"``) naming the first mistake."""
    if len(text) > MAX_LENGTH:
        raise bad_request(f"q is longer than {MAX_LENGTH} characters", field="q")
    scanner, collected = _Scanner(text), _Collector()
    scanner.skip_space()
    while scanner.peek():
        _read_term(scanner, collected)
        scanner.skip_space()
    parsed = collected.freeze()
    if parsed.term_count > MAX_TERMS:
        raise bad_request(
            f"q has {parsed.term_count} terms; at most {MAX_TERMS} are allowed", field="q"
        )
    return parsed


def _read_term(scanner: _Scanner, collected: _Collector) -> None:
    negated = scanner.peek() == "-" and not scanner.at_boundary(1)
    if negated:
        scanner.pos += 1
    if scanner.peek() == '"':
        phrase = scanner.read_quoted("in q")
        if phrase.strip():
            collected.texts[negated, True].append(phrase)
        return
    name = scanner.read_qualifier_name()
    if name is None:
        collected.texts[negated, False].append(scanner.read_bare(stops='"'))
        return
    values = _read_values(scanner, name)
    if name in DATE_QUALIFIERS:
        _add_bound(collected, name, values, negated)
    else:
        collected.qualifiers.append(Qualifier(name, _checked_values(name, values), negated))


def _read_values(scanner: _Scanner, name: str) -> list[str]:
    values: list[str] = []
    while True:
        if scanner.peek() == '"':
            value = scanner.read_quoted(f"in the value of qualifier {name!r}")
        else:
            value = scanner.read_bare(stops=',"')
        if not value.strip():
            raise bad_request(f"qualifier {name!r} needs a value, as in {name}:value", field="q")
        values.append(value)
        if scanner.peek() != ",":
            break
        scanner.pos += 1
    if not scanner.at_boundary():
        raise bad_request(
            f"unexpected {scanner.peek()!r} after value {values[-1]!r} of qualifier {name!r}",
            field="q",
        )
    return values


def _checked_values(name: str, values: list[str]) -> tuple[str, ...]:
    if name == "id":
        return checked_entry_ids(values)
    allowed = _CLOSED_LISTS.get(name)
    if allowed is None:
        return tuple(dict.fromkeys(values))
    lowered = [value.lower() for value in values]
    for value, original in zip(lowered, values, strict=True):
        if value not in allowed:
            raise bad_request(
                f"invalid value {original!r} for qualifier {name!r} "
                f"(expected one of: {', '.join(allowed)})",
                field="q",
            )
    return tuple(dict.fromkeys(lowered))


def _add_bound(collected: _Collector, name: str, values: list[str], negated: bool) -> None:
    written = f"{name}:{','.join(values)}"
    if negated:
        raise bad_request(f"qualifier {name!r} cannot be negated: -{written}", field="q")
    if len(values) != 1:
        raise bad_request(f"qualifier {name!r} takes one value, got {written}", field="q")
    if name in collected.bounds:
        raise bad_request(f"qualifier {name!r} is given more than once: {written}", field="q")
    bound = parse_bound(values[0])
    if bound is None:
        raise bad_request(
            f"invalid value {values[0]!r} for qualifier {name!r} ({_INSTANT_HINT})", field="q"
        )
    collected.bounds[name] = bound


def _fits(text: str, template: str) -> bool:
    """Whether ``text`` has the shape of ``template``, ``D`` standing for one ASCII digit."""
    if len(text) != len(template):
        return False
    return all(c in _DIGITS if t == "D" else c == t for c, t in zip(text, template, strict=True))


def parse_bound(text: str) -> date | datetime | None:
    """``YYYY-MM-DD`` as a date, an RFC 3339 instant as an aware datetime; None if neither."""
    if _fits(text, "DDDD-DD-DD"):
        return _none_on_error(date.fromisoformat, text)
    stamp, fraction, zone = text[:19], "", text[19:]
    if zone.startswith("."):
        digits = len(zone) - len(zone[1:].lstrip(string.digits)) - 1
        fraction, zone = zone[: digits + 1], zone[digits + 1 :]
    zone = "+00:00" if zone in ("Z", "z") else zone
    if not (
        stamp[10:11] in ("T", "t", " ")
        and _fits(f"{stamp[:10]}T{stamp[11:]}", "DDDD-DD-DDTDD:DD:DD")
        and fraction != "."
        and (_fits(zone, "+DD:DD") or _fits(zone, "-DD:DD"))
        and zone[1:3] <= "23"
        and zone[4:6] <= "59"  # RFC 3339 (fromisoformat reads +00:99 as 99 minutes)
    ):
        return None
    return _none_on_error(datetime.fromisoformat, f"{stamp[:10]}T{stamp[11:]}{fraction}{zone}")


def _none_on_error(convert: Callable[[str], _T], text: str) -> _T | None:
    try:
        return convert(text)
    except ValueError:
        return None


EARLIEST = datetime(1, 3, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
"""The first and last instants a bound may be: inside the years 1 and 9999 by a day at the end
and by two months at the start, so that every bound is a date in every timezone (a view's local
dates, an export's file name) and so is the start of the month or week a histogram bucket that
holds it begins with."""


class OutOfRange(ValueError):
    """A bound outside :data:`EARLIEST` .. :data:`LATEST`."""


def resolve_bound(bound: date | datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of a bound: an instant as is, a date at its first local moment in ``tz``;
    :class:`OutOfRange` outside :data:`EARLIEST` .. :data:`LATEST`.

    Local midnight that falls in a DST gap resolves to the first instant of the day, an
    ambiguous one to its first occurrence (zoneinfo's ``fold=0``).
    """
    try:
        if isinstance(bound, datetime):
            instant = bound.astimezone(UTC)
        else:
            instant = datetime(bound.year, bound.month, bound.day, tzinfo=tz).astimezone(UTC)
    except OverflowError as e:  # local midnight of 0001-01-01 east of UTC, say
        raise OutOfRange(bound.isoformat()) from e
    if not EARLIEST <= instant <= LATEST:
        raise OutOfRange(bound.isoformat())
    return instant


def format_instant(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.fffZ`` in UTC, rounded *up* to the millisecond.

    Timestamps are stored to the millisecond, so rounding up keeps both ``gte`` and ``lt``
    exact for a bound with finer precision.
    """
    utc = moment.astimezone(UTC)
    if utc.microsecond % 1000:
        utc += timedelta(microseconds=1000 - utc.microsecond % 1000)
    day = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
    return f"{day}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"


def compile_search_text(parsed: SearchText, tz: ZoneInfo) -> dict[str, Any]:
    """The query clause for ``parsed``; ``{"match_all": {}}`` when it holds no term.

    Date bounds are resolved in ``tz``. Words and phrases that the analyzer reduces to nothing
    (such as a lone ``-``) are neutral rather than matching nothing (``zero_terms_query``).
    """
    must: list[dict[str, Any]] = [_word_clause(word, required=True) for word in parsed.words]
    must += [_phrase_clause(phrase, required=True) for phrase in parsed.phrases]
    must_not = [_word_clause(word, required=False) for word in parsed.excluded_words]
    must_not += [_phrase_clause(phrase, required=False) for phrase in parsed.excluded_phrases]
    filters: list[dict[str, Any]] = []
    for qualifier in parsed.qualifiers:
        clause = _qualifier_clause(qualifier)
        (must_not if qualifier.negated else filters).append(clause)
    for name, operator, bound in (("after", "gte", parsed.after), ("before", "lt", parsed.before)):
        if bound is not None:
            filters.append(_range_clause(name, operator, bound, tz))
    clauses = {"must": must, "filter": filters, "must_not": must_not}
    if not any(clauses.values()):
        return {"match_all": {}}
    return {"bool": {key: value for key, value in clauses.items() if value}}


def _word_clause(word: str, *, required: bool) -> dict[str, Any]:
    neutral = {"zero_terms_query": "all"} if required else {}
    text = {"match": {SEARCH_FIELD: {"query": word, "operator": "and", **neutral}}}
    return _or_identifier(text, word)


def _phrase_clause(phrase: str, *, required: bool) -> dict[str, Any]:
    query: str | dict[str, str] = phrase
    if required:
        query = {"query": phrase, "zero_terms_query": "all"}
    return _or_identifier({"match_phrase": {SEARCH_FIELD: query}}, phrase)


def _or_identifier(text_clause: dict[str, Any], text: str) -> dict[str, Any]:
    """``text_clause``, or ``text`` whole in an identifier field of the entry."""
    alternatives = identifier_clauses(text)
    if not alternatives:
        return text_clause
    return {"bool": {"should": [text_clause, *alternatives], "minimum_should_match": 1}}


def _qualifier_clause(qualifier: Qualifier) -> dict[str, Any]:
    field = QUALIFIER_FIELDS[qualifier.name]
    if qualifier.name == "actor":
        return actor_clause(qualifier.values)
    if qualifier.name != "action":
        return {"terms": {field: list(qualifier.values)}}
    exact = [value for value in qualifier.values if not value.endswith("*")]
    prefixes = [value.rstrip("*") for value in qualifier.values if value.endswith("*")]
    clauses: list[dict[str, Any]] = [{"terms": {field: exact}}] if exact else []
    for prefix in prefixes:
        clauses.append({"prefix": {field: prefix}} if prefix else {"exists": {"field": field}})
    if len(clauses) == 1:
        return clauses[0]
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def _range_clause(name: str, operator: str, bound: date, tz: ZoneInfo) -> dict[str, Any]:
    return {"range": {"timestamp": {operator: format_instant(resolve_qualifier(name, bound, tz))}}}


def resolve_qualifier(name: str, bound: date | datetime, tz: ZoneInfo) -> datetime:
    """:func:`resolve_bound` of an ``after:``/``before:`` value; a 400 naming ``q`` when it is out
    of range."""
    try:
        return resolve_bound(bound, tz)
    except OutOfRange as e:
        message = f"value {bound.isoformat()!r} of qualifier {name!r} is out of range"
        raise bad_request(message, field="q") from e
