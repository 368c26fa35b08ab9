"""Boundary classes through every parameter and field: never a 5xx, and a 400 blames what was sent.

Generated from the served OpenAPI document (every operation, its query and path parameters and
its JSON body's fields) and from the page's routes and forms: each value of each boundary class
goes into one parameter at a time — very long, directory- and path-like, NUL and control
characters, Unicode digits and lookalikes, lone surrogates, instants of year 1 and 9999 with
offsets (alone and as ``after:``/``before:``), bodies nested deeply. ``from`` and ``to`` are also
sent together. An account timezone that a write accepts must then work for reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.helpers import ADMIN, entry, new_account, wait_ready

pytestmark = pytest.mark.fuzz  # thousands of generated requests: not in `make test-fast`

INSTANTS = ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.9999Z",
            "9999-12-31T23:30:00-01:00", "1969-12-31T23:59:59-00:01", "0000-01-01",
            "2026-02-29", "2026-11-01T24:00:00Z"]  # fmt: skip
BOUNDARY: dict[str, list[str]] = {
    "long": ["x" * 256, "x" * 5000, "é" * 300, "a," * 200],
    "path": ["America", "Etc", "right/UTC", "posix/Europe/Paris", "posixrules", "Factory",
             "localtime", "EST", "../../etc/passwd", "/etc/localtime", "a/b/", "C:\\x"],
    "control": ["a\x00b", "\x00", "\t", "\r\n", "\u202e", "\ufeff"],
    "digits": ["²", "\u0661\u0660", "\uff15", "\U0001d7d9", "1e3", "-0", "0x10", " 1",
               "9" * 30, "1.5"],
    "lookalike": ["\uff55\uff54\uff43", "UTC\u200b", "Europe\u2215Paris",
                  "\u0430fter:2026-01-01", "ǅ", "İ"],
    "surrogate": ["\ud800", "a\udfffb"],
    "empty": ["", " "],
    "instant": [*INSTANTS, *(f"after:{i}" for i in INSTANTS), *(f"before:{i}" for i in INSTANTS)],
}  # fmt: skip
VALUES = [value for values in BOUNDARY.values() for value in values]
NESTED = [b"[" * 60_000, b'{"a":' * 5_000, b'{"name": "\\ud800"}', b"\xff\xfe", b"1" * 400]
JSON_BODY_ALSO = {"/v1/exports"}
"""Operations that take their query parameters as a JSON object body too."""
JOB_STARTERS = {("POST", "/v1/exports")}
"""Operations sent with ``format=none`` after the value under test: every parameter is read and
checked first, but no job is started per request (``GET /v1/export`` runs the same plan)."""
PAGE = "/settings/audit-logs"
PAGE_PARAMS = ["q", "start", "end", "range", "type", "category", "actor", "cursor"]


@pytest.fixture(scope="module")
def target(client: TestClient) -> dict[str, Any]:
    """An account east of UTC (year-1 local midnights are before year 1 in UTC) with entries."""
    account_id, headers = new_account(client, timezone="Pacific/Kiritimati")
    batch = [entry(category=c) for c in ("api", "webhook", "integration")]
    assert client.post("/v1/entries", json={"entries": batch}, headers=headers).json()["created"]
    return {"account_id": account_id, "headers": headers}


def _operations(client: TestClient) -> Iterator[tuple[str, str, dict[str, Any]]]:
    document = client.get("/openapi.json").json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield method.upper(), path, {**operation, "shared": item.get("parameters", [])}


def _body_fields(operation: dict[str, Any], path: str, document: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    fields = list(schema.get("properties", {}))
    if path in JSON_BODY_ALSO:
        fields += [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    return fields


class Checker:
    """Sends requests and collects every answer that breaks the rules."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.broken: list[str] = []
        self.sent = 0

    def send(self, method: str, url: str, *, blame: set[str], **kwargs: Any) -> Any:
        response = self.client.request(method, url, **kwargs)
        self.sent += 1
        where = f"{method} {url[:160]!r} {str(kwargs.get('content', ''))[:80]!r}"
        if response.status_code >= 500:
            self.broken.append(f"{response.status_code} for {where}: {response.text[:200]}")
        elif response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
            field = response.json().get("error", {}).get("field")
            if response.status_code == 400 and field is not None and field not in blame:
                self.broken.append(f"400 blames {field!r}, not sent, for {where}")
        return response


