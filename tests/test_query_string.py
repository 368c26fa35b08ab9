"""The query string on every endpoint: a parameter that takes one value is given once, every
parameter is percent-encoded UTF-8, or the answer is a 400 naming the parameter; the parameters
that take several values keep taking them."""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from tests.helpers import ADMIN, entry, new_account, refresh

SCOPES = ("ingest", "read", "export", "destinations")


@pytest.fixture(scope="module")
def account(client: TestClient, es: Elasticsearch, prefix: str) -> tuple[str, dict[str, str]]:
    account_id, headers = new_account(client, scopes=SCOPES)
    entries = [
        entry(id="q-1", category="webhook", type="error", action="webhook.delivery.failed"),
        entry(id="q-2", category="webhook", type="notice", action="webhook.delivery.sent"),
        entry(id="q-3", category="signal", type="warning", action="signal.run.failed",
              metadata={}),
    ]  # fmt: skip
    created = client.post("/v1/entries", json={"entries": entries}, headers=headers).json()
    assert created["created"] == 3, created
    refresh(es, prefix)
    return account_id, headers


REPEATED = [
    ("GET", "/v1/entries", "size=1&size=2", "size"),
    ("GET", "/v1/entries", "tz=Bogus/Zone&tz=UTC", "tz"),
    ("GET", "/v1/entries", "q=type:error&q=type:notice", "q"),
    ("GET", "/v1/entries", "range=all&range=1h", "range"),
    ("GET", "/v1/entries", "from=2026-01-01&from=2026-02-01", "from"),
    ("GET", "/v1/entries", "order=asc&order=desc", "order"),
    ("GET", "/v1/histogram", "interval=day&interval=hour", "interval"),
    ("GET", "/v1/histogram", "split=type&split=none", "split"),
    ("GET", "/v1/export", "format=csv&format=xlsx", "format"),
    ("POST", "/v1/exports", "format=csv&format=xlsx", "format"),
    ("GET", "/v1/feed", "limit=1&limit=2", "limit"),
    ("GET", "/v1/feed", "after=0&after=1", "after"),
    ("GET", "/v1/integrity/proof", "id=q-1&id=q-2", "id"),
    ("GET", "/v1/integrity/proof", "ids=q-1&tree_size=1&tree_size=2", "tree_size"),
    ("GET", "/v1/integrity/consistency", "from=1&to=1&to=2", "to"),
    ("GET", "/v1/destinations", "account_id={a}&account_id={a}", "account_id"),
    ("GET", "/settings/audit-logs", "q=a&q=b", "q"),
    ("GET", "/settings/audit-logs", "range=7d&range=all", "range"),
]


def _refused(resp: Any, field: str, words: str) -> None:
    """A 400 naming ``field``: as JSON from the API, in plain words from the page."""
    assert resp.status_code == 400, resp.text
    if resp.headers["content-type"].startswith("text/plain"):
        assert resp.text.startswith(f"Bad request: {field} ") and words in resp.text, resp.text
        return
    error = resp.json()["error"]
    assert error["field"] == field and words in error["message"], error


@pytest.mark.parametrize(("method", "path", "query", "field"), REPEATED)
def test_a_single_valued_parameter_given_twice_is_a_400_naming_it(
    client: TestClient, account: tuple[str, dict[str, str]], method: str, path: str,
    query: str, field: str,
) -> None:  # fmt: skip
    account_id, headers = account
    url = f"{path}?{query.format(a=account_id)}"
    resp = client.request(method, url, headers=ADMIN if "account_id" in query else headers)
    _refused(resp, field, "more than once")
    assert resp.headers["content-type"].startswith(
        "text/plain" if path.startswith("/settings") else "application/json"
    )


def test_a_platform_key_naming_the_account_twice_is_refused(
    client: TestClient, account: tuple[str, dict[str, str]]
) -> None:
    account_id = account[0]
    for path in ("/v1/entries", "/v1/feed", "/v1/integrity/head", "/v1/admin/keys"):
        url = f"{path}?account_id={account_id}&account_id=other"
        _refused(client.get(url, headers=ADMIN), "account_id", "more than once")


