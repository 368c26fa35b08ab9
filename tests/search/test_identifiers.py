"""Identifiers shown in an entry are found by ``q``; ``id:`` and ``actor:`` (name, email) narrow.

Entries come from the demo generator (the real shapes: ``wh_…``, ``sig_…``, ``run_…``, UUIDs,
IPv4, URLs, post URNs), with IPv6 addresses put into some audit entries, and go in through the
ingest API. Which entries carry a value is worked out here from the generated entries, by a
case-insensitive whole-value search over every string of each entry, independently of the engine.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from ingest.validation import ENTRY_ID as INGEST_ENTRY_ID
from ingest.validation import generated_id
from service.config import Settings
from service.demo.content import DEMO_ACCOUNTS, DemoAccount, generate_demo_entries
from service.errors import ServiceError
from service.search.identifiers import IDENTIFIER_FIELDS, IP_FIELDS, STORED_ID
from service.search.search_text import Qualifier, compile_search_text, parse_search_text
from tests.helpers import new_account, refresh
from tests.search.dataset import ingest

IPV6 = ("2001:db8::1a", "2001:db8:85a3::8a2e:370:7334", "dead:beef::1", "fe80::a1b2")
"""Put into audit entries; ``dead:beef::1`` starts like a ``name:`` qualifier."""
TEMPLATES = Path(__file__).resolve().parents[2] / "index_templates"
SAMPLE = 6
"""Values tried per kind when a kind has many (run ids, record ids, entry ids)."""

Data = tuple[dict[str, str], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def data(client: TestClient, es: Elasticsearch, settings: Settings) -> Data:
    account_id, headers = new_account(client)
    team = DEMO_ACCOUNTS[0].members  # Jane Doe, ..., Thomas Bernard (u_103), @acme.test
    account = DemoAccount(account_id, "Identifier test", "UTC", team)
    now = datetime.now(UTC) - timedelta(minutes=1)
    entries = list(generate_demo_entries(now, days=20, seed=11, accounts=[account]))
    audits = [e for e in entries if e["category"] == "audit"]
    for n, audit in enumerate(audits[::2]):
        audit["metadata"]["ip"] = IPV6[n % len(IPV6)]
    assert len(audits) >= 2 * len(IPV6)
    ingest(client, headers, entries)
    refresh(es, settings.index_prefix)
    return headers, entries


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def carrying(entries: list[dict[str, Any]], value: str) -> set[str]:
    """Ids of the entries that show ``value`` whole in any of their strings, in any case."""
    whole = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(value)}(?![A-Za-z0-9_])", re.IGNORECASE)
    return {e["id"] for e in entries if any(whole.search(s) for s in _strings(e))}


def _values(entries: list[dict[str, Any]], kind: str) -> list[str]:
    """The distinct values of one kind of identifier in the generated entries."""
    if kind == "entry id":
        found = [e["id"] for e in entries]
    elif kind == "actor id":
        found = [e["actor"]["id"] for e in entries]
    elif kind == "ipv4":
        found = [e["metadata"]["ip"] for e in entries if "." in e["metadata"].get("ip", "")]
    elif kind == "ipv6":
        found = [e["metadata"]["ip"] for e in entries if ":" in e["metadata"].get("ip", "")]
    else:
        key = {"url": "url", "record id": "record_id"}.get(kind, kind)
        found = [e["metadata"][key] for e in entries if key in e["metadata"]]
    distinct = sorted(set(found))
    if len(distinct) > SAMPLE:
        distinct = random.Random(kind).sample(distinct, SAMPLE)
    return distinct


def _search(client: TestClient, headers: dict[str, str], q: str) -> dict[str, Any]:
    resp = client.get("/v1/entries", params={"q": q, "range": "all", "size": 200}, headers=headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _found(client: TestClient, headers: dict[str, str], q: str) -> tuple[int, set[str]]:
    body = _search(client, headers, q)
    return body["total"], {e["id"] for e in body["entries"]}


def _everything(client: TestClient, headers: dict[str, str]) -> int:
    """The account's entries: the generated ones and those the service wrote itself (the audit
    entry of the key made for the test)."""
    return _found(client, headers, "")[0]


KINDS = ("entry id", "actor id", "webhook_id", "signal_id", "agent_id", "api_key_id",
         "target_id", "run_id", "post_urn", "ipv4", "ipv6", "url", "record id")  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_every_identifier_is_found_as_a_bare_word(
    data: Data, client: TestClient, kind: str
) -> None:
    headers, entries = data
    values = _values(entries, kind)
    assert values, kind
    wrong = {}
    for value in values:
        expected = carrying(entries, value)
        assert expected, value
        total, ids = _found(client, headers, value)
        if total != len(expected) or not ids <= expected:
            wrong[value] = (total, len(expected))
    assert wrong == {}, f"{kind}: value -> (found, carrying)"


@pytest.mark.parametrize("kind", ["entry id", "webhook_id", "ipv6", "record id"])
def test_identifiers_match_in_any_case_and_as_a_quoted_value(
    data: Data, client: TestClient, kind: str
) -> None:
    headers, entries = data
    value = _values(entries, kind)[0]
    expected = carrying(entries, value)
    for q in (value.upper(), f'"{value}"', f'"{value.upper()}"'):
        assert _found(client, headers, q)[0] == len(expected), q


def test_a_part_of_an_identifier_is_not_a_match(data: Data, client: TestClient) -> None:
    headers, entries = data
    webhook_id = _values(entries, "webhook_id")[0]  # wh_ and 8 hex digits
    assert _found(client, headers, webhook_id[:-2])[0] == 0
    assert _found(client, headers, webhook_id[:-2] + "*")[0] == 0
    assert _found(client, headers, webhook_id + "0")[0] == 0


def test_an_excluded_identifier_excludes_the_entries_carrying_it(
    data: Data, client: TestClient
) -> None:
    headers, entries = data
    signal_id = _values(entries, "signal_id")[0]
    total, ids = _found(client, headers, f"-{signal_id}")
    assert total == _everything(client, headers) - len(carrying(entries, signal_id))
    assert not ids & carrying(entries, signal_id)


def test_id_qualifier_finds_exactly_the_entries_named(data: Data, client: TestClient) -> None:
    headers, entries = data
    first, second, third = (entries[n]["id"] for n in (0, len(entries) // 2, -1))
    assert _found(client, headers, f"id:{first}") == (1, {first})
    assert _found(client, headers, f"id:{second},{third}") == (2, {second, third})
    assert _found(client, headers, f'id:"{third}"') == (1, {third})
    assert _found(client, headers, f"-id:{first}")[0] == _everything(client, headers) - 1
    assert _found(client, headers, f"id:{first} id:{second}")[0] == 0  # repetitions are ANDed
    assert _found(client, headers, f"id:{first}x")[0] == 0
    assert _found(client, headers, f"id:{first.upper()}")[0] == 0  # an id is exact


@pytest.mark.parametrize("value", ["<script>", '"a b"', "a/b", "x" * 129, '"é"', "a,<b>"])
def test_a_value_that_is_no_entry_id_is_a_400(data: Data, client: TestClient, value: str) -> None:
    headers, _ = data
    resp = client.get("/v1/entries", params={"q": f"id:{value}"}, headers=headers)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["field"] == "q"
    assert "qualifier 'id'" in error["message"] and "entry id" in error["message"]


def _by_actor(entries: list[dict[str, Any]], field: str, value: str) -> set[str]:
    return {e["id"] for e in entries if e["actor"].get(field, "").lower() == value.lower()}


@pytest.mark.parametrize(
    ("q", "field", "value"),
    [
        ('actor:"Thomas Bernard"', "name", "Thomas Bernard"),
        ('actor:"thomas BERNARD"', "name", "Thomas Bernard"),
        ("actor:thomas.bernard@acme.test", "email", "thomas.bernard@acme.test"),
        ("actor:Thomas.Bernard@ACME.test", "email", "thomas.bernard@acme.test"),
        ("actor:u_103", "id", "u_103"),
        ('actor:"Webhook dispatcher"', "name", "Webhook dispatcher"),
    ],
)
def test_actor_qualifier_takes_an_id_a_name_or_an_email(
    data: Data, client: TestClient, q: str, field: str, value: str
) -> None:
    headers, entries = data
    expected = _by_actor(entries, field, value)
    assert expected
    total, ids = _found(client, headers, q)
    assert total == len(expected) and ids <= expected
    assert _found(client, headers, f"-{q}")[0] == _everything(client, headers) - len(expected)


def test_actor_qualifier_ors_names_emails_and_ids(data: Data, client: TestClient) -> None:
    headers, entries = data
    expected = _by_actor(entries, "name", "Thomas Bernard") | _by_actor(entries, "id", "u_101")
    expected |= _by_actor(entries, "email", "lea.rousseau@acme.test")
    q = 'actor:"Thomas Bernard",u_101,lea.rousseau@acme.test'
    assert _found(client, headers, q)[0] == len(expected)
    assert _found(client, headers, 'actor:"Thomas Bern"')[0] == 0  # a name is whole


def test_a_longest_search_of_addresses_runs(data: Data, client: TestClient) -> None:
    """The most clauses ``q`` can make (every word an address of eight words) is a 200."""
    headers, _ = data
    words = [f"{n:x}:2:3:4:5:6:7:8" for n in range(64)]
    q = " ".join(words)[:1000].rsplit(" ", 1)[0]
    assert len(parse_search_text(q).words) > 55
    assert _found(client, headers, q)[0] == 0


# --- parsing and compiling, without the engine ---------------------------------------------------


@pytest.mark.parametrize(
    ("q", "address"),
    [
        ("203.0.113.10", "203.0.113.10"),
        ("2001:DB8:0::1A", "2001:db8::1a"),
        ("dead:beef::1", "dead:beef::1"),
        ("::ffff:192.0.2.1", "::ffff:c000:201"),
        ("::1", "::1"),
    ],
)
def test_an_address_is_a_word_that_also_matches_ip_fields(q: str, address: str) -> None:
    parsed = parse_search_text(q)
    assert parsed.words == (q,)
    clauses = compile_search_text(parsed, ZoneInfo("UTC"))["bool"]["must"][0]["bool"]["should"]
    assert {"term": {"metadata.ip": address}} in clauses
    assert parse_search_text(f"-{q}").excluded_words == (q,)


@pytest.mark.parametrize("q", ["203.0.113.010", "fe80::1%eth0", "1.2.3", "wh_8f3a", "::g"])
def test_what_is_no_address_does_not_query_ip_fields(q: str) -> None:
    compiled = compile_search_text(parse_search_text(q), ZoneInfo("UTC"))
    assert "metadata.ip" not in str(compiled)


@pytest.mark.parametrize("q", ["cafe:1", "dead:beef::1%eth0", "face:", "ab:cd"])
def test_a_name_before_a_colon_that_is_no_address_is_still_an_unknown_qualifier(q: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse_search_text(q)
    assert caught.value.field == "q" and "unknown qualifier" in caught.value.message


def test_identifier_terms_are_whole_and_case_insensitive() -> None:
    clause = compile_search_text(parse_search_text('"  wh_8F3A  "'), ZoneInfo("UTC"))
    should = clause["bool"]["must"][0]["bool"]["should"]
    assert {"term": {"metadata.webhook_id": {"value": "wh_8F3A", "case_insensitive": True}}} in (
        should
    )
    assert {"term": {"id": {"value": "wh_8F3A", "case_insensitive": True}}} in should


def test_id_qualifier_parses_entry_ids_only() -> None:
    parsed = parse_search_text('id:a.b:c_d-1,"x" -ID:y')
    assert parsed.qualifiers == (
        Qualifier("id", ("a.b:c_d-1", "x")),
        Qualifier("id", ("y",), negated=True),
    )
    with pytest.raises(ServiceError) as caught:
        parse_search_text("id:ok,bad/one")
    assert caught.value.field == "q"
    assert "invalid value 'bad/one' for qualifier 'id'" in caught.value.message


def test_the_entry_id_rule_is_the_one_ingest_applies_or_a_generated_id() -> None:
    samples = ["a", "A.b:c_d-9", "x" * 128, "x" * 129, "", "a b", "é", "a/b", "a\n", "~a"]
    for sample in samples:
        assert bool(STORED_ID.match(sample)) == bool(INGEST_ENTRY_ID.match(sample)), sample
    made = generated_id()
    assert STORED_ID.match(made) and not INGEST_ENTRY_ID.match(made)
    assert not STORED_ID.match(made + "0") and not STORED_ID.match(made.upper())


def _entry_fields() -> dict[str, dict[str, Any]]:
    """Every field of the entry templates (dotted name → mapping), read from the files."""
    fields: dict[str, dict[str, Any]] = {}

    def walk(properties: dict[str, Any], head: str) -> None:
        for name, spec in properties.items():
            if "properties" in spec:
                walk(spec["properties"], f"{head}{name}.")
            else:
                fields[f"{head}{name}"] = spec

    for path in sorted(TEMPLATES.glob("entries-*.json")):
        walk(json.loads(path.read_text())["template"].get("mappings", {}).get("properties", {}), "")
    return fields


def test_every_id_field_of_the_templates_is_searchable() -> None:
    """A new ``…_id`` keyword field must be copied to search_text or matched as an identifier;
    every ``ip`` field is matched as an address."""
    fields = _entry_fields()
    for name in IDENTIFIER_FIELDS:
        assert fields[name]["type"] == "keyword", name
    for name, spec in fields.items():
        if name == "account_id":  # the account is always given: searching it finds everything
            continue
        if spec["type"] == "keyword" and (name == "id" or name.endswith("_id") or ".id" in name):
            assert name in IDENTIFIER_FIELDS or spec.get("copy_to") == "search_text", name
        if spec["type"] == "ip":
            assert name in IP_FIELDS, name
