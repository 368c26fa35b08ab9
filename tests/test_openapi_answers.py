"""Every answer of the real service matches what the served OpenAPI document says of it.

Each operation is called for real (an account, keys, entries sealed into the log, exports, a
viewer link, a destination made through the API) and each answer is checked against the document
served at ``/openapi.json``: its status is listed, the headers it lists as always sent are there,
its media type is listed and a JSON body validates against the schema listed (``$ref`` resolved
in the served document), as does each JSON request body sent (but entries: some are sent to be
rejected). Every success answer the document describes as JSON must have been seen; 408 and 429
are provoked on every operation that lists them.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from elasticsearch import Elasticsearch
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.helpers import ADMIN, entry, new_account, wait_ready
from tests.live import live_server
from tests.streaming.deployment import streaming_settings

DOCUMENT = "urn:auditlog:openapi"
EVERY_SCOPE = ("ingest", "read", "export", "viewer", "destinations")


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class Answers:
    """Checks answers against the served document; remembers the ``(method, path, status)``
    of every answer checked."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(DOCUMENT, resource)
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, response: Any, method: str, path: str) -> Any:
        """``response`` to ``method path`` (the documented path, ``{names}`` and all)."""
        status = str(response.status_code)
        where = f"{method} {path} {status}: {response.text[:300]}"
        answer = self.document["paths"][path][method.lower()]["responses"].get(status)
        assert answer is not None, f"not documented: {where}"
        for name, header in answer.get("headers", {}).items():
            assert not header.get("required") or name in response.headers, (name, where)
        content = answer.get("content", {})
        media = response.headers.get("content-type", "").split(";")[0]
        assert (media in content) if content else not response.content, (media, where)
        if media == "application/json":
            pointer = _pointer("paths", path, method.lower(), "responses", status, "content",
                               media, "schema")  # fmt: skip
            self._validate(pointer, response.json(), where)
        self.seen.add((method.lower(), path, status))
        return response

    def _validate(self, pointer: str, value: Any, where: str) -> None:
        validator = Draft202012Validator(
            {"$ref": f"{DOCUMENT}#/{pointer}"},
            registry=self.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]
        assert errors == [], f"{where}\n" + "\n".join(errors[:10])

    def valid_body(self, method: str, path: str, body: Any) -> Any:
        """``body``, once it validates against the operation's JSON request body schema."""
        pointer = _pointer("paths", path, method.lower(), "requestBody", "content",
                           "application/json", "schema")  # fmt: skip
        self._validate(pointer, body, f"{method} {path} request body")
        return body

    def json_successes(self) -> set[tuple[str, str, str]]:
        return {
            (method, path, status)
            for path, item in self.document["paths"].items()
            for method, operation in item.items()
            for status, answer in operation["responses"].items()
            if status.startswith("2") and "application/json" in answer.get("content", {})
        }


def until(check: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.3)
    return found


@pytest.fixture(scope="module")
def streaming(engine_url: str, prefix: str, client: TestClient) -> Iterator[TestClient]:
    """Another instance of the session's deployment, with a destination key."""
    with TestClient(create_app(streaming_settings(engine_url, prefix))) as served:
        wait_ready(served)
        yield served