def _ids(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    return sorted(e["id"] for e in resp.json()["entries"])


def test_the_filters_that_take_several_values_still_take_them_repeated_or_comma_separated(
    client: TestClient, account: tuple[str, dict[str, str]]
) -> None:
    _, headers = account
    for repeated, separated, expected in [
        ("category=webhook&category=signal", "category=webhook,signal", ["q-1", "q-2", "q-3"]),
        ("type=error&type=warning", "type=error,warning", ["q-1", "q-3"]),
        ("action=webhook.delivery.sent&action=signal.*",
         "action=webhook.delivery.sent,signal.*", ["q-2", "q-3"]),
        ("actor=dispatcher&actor=nobody", "actor=dispatcher,nobody", ["q-1", "q-2", "q-3"]),
        ("provider=hubspot&provider=attio", "provider=hubspot,attio", []),
    ]:  # fmt: skip
        by_repeat = client.get(f"/v1/entries?range=all&{repeated}", headers=headers)
        by_comma = client.get(f"/v1/entries?range=all&{separated}", headers=headers)
        assert _ids(by_repeat) == _ids(by_comma) == expected, repeated


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/entries", "q=%FF", "q"),
        ("/v1/entries", "q=%ED%A0%80", "q"),  # a surrogate: not UTF-8
        ("/v1/entries", "q=caf%C3", "q"),  # cut short
        ("/v1/entries", "actor=%FF", "actor"),
        ("/v1/entries", "category=webhook&category=%FF", "category"),
        ("/v1/entries", "%FF=1", "%FF"),
        ("/v1/entries", "range=all&a%ED%A0%80b=1", "a%ED%A0%80b"),
        ("/v1/histogram", "interval=%FFday", "interval"),
        ("/v1/export", "format=csv&tz=%ED%B2%80", "tz"),
        ("/v1/feed", "tz=%E9", "tz"),
        ("/v1/integrity/proof", "id=%C3", "id"),
        ("/settings/audit-logs", "q=%FF", "q"),
    ],
)
def test_a_parameter_that_is_not_utf8_is_a_400_naming_it(
    client: TestClient, account: tuple[str, dict[str, str]], path: str, query: str, field: str
) -> None:
    resp = client.get(f"{path}?{query}", headers=account[1])
    if field.startswith(("%", "a%")):  # the name itself: named as it was sent
        assert resp.status_code == 400 and resp.json()["error"]["field"] == field, resp.text
    else:
        _refused(resp, field, "is not percent-encoded UTF-8")


def test_percent_encoded_utf8_still_searches_what_it_says(
    client: TestClient, account: tuple[str, dict[str, str]], es: Elasticsearch, prefix: str
) -> None:
    _, headers = account
    sent = entry(id="q-cafe", message="Le café est servi")
    assert client.post("/v1/entries", json=sent, headers=headers).json()["created"] == 1
    refresh(es, prefix)
    encoded = client.get("/v1/entries?range=all&q=caf%C3%A9", headers=headers)
    assert _ids(encoded) == ["q-cafe"]
    plus = client.get("/v1/entries?range=all&q=caf%C3%A9+servi", headers=headers)
    assert _ids(plus) == ["q-cafe"]


@pytest.mark.parametrize(
    ("query", "body", "named"),
    [("q=type:error", {"q": "type:notice"}, "q"),
     ("", {"q": ["type:error", "type:notice"]}, "q"),
     ("format=csv", {"format": "xlsx"}, "format"),
     ("", {"tz": ["UTC", "Europe/Paris"]}, "tz")],
)  # fmt: skip
def test_an_export_job_refuses_a_single_valued_parameter_given_twice_across_query_and_body(
    client: TestClient, account: tuple[str, dict[str, str]], query: str, body: Any, named: str
) -> None:
    """The job's body and query string are one set of parameters: the rule of the query string
    holds across both (the last value used to win, and the manifest named both)."""
    _, headers = account
    resp = client.post(f"/v1/exports?{query}", json=body, headers=headers)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["field"] == named


def test_an_export_job_takes_several_values_of_a_facet_across_query_and_body(
    client: TestClient, account: tuple[str, dict[str, str]]
) -> None:
    _, headers = account
    body = {"type": ["error"], "range": "all"}
    resp = client.post("/v1/exports?type=notice", json=body, headers=headers)
    assert resp.status_code == 202, resp.text


PAGE_EXPORT = "/settings/audit-logs/export"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("body", "named"),
    [(b"q=webhook&q=type:notice&format=csv", "q"), (b"format=csv&format=xlsx", "format"),
     (b"q=%C3&format=csv", "q"), (b"q=%ZZ&format=csv", "q")],
)  # fmt: skip
def test_a_page_form_is_held_to_the_query_strings_rule(
    client: TestClient, body: bytes, named: str
) -> None:
    """The page's forms are written like a query string: a field given twice or not in UTF-8
    is refused before any handler reads it (the last value used to win: a filter dropped)."""
    resp = client.post(PAGE_EXPORT, content=body, headers=FORM)
    assert resp.status_code == 400, resp.text
    assert resp.text.startswith("Bad request: ") and named in resp.text


def test_a_page_form_sent_with_a_content_encoding_is_a_415(client: TestClient) -> None:
    """A form read as empty (gzip) or as if plain (br) would export everything."""
    for encoding in ("gzip", "br"):
        headers = {**FORM, "Content-Encoding": encoding}
        resp = client.post(PAGE_EXPORT, content=b"q=nomatch&format=csv", headers=headers)
        assert resp.status_code == 415, resp.text


def test_a_percent_that_encodes_nothing_is_a_400_naming_its_parameter(
    client: TestClient, account: tuple[str, dict[str, str]]
) -> None:
    _, headers = account
    for query in ("q=%ZZ", "q=abc%", "actor=%2"):
        resp = client.get(f"/v1/entries?{query}", headers=headers)
        assert resp.status_code == 400, (query, resp.text)
        assert resp.json()["error"]["field"] == query.split("=")[0]
