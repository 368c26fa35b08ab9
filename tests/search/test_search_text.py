"""Unit tests of the search text grammar and of the query dicts it compiles to.

Expected values are written literally; DST cases were worked out from the tz rules by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from service.errors import ServiceError
from service.search.search_text import (
    Qualifier,
    SearchText,
    compile_search_text,
    parse_search_text,
)

IDENTIFIERS = ("id", "actor.id", "metadata.webhook_id", "metadata.signal_id",
               "metadata.agent_id", "metadata.api_key_id", "metadata.target_id")  # fmt: skip


def or_identifier(clause: dict[str, Any], text: str, address: str | None = None) -> dict[str, Any]:
    """``clause``, or ``text`` whole in an identifier field (in any case), or the address."""
    terms: list[dict[str, Any]] = [
        {"term": {field: {"value": text.strip(), "case_insensitive": True}}}
        for field in IDENTIFIERS
    ]
    if address is not None:
        terms.append({"term": {"metadata.ip": address}})
    return {"bool": {"should": [clause, *terms], "minimum_should_match": 1}}


def word(text: str, address: str | None = None) -> dict[str, Any]:
    match = {
        "match": {"search_text": {"query": text, "operator": "and", "zero_terms_query": "all"}}
    }
    return or_identifier(match, text, address)


def phrase(text: str) -> dict[str, Any]:
    match = {"match_phrase": {"search_text": {"query": text, "zero_terms_query": "all"}}}
    return or_identifier(match, text)


def excluded_word(text: str) -> dict[str, Any]:
    return or_identifier({"match": {"search_text": {"query": text, "operator": "and"}}}, text)


def excluded_phrase(text: str) -> dict[str, Any]:
    return or_identifier({"match_phrase": {"search_text": text}}, text)


def actor(*values: str) -> dict[str, Any]:
    names = [{"term": {"actor.name": {"value": v, "case_insensitive": True}}} for v in values]
    return {
        "bool": {
            "should": [
                {"terms": {"actor.id": list(values)}},
                {"terms": {"actor.email": list(values)}},
                *names,
            ],
            "minimum_should_match": 1,
        }
    }


def compiled(q: str, tz: str = "UTC") -> dict[str, Any]:
    return compile_search_text(parse_search_text(q), ZoneInfo(tz))


def assert_bad_q(q: str, *fragments: str, tz: str = "UTC") -> str:
    with pytest.raises(ServiceError) as caught:
        compiled(q, tz)
    error = caught.value
    assert (error.status, error.field, error.code) == (400, "q", "invalid")
    for fragment in fragments:
        assert fragment in error.message
    return error.message


# --- parsing: free text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("", SearchText()),
        ("  \t ", SearchText()),
        ("timeout", SearchText(words=("timeout",))),
        ("  webhook   failed ", SearchText(words=("webhook", "failed"))),
        ('"returned 502"', SearchText(phrases=("returned 502",))),
        ("-retry", SearchText(excluded_words=("retry",))),
        ('-"after 3 attempts"', SearchText(excluded_phrases=("after 3 attempts",))),
        (
            'a "b c" -d -"e f"',
            SearchText(
                words=("a",), phrases=("b c",), excluded_words=("d",), excluded_phrases=("e f",)
            ),
        ),
        ('foo"bar baz"', SearchText(words=("foo",), phrases=("bar baz",))),
        ('"" -"  "', SearchText()),
        ('"category:webhook"', SearchText(phrases=("category:webhook",))),
        ('-"xyz:1"', SearchText(excluded_phrases=("xyz:1",))),
        ("urn:li:activity:7123", SearchText(words=("urn:li:activity:7123",))),
        ("-urn:li:activity:7123", SearchText(excluded_words=("urn:li:activity:7123",))),
        ("https://hooks.acme.test/x", SearchText(words=("https://hooks.acme.test/x",))),
        ("http://hooks.acme.test", SearchText(words=("http://hooks.acme.test",))),
        ("HTTPS://HOOKS.ACME.TEST", SearchText(words=("HTTPS://HOOKS.ACME.TEST",))),
        ("10:15", SearchText(words=("10:15",))),
        ("u42:x", SearchText(words=("u42:x",))),
        (":value", SearchText(words=(":value",))),
        ("jane@acme.test", SearchText(words=("jane@acme.test",))),
        ("webhook.delivery.failed", SearchText(words=("webhook.delivery.failed",))),
        ("café:ouvert", SearchText(words=("café:ouvert",))),
        ("-", SearchText(words=("-",))),
        ("a - b", SearchText(words=("a", "-", "b"))),
        ("--x", SearchText(excluded_words=("-x",))),
    ],
)
def test_parses_free_text(q: str, expected: SearchText) -> None:
    assert parse_search_text(q) == expected


# --- parsing: qualifiers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("category:webhook", (Qualifier("category", ("webhook",)),)),
        ("type:warning,error", (Qualifier("type", ("warning", "error")),)),
        ("Type:Error,WARNING", (Qualifier("type", ("error", "warning")),)),
        ("type:error,error", (Qualifier("type", ("error",)),)),
        ("-type:notice", (Qualifier("type", ("notice",), negated=True),)),
        ("actor:u_42", (Qualifier("actor", ("u_42",)),)),
        ('actor:"u 42"', (Qualifier("actor", ("u 42",)),)),
        ('actor:"u 42",u_43,"a,b"', (Qualifier("actor", ("u 42", "u_43", "a,b")),)),
        ('-actor:"u 42"', (Qualifier("actor", ("u 42",), negated=True),)),
        ("action:webhook.*", (Qualifier("action", ("webhook.*",)),)),
        ("provider:hubspot,attio", (Qualifier("provider", ("hubspot", "attio")),)),
        ("status:Failed", (Qualifier("status", ("Failed",)),)),
        ("status:a:b", (Qualifier("status", ("a:b",)),)),
        (
            "category:audit -category:api",
            (Qualifier("category", ("audit",)), Qualifier("category", ("api",), negated=True)),
        ),
    ],
)
def test_parses_qualifiers(q: str, expected: tuple[Qualifier, ...]) -> None:
    assert parse_search_text(q) == SearchText(qualifiers=expected)


def test_mixes_text_qualifiers_and_bounds() -> None:
    parsed = parse_search_text('502 "after 3" -retry type:error after:2026-11-01 -status:ok')
    assert parsed == SearchText(
        words=("502",),
        phrases=("after 3",),
        excluded_words=("retry",),
        qualifiers=(Qualifier("type", ("error",)), Qualifier("status", ("ok",), negated=True)),
        after=date(2026, 11, 1),
    )


PLUS_0530 = timezone(timedelta(hours=5, minutes=30))


@pytest.mark.parametrize(
    ("q", "after", "before"),
    [
        ("after:2026-11-01", date(2026, 11, 1), None),
        ("before:2026-11-08", None, date(2026, 11, 8)),
        (
            "after:2026-11-01T10:15:00Z before:2026-11-02T00:00:00+05:30",
            datetime(2026, 11, 1, 10, 15, tzinfo=UTC),
            datetime(2026, 11, 2, tzinfo=PLUS_0530),
        ),
        ("after:2026-11-01t10:15:00z", datetime(2026, 11, 1, 10, 15, tzinfo=UTC), None),
        (
            'after:"2026-11-01 10:15:00.5-02:00"',
            datetime(2026, 11, 1, 10, 15, 0, 500000, tzinfo=timezone(timedelta(hours=-2))),
            None,
        ),
        ("AFTER:2026-11-01", date(2026, 11, 1), None),
    ],
)
def test_parses_bounds(q: str, after: date | None, before: date | None) -> None:
    parsed = parse_search_text(q)
    assert (parsed.after, parsed.before) == (after, before)
    assert parsed.qualifiers == ()


# --- parsing: errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "fragments"),
    [
        ('"unterminated phrase', ("unterminated quote", "unterminated phrase")),
        ('a -"open', ("unterminated quote", "open")),
        ('actor:"u 42', ("unterminated quote", "'actor'", "u 42")),
        ("category:nope", ("'category'", "'nope'", "audit, credits")),
        ("-category:Nope", ("'category'", "'Nope'")),
        ("type:error,fatal", ("'type'", "'fatal'", "notice, warning, error")),
        ("provider:salesforce", ("'provider'", "'salesforce'", "hubspot, attio")),
        ("category:", ("'category'", "needs a value")),
        ("-status:", ("'status'", "needs a value")),
        ("type:warning,", ("'type'", "needs a value")),
        ("type:,error", ("'type'", "needs a value")),
        ('actor:""', ("'actor'", "needs a value")),
        ('actor:"   "', ("'actor'", "needs a value")),
        ("after:", ("'after'", "needs a value")),
        ('actor:"u 42"x', ("'actor'", "'u 42'", "'x'")),
        ('actor:u"42"', ("'actor'", "'u'", "'\"'")),
        ("xyz:1", ("unknown qualifier 'xyz' (put it in quotes to search for the text)",)),
        ("-foo_bar:baz", ("unknown qualifier 'foo_bar'",)),
        ("mailto:jane@acme.test", ("unknown qualifier 'mailto'",)),
        ('ok "fine" Source:webhook', ("unknown qualifier 'Source'",)),
    ],
)
def test_rejects_malformed_text_and_qualifiers(q: str, fragments: tuple[str, ...]) -> None:
    assert_bad_q(q, *fragments)


def test_unknown_qualifier_message_is_exact() -> None:
    message = assert_bad_q("xyz:1")
    assert message == "unknown qualifier 'xyz' (put it in quotes to search for the text)"


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-13-01",
        "2026-02-30",
        "20261101",
        "2026-11-1",
        "2026-11-01T10:00:00",
        "2026-11-01T10:00Z",
        "2026-11-01T25:00:00Z",
        "2026-11-01T10:00:00.Z",
        "2026-11-01T10:00:00+0100",
        "2026-11-01T10:00:00+24:00",
        "2026-11-01X10:00:00Z",
        "\uff12\uff10\uff12\uff16-11-01",  # full-width digits
    ],
)
@pytest.mark.parametrize("name", ["after", "before"])
def test_rejects_bad_dates(name: str, value: str) -> None:
    assert_bad_q(f"{name}:{value}", f"'{name}'", repr(value), "YYYY-MM-DD")


@pytest.mark.parametrize(
    ("q", "fragments"),
    [
        ("-after:2026-11-01", ("'after'", "cannot be negated", "2026-11-01")),
        ("-before:2026-11-01", ("'before'", "cannot be negated", "2026-11-01")),
        ("before:2026-11-01,2026-11-02", ("'before'", "one value", "2026-11-01,2026-11-02")),
        ("after:2026-11-01 after:2026-11-02", ("'after'", "more than once", "2026-11-02")),
        ("before:2026-11-01 x BEFORE:2026-11-01", ("'before'", "more than once")),
    ],
)
def test_rejects_misused_bounds(q: str, fragments: tuple[str, ...]) -> None:
    assert_bad_q(q, *fragments)


def test_limits() -> None:
    assert len(parse_search_text("a" * 1000).words[0]) == 1000
    assert_bad_q("a" * 1001, "q is longer than 1000 characters")
    assert len(parse_search_text(" ".join(["w"] * 64)).words) == 64
    assert_bad_q(" ".join(["w"] * 65), "65 terms", "at most 64")
    actors = ",".join(f"u{i}" for i in range(63))
    assert parse_search_text(f"actor:{actors} after:2026-11-01").term_count == 64
    assert_bad_q(f"actor:{actors} x after:2026-11-01", "65 terms")


# --- compiling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("q", ["", "   ", '"" -""'])
def test_empty_q_matches_all(q: str) -> None:
    assert compiled(q) == {"match_all": {}}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("timeout", {"must": [word("timeout")]}),
        ("webhook failed", {"must": [word("webhook"), word("failed")]}),
        ('"returned 502" x', {"must": [word("x"), phrase("returned 502")]}),
        ("-retry", {"must_not": [excluded_word("retry")]}),
        ('-"after 3"', {"must_not": [excluded_phrase("after 3")]}),
        (
            'a -b "c d" -"e f"',
            {
                "must": [word("a"), phrase("c d")],
                "must_not": [excluded_word("b"), excluded_phrase("e f")],
            },
        ),
        ('say "query_string: *"', {"must": [word("say"), phrase("query_string: *")]}),
        ("urn:li:activity:7123", {"must": [word("urn:li:activity:7123")]}),
    ],
)
def test_compiles_text(q: str, expected: dict[str, Any]) -> None:
    assert compiled(q) == {"bool": expected}


@pytest.mark.parametrize(
    ("q", "clause"),
    [
        ("category:webhook,ai", {"terms": {"category": ["webhook", "ai"]}}),
        ("type:warning,error", {"terms": {"type": ["warning", "error"]}}),
        ("actor:u_42", actor("u_42")),
        ('actor:"u 42",u_43', actor("u 42", "u_43")),
        ('actor:"Thomas Bernard",jane@acme.test', actor("Thomas Bernard", "jane@acme.test")),
        ("id:e-1", {"terms": {"id": ["e-1"]}}),
        ("ID:e-1,urn:x:1,e-1", {"terms": {"id": ["e-1", "urn:x:1"]}}),
        ("action:webhook.delivery.failed", {"terms": {"action": ["webhook.delivery.failed"]}}),
        ("action:webhook.*", {"prefix": {"action": "webhook."}}),
        ("action:webhook.**", {"prefix": {"action": "webhook."}}),
        ("action:*", {"exists": {"field": "action"}}),
        ("action:web*hook", {"terms": {"action": ["web*hook"]}}),
        (
            "action:a.x,webhook.*,b.y",
            {
                "bool": {
                    "should": [
                        {"terms": {"action": ["a.x", "b.y"]}},
                        {"prefix": {"action": "webhook."}},
                    ],
                    "minimum_should_match": 1,
                }
            },
        ),
        (
            "action:ai.*,signal.*",
            {
                "bool": {
                    "should": [{"prefix": {"action": "ai."}}, {"prefix": {"action": "signal."}}],
                    "minimum_should_match": 1,
                }
            },
        ),
        ("provider:hubspot", {"terms": {"metadata.provider": ["hubspot"]}}),
        ("status:failed", {"terms": {"metadata.status": ["failed"]}}),
    ],
)
def test_compiles_qualifiers(q: str, clause: dict[str, Any]) -> None:
    assert compiled(q) == {"bool": {"filter": [clause]}}
    assert compiled(f"-{q}") == {"bool": {"must_not": [clause]}}


def test_repeated_qualifiers_are_anded() -> None:
    assert compiled("category:audit category:api -type:error -type:warning") == {
        "bool": {
            "filter": [{"terms": {"category": ["audit"]}}, {"terms": {"category": ["api"]}}],
            "must_not": [{"terms": {"type": ["error"]}}, {"terms": {"type": ["warning"]}}],
        }
    }


@pytest.mark.parametrize(
    ("q", "tz", "operator", "instant"),
    [
        ("after:2026-11-01", "UTC", "gte", "2026-11-01T00:00:00.000Z"),
        ("before:2026-11-08", "UTC", "lt", "2026-11-08T00:00:00.000Z"),
        # Paris switches to summer time on 2026-03-29 at 02:00; its midnight is still +01:00.
        ("after:2026-03-29", "Europe/Paris", "gte", "2026-03-28T23:00:00.000Z"),
        ("after:2026-03-30", "Europe/Paris", "gte", "2026-03-29T22:00:00.000Z"),
        ("before:2026-10-25", "Europe/Paris", "lt", "2026-10-24T22:00:00.000Z"),
        ("before:2026-10-26", "Europe/Paris", "lt", "2026-10-25T23:00:00.000Z"),
        # New York falls back on 2026-11-01; 2026-11-02 starts at -05:00.
        ("before:2026-11-02", "America/New_York", "lt", "2026-11-02T05:00:00.000Z"),
        ("before:2026-11-01", "America/New_York", "lt", "2026-11-01T04:00:00.000Z"),
        # Santiago skips 00:00-01:00 on 2026-09-06: the day starts at 01:00 -03:00.
        ("after:2026-09-06", "America/Santiago", "gte", "2026-09-06T04:00:00.000Z"),
        # Havana repeats 00:00-01:00 on 2026-11-01: the day starts at its first 00:00 (-04:00).
        ("after:2026-11-01", "America/Havana", "gte", "2026-11-01T04:00:00.000Z"),
        ("after:2026-11-01", "Asia/Kolkata", "gte", "2026-10-31T18:30:00.000Z"),
        # Instants keep their own offset whatever the timezone.
        ("after:2026-11-01T10:15:00+05:30", "Europe/Paris", "gte", "2026-11-01T04:45:00.000Z"),
        ("before:2026-11-01T23:30:00-02:00", "UTC", "lt", "2026-11-02T01:30:00.000Z"),
        ("after:2026-11-01T10:15:00.123Z", "UTC", "gte", "2026-11-01T10:15:00.123Z"),
        ("after:2026-11-01T10:15:00.12Z", "UTC", "gte", "2026-11-01T10:15:00.120Z"),
        # Finer than a millisecond rounds up, which keeps gte and lt exact on ms timestamps.
        ("after:2026-11-01T10:15:00.1231Z", "UTC", "gte", "2026-11-01T10:15:00.124Z"),
        ("before:2026-11-01T10:15:59.9999Z", "UTC", "lt", "2026-11-01T10:16:00.000Z"),
        ("after:0999-01-02", "UTC", "gte", "0999-01-02T00:00:00.000Z"),
    ],
)
def test_compiles_bounds(q: str, tz: str, operator: str, instant: str) -> None:
    assert compiled(q, tz) == {"bool": {"filter": [{"range": {"timestamp": {operator: instant}}}]}}


@pytest.mark.parametrize(
    ("q", "tz", "fragments"),
    [
        ("after:0001-01-01", "Europe/Paris", ("'after'", "0001-01-01", "out of range")),
        ("before:0001-01-01", "Asia/Tokyo", ("'before'", "0001-01-01", "out of range")),
        ("before:9999-12-31T23:30:00-01:00", "UTC", ("'before'", "9999-12-31T23:30:00")),
    ],
)
def test_rejects_dates_off_the_timeline(q: str, tz: str, fragments: tuple[str, ...]) -> None:
    assert_bad_q(q, *fragments, tz=tz)


def test_compiles_a_full_query() -> None:
    q = (
        'failed "returned 502" -retry -"test hook" category:webhook,api -type:notice '
        "actor:u_42 action:webhook.* -provider:attio status:failed "
        "after:2026-03-29 before:2026-11-02T12:00:00Z"
    )
    assert compiled(q, "Europe/Paris") == {
        "bool": {
            "must": [word("failed"), phrase("returned 502")],
            "filter": [
                {"terms": {"category": ["webhook", "api"]}},
                actor("u_42"),
                {"prefix": {"action": "webhook."}},
                {"terms": {"metadata.status": ["failed"]}},
                {"range": {"timestamp": {"gte": "2026-03-28T23:00:00.000Z"}}},
                {"range": {"timestamp": {"lt": "2026-11-02T12:00:00.000Z"}}},
            ],
            "must_not": [
                excluded_word("retry"),
                excluded_phrase("test hook"),
                {"terms": {"type": ["notice"]}},
                {"terms": {"metadata.provider": ["attio"]}},
            ],
        }
    }


def test_search_text_is_frozen() -> None:
    parsed = parse_search_text("a")
    with pytest.raises(AttributeError):
        parsed.words = ("b",)  # type: ignore[misc]