def _query(name: str, value: str) -> str:
    return f"{quote(name)}={quote(value, safe='', errors='surrogatepass')}"


def _auth(path: str, target: dict[str, Any]) -> dict[str, str]:
    return ADMIN if path.startswith("/v1/admin") else dict(target["headers"])


def _fill_path(path: str, value: str) -> str:
    out = path
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        out = out[:start] + quote(value, safe="", errors="surrogatepass") + out[end + 1 :]
    return out


def _operation_cases(
    check: Checker, method: str, path: str, operation: dict[str, Any], target: dict[str, Any]
) -> None:
    document = check.client.get("/openapi.json").json()
    headers = _auth(path, target)
    params = [p for p in operation.get("parameters", []) + operation["shared"]]
    query = [p["name"] for p in params if p["in"] == "query"]
    in_path = [p["name"] for p in params if p["in"] == "path"]
    plain = _fill_path(path, "nothing-here")
    tail, also = ("&format=none", {"format"}) if (method, path) in JOB_STARTERS else ("", set())
    for name in query:
        for value in VALUES:
            url = f"{plain}?{_query(name, value)}{tail}"
            check.send(method, url, blame={name, *also}, headers=headers)
    if {"from", "to"} <= set(query):
        for low in INSTANTS:
            for high in INSTANTS:
                url = f"{plain}?{_query('from', low)}&{_query('to', high)}{tail}"
                check.send(method, url, blame={"from", "to", *also}, headers=headers)
    needs_body = {"body"} if operation.get("requestBody") else set()
    for value in VALUES if in_path else []:
        url = _fill_path(path, value)
        check.send(method, url, blame={*in_path, *needs_body}, headers=headers)
    fields = _body_fields(operation, path, document)
    json_headers = {**headers, "Content-Type": "application/json"}
    url = f"{plain}?{tail[1:]}" if tail else plain
    for name in fields:
        for value in VALUES:
            body = json.dumps({name: value}).encode()  # a lone surrogate goes as its \\u escape
            blame = {*fields, "body", *also}  # a required field left out is blamed too
            check.send(method, url, blame=blame, content=body, headers=json_headers)
    if operation.get("requestBody") or path in JSON_BODY_ALSO:
        for raw in NESTED:
            check.send(method, url, blame={"body"}, content=raw, headers=json_headers)


ENTRY_FIELDS = ["id", "timestamp", "category", "type", "action", "message", "account_id",
                "actor.type", "actor.id", "actor.name", "actor.email", "metadata.note",
                "metadata.ip_address", "metadata.url"]  # fmt: skip


def _entry_with(field: str, value: str) -> dict[str, Any]:
    sent = entry()
    head, _, key = field.partition(".")
    if key:
        sent[head] = {**sent[head], key: value}  # type: ignore[dict-item]
    else:
        sent[head] = value
    return sent


def test_every_entry_field_takes_every_boundary_value(
    client: TestClient, target: dict[str, Any]
) -> None:
    """One batch per field, each entry with one boundary value: stored or rejected naming the
    field, never failed (a failure is the engine refusing what validation let through)."""
    headers = {**target["headers"], "Content-Type": "application/json"}
    for field in ENTRY_FIELDS:
        batch = [_entry_with(field, value) for value in VALUES]
        lines = "\n".join(json.dumps(e) for e in batch)  # a line with a lone surrogate: rejected
        _check_entries(client, "/v1/entries/_bulk", lines, VALUES, field, headers)
        texts = [
            v for v in VALUES if v.encode(errors="surrogatepass") == v.encode("utf-8", "ignore")
        ]
        batch = [_entry_with(field, value) for value in texts]  # one surrogate spoils a JSON body
        _check_entries(client, "/v1/entries", json.dumps({"entries": batch}), texts, field, headers)