class Calls:
    """A client, the answers' checker, and an account with a key of every account scope."""

    def __init__(self, client: TestClient, answers: Answers) -> None:
        self.client = client
        self.answers = answers
        self.account_id = ""
        self.headers: dict[str, str] = {}

    def __call__(self, method: str, path: str, url: str | None = None, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", ADMIN if path.startswith("/v1/admin") else self.headers)
        if "json" in kwargs and path != "/v1/entries":  # entries: some are sent to be rejected
            self.answers.valid_body(method, path, kwargs["json"])
        response = self.client.request(method, url or path, headers=headers, **kwargs)
        return self.answers.check(response, method, path)


def _admin(call: Calls) -> None:
    account_id = f"oa-{uuid.uuid4().hex[:10]}"
    body = {"id": account_id, "name": "OpenAPI", "timezone": "Europe/Paris"}
    assert call("POST", "/v1/admin/accounts", json=body).status_code == 201
    changed = call("PATCH", "/v1/admin/accounts/{account_id}", f"/v1/admin/accounts/{account_id}",
                   json={"view_audit": True})  # fmt: skip
    assert changed.json()["view_audit"] is True
    call("GET", "/v1/admin/accounts")
    key = {"account_id": account_id, "scopes": list(EVERY_SCOPE), "name": "all"}
    created = call("POST", "/v1/admin/keys", json=key).json()
    call.account_id, call.headers = account_id, {"Authorization": f"Bearer {created['key']}"}
    spare = call("POST", "/v1/admin/keys", json={"account_id": None, "scopes": ["read"]}).json()
    call("GET", "/v1/admin/keys", params={"account_id": account_id})
    call("GET", "/v1/admin/keys")
    revoked = call("DELETE", "/v1/admin/keys/{key_id}", f"/v1/admin/keys/{spare['id']}")
    assert revoked.status_code == 204


def _ingest(call: Calls) -> list[str]:
    """Three entries stored (one without an id) and one rejected, then one more in NDJSON."""
    sent = [entry(), entry(category="integration", metadata={"provider": "hubspot"}),
            {**entry(), "id": None}, entry(category="nothing")]  # fmt: skip
    results = call("POST", "/v1/entries", json={"entries": sent}).json()["results"]
    assert [r["status"] for r in results] == ["created", "created", "created", "rejected"]
    lines = f"{json.dumps(entry(type='notice'))}\nnot json\n"
    bulk = call("POST", "/v1/entries/_bulk", content=lines,
                headers={**call.headers, "Content-Type": "application/x-ndjson"})  # fmt: skip
    assert [r["status"] for r in bulk.json()["results"]] == ["created", "rejected"]
    return [str(r["id"]) for r in results[:3]] + [bulk.json()["results"][0]["id"]]


def _reads(call: Calls, es: Elasticsearch) -> None:
    es.indices.refresh(index="*")
    page = call("GET", "/v1/entries", params={"range": "all", "size": 2}).json()
    assert page["total"] >= 4 and page["next_cursor"]
    call("GET", "/v1/entries", params={"range": "all", "cursor": page["next_cursor"], "size": 2})
    call("GET", "/v1/histogram", params={"range": "all"})
    call("GET", "/v1/histogram", params={"range": "7d", "split": "none", "tz": "UTC"})


def _sealed(call: Calls, es: Elasticsearch) -> dict[str, Any]:
    """The verification report, once everything the account holds is sealed."""

    def report() -> dict[str, Any] | None:
        es.indices.refresh(index="*")
        found = dict(call("GET", "/v1/integrity/verify").json())
        done = found["pending"] == 0 and found["tree_size"] >= found["entries_checked"]
        return found if done else None

    return dict(until(report, "the account's entries are sealed"))


def _integrity(call: Calls, ids: list[str], es: Elasticsearch) -> None:
    report = _sealed(call, es)
    assert report["ok"] is True, report
    head = call("GET", "/v1/integrity/head").json()
    call("GET", "/v1/integrity/proof", params={"id": ids[0]})
    call("GET", "/v1/integrity/proof", params={"id": ids[1], "tree_size": head["tree_size"]})
    proofs = call("GET", "/v1/integrity/proof", params={"ids": f"{ids[2]},nothing-here"}).json()
    assert "error" in proofs["proofs"][1]
    call("GET", "/v1/integrity/consistency", params={"from": 1, "to": head["tree_size"]})
    call("GET", "/v1/integrity/keys", headers={})
    feed = call("GET", "/v1/feed", params={"limit": 3}).json()
    call("GET", "/v1/feed", params={"after": feed["next_after"], "tz": "Asia/Tokyo"})


def _manifest(call: Calls, export_id: str) -> dict[str, Any]:
    path, url = "/v1/exports/{export_id}/manifest", f"/v1/exports/{export_id}/manifest"
    resp = until(lambda: (r := call("GET", path, url)).status_code == 200 and r, "a manifest")
    return dict(resp.json())


def _exports(call: Calls) -> None:
    for fmt in ("csv", "xlsx", "ndjson"):
        download = call("GET", "/v1/export", params={"format": fmt, "range": "all"})
        assert download.status_code == 200
        assert _manifest(call, download.headers["x-export-id"])["format"] == fmt
    for _ in range(5):  # a fresh entry is sealed within a second or two: its manifest waits
        call("POST", "/v1/entries", json=entry())
        body = {"range": "all", "category": ["webhook", "integration"], "bom": True}
        started = call("POST", "/v1/exports", params={"format": "ndjson"},
                       json=body)  # fmt: skip
        job = started.json()
        first = call("GET", "/v1/exports/{export_id}/manifest", f"/v1/exports/{job['id']}/manifest")
        _manifest(call, job["id"])
        if first.status_code == 202:
            break
    path, url = "/v1/exports/{job_id}", f"/v1/exports/{job['id']}"
    until(lambda: call("GET", path, url).json()["status"] == "done", "the job is done")
    call("GET", "/v1/exports/{job_id}/download", f"/v1/exports/{job['id']}/download")


def _destinations(call: Calls) -> None:
    body = {"name": "SIEM", "kind": "webhook", "url": "http://127.0.0.1:9/hook",
            "secrets": {"secret": "whsec_x"}, "filter": {"types": ["notice", "error"]},
            "start": 0}  # fmt: skip
    created = call("POST", "/v1/destinations", json=body).json()
    path, url = "/v1/destinations/{destination_id}", f"/v1/destinations/{created['id']}"
    call("GET", "/v1/destinations")
    until(lambda: call("GET", path, url).json()["health"].get("last_error"), "a delivery failed")
    call("PATCH", path, url, json={"status": "paused"})
    call("PATCH", path, url, json={"status": "active", "position": 0})
    call("GET", path, url)
    assert call("DELETE", path, url).status_code == 204


def _errors(call: Calls) -> None:
    """A few errors of each kind: the error body, as listed."""
    wrong = [
        call("GET", "/v1/entries", params={"size": 0}),
        call("GET", "/v1/entries", headers={}),
        call("GET", "/v1/admin/accounts", headers=call.headers),
        call("GET", "/v1/exports/{job_id}", "/v1/exports/exp_" + "0" * 24),
        call("POST", "/v1/admin/accounts", json={"id": call.account_id}),
        call("POST", "/v1/entries", content="{}", headers={**call.headers,
                                                           "Content-Type": "text/plain"}),
    ]  # fmt: skip
    assert [r.status_code for r in wrong] == [400, 401, 403, 404, 409, 415]


def test_every_answer_matches_the_served_document(streaming: TestClient, es: Elasticsearch) -> None:
    answers = Answers(streaming.get("/openapi.json").json())
    call = Calls(streaming, answers)
    for path in ("/healthz", "/readyz", "/metrics"):
        call("GET", path, headers={})
    _admin(call)
    ids = _ingest(call)
    _reads(call, es)
    _integrity(call, ids, es)
    _exports(call)
    call("POST", "/v1/viewer-sessions", json={"viewer": {"id": "u_1", "name": "Jane"},
                                              "scopes": ["read"]})  # fmt: skip
    _destinations(call)
    _errors(call)
    assert answers.json_successes() - answers.seen == set()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _filled(path: str) -> str:
    values = {
        "{account_id}": "acme",
        "{key_id}": "0" * 16,
        "{job_id}": "exp_" + "0" * 24,
        "{export_id}": "exp_" + "0" * 24,
        "{destination_id}": "dst_" + "0" * 24,
    }
    for name, value in values.items():
        path = path.replace(name, value)
    return path  # fmt: skip


def test_every_v1_request_can_get_429_when_too_many_are_in_flight(
    settings: Settings, client: TestClient
) -> None:
    """With no slot free, every ``/v1`` operation answers 429 as its document says."""
    answers = Answers(client.get("/openapi.json").json())
    with TestClient(create_app(replace(settings, max_inflight=0))) as full:
        wait_ready(full)
        for method, path, _ in _operations(answers.document):
            response = full.request(method, _filled(path), headers=ADMIN)
            if path.startswith("/v1/"):
                assert response.status_code == 429, (method, path)
                answers.check(response, method, path)
            else:
                assert "429" not in answers.document["paths"][path][method.lower()]["responses"]


def _stalled(url: str, method: str, path: str, headers: dict[str, str]) -> Any:
    """Send ``method path`` whose body stops after a few bytes; the answer's status and body."""
    parts = urlsplit(url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Length: 1000",
             *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b'{"na')
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
            if data.rstrip().endswith(b"}"):
                break
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    return _Raw(int(head.split(b" ", 2)[1]), body, {k.lower(): v for k, v in fields.items()})


class _Raw:
    """An answer read off the socket, as :meth:`Answers.check` reads one."""

    def __init__(self, status: int, content: bytes, headers: dict[str, str]) -> None:
        self.status_code, self.content, self.headers = status, content, headers
        self.text = content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.text)


def test_every_request_with_a_body_can_get_408_when_it_stops_arriving(
    engine_url: str, prefix: str, client: TestClient
) -> None:
    answers = Answers(client.get("/openapi.json").json())
    _, headers = new_account(client, scopes=EVERY_SCOPE)
    strict = replace(streaming_settings(engine_url, prefix), body_idle_timeout_s=0.5)
    with live_server(strict) as url:
        for method, path, operation in _operations(answers.document):
            if "requestBody" not in operation:
                assert "408" not in operation["responses"], (method, path)
                continue
            [media] = operation["requestBody"]["content"]
            auth = ADMIN if path.startswith("/v1/admin") else headers
            response = _stalled(url, method, _filled(path), {**auth, "Content-Type": media})
            assert response.status_code == 408, (method, path, response.text)
            answers.check(response, method, path)