def _check_entries(
    client: TestClient, path: str, body: str, values: list[str], field: str, headers: dict[str, str]
) -> None:
    kind = "application/x-ndjson" if path.endswith("_bulk") else "application/json"
    response = client.post(path, content=body, headers={**headers, "Content-Type": kind})
    if response.status_code == 403:  # another account named: the request is refused whole
        assert field == "account_id", response.text[:300]
        return
    assert response.status_code == 200, (field, response.text[:300])
    for value, result in zip(values, response.json()["results"], strict=True):
        assert result["status"] in ("created", "duplicate", "rejected"), (field, value, result)
        if result["status"] == "rejected":
            assert result["error"]["field"] in (field, field.split(".")[0], None), (value, result)


@pytest.fixture(scope="module")
def operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    return list(_operations(client))


def test_every_operation_takes_every_boundary_value(
    client: TestClient, target: dict[str, Any], operations: list[tuple[str, str, dict[str, Any]]]
) -> None:
    check = Checker(client)
    assert len(operations) >= 14
    for method, path, operation in operations:
        if method == "DELETE" or path.startswith("/v1/admin/accounts/"):
            continue  # below, on an account and keys of their own
        _operation_cases(check, method, path, operation, target)
    assert check.sent > 4000
    assert not check.broken, "\n".join(check.broken[:40])


def test_account_changes_take_boundary_values_and_what_they_accept_works(
    client: TestClient, operations: list[tuple[str, str, dict[str, Any]]]
) -> None:
    account_id, headers = new_account(client)
    check = Checker(client)
    for method, path, operation in operations:
        if path.startswith("/v1/admin/accounts/") or method == "DELETE":
            _operation_cases(check, method, path, operation, {"headers": headers})
    for zone in BOUNDARY["path"] + BOUNDARY["lookalike"] + ["UTC", "US/Eastern", "Etc/GMT-14"]:
        patched = check.send("PATCH", f"/v1/admin/accounts/{account_id}", blame={"timezone"},
                             json={"timezone": zone}, headers=ADMIN)  # fmt: skip
        if patched.status_code == 200:  # accepted: every view of the account must work with it
            for read in ("/v1/entries", "/v1/histogram", "/v1/export"):
                answered = client.get(read, headers=headers)
                assert answered.status_code == 200, (zone, read, answered.text[:200])
    assert not check.broken, "\n".join(check.broken[:40])


def test_the_pages_routes_and_forms_take_every_boundary_value(
    settings: Settings, target: dict[str, Any]
) -> None:
    key = target["headers"]["Authorization"].removeprefix("Bearer ")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with TestClient(create_app(settings)) as page:
        wait_ready(page)  # a page served before setup is done is a 503 ("starting")
        check = Checker(page)
        for value in VALUES:
            check.send("POST", f"{PAGE}/sign-in", blame=set(), content=_query("key", value),
                       headers=form)  # fmt: skip
        assert page.post(f"{PAGE}/sign-in", data={"key": key}, follow_redirects=False).is_redirect
        for name in PAGE_PARAMS:
            for value in VALUES:
                check.send("GET", f"{PAGE}?{_query(name, value)}", blame=set())
                content = f"{_query(name, value)}&format=csv"
                check.send("POST", f"{PAGE}/export", blame=set(), content=content, headers=form)
        for value in VALUES:
            check.send("GET", _fill_path(f"{PAGE}/exports/{{job_id}}", value), blame=set())
            check.send("GET", _fill_path(f"{PAGE}/exports/{{job_id}}/download", value), blame=set())
    assert check.sent > 1000
    assert not check.broken, "\n".join(check.broken[:40])
