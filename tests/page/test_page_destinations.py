"""Settings → Audit logs → Streaming over HTTP: who sees it, the list with each destination's
health, the forms (add, pause, resume, re-enable with a backfill, delete after confirmation),
their validation shown next to the field, their audit entries, and escaping.

A deployment of the module's own streams (a destination key; local receivers allowed): its
delivery loop delivers to real local webhook receivers, one that accepts and one that fails.
"""

from __future__ import annotations

import dataclasses
import html
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn
from elasticsearch import Elasticsearch
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from service.actions import destinations
from service.page.destination_forms import takes_search_text
from service.page.html import CONTENT_SECURITY_POLICY
from tests.helpers import ADMIN, delete_prefixed, new_account
from tests.live import live_server
from tests.page.browsing import PAGE, Visit
from tests.streaming.deployment import ingest_some, start_service, streaming_settings, until

STREAM = f"{PAGE}/streaming"
SCOPES = ("ingest", "read", "destinations")
SECRET = "whsec-page-" + "q" * 24
TAB = f'href="{STREAM}"'


@dataclass
class Receiver:
    """A webhook receiver answering ``answer``; the entry ids it accepted."""

    answer: int = 200
    url: str = ""
    ids: list[str] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        if self.answer != 200:
            return JSONResponse({"error": "<b>down</b> for maintenance"}, status_code=self.answer)
        events = (await request.json())["events"]
        self.ids += [e["entry"]["id"] for e in events if e["event_type"] == "entry"]
        return JSONResponse({"ok": True})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def receivers() -> Iterator[dict[str, Receiver]]:
    """``ok`` accepts every batch, ``down`` answers 503 (retried: the destination fails)."""
    found = {"ok": Receiver(), "down": Receiver(answer=503)}
    servers = []
    for receiver in found.values():
        port = _free_port()
        app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        receiver.url = f"http://127.0.0.1:{port}/hook"
        servers.append(server)
    yield found
    for server in servers:
        server.should_exit = True


@pytest.fixture(scope="module")
def service(engine_url: str, es: Elasticsearch) -> Iterator[TestClient]:
    prefix = f"pd{uuid.uuid4().hex[:8]}"
    client = start_service(streaming_settings(engine_url, prefix))
    yield client
    client.__exit__(None, None, None)
    delete_prefixed(es, prefix)


@dataclass
class Operator:
    """An account, its key's API headers, and the service signed in to the page with the key."""

    web: TestClient
    account: str
    headers: dict[str, str]


def _sign_in(web: TestClient, key: str) -> None:
    web.cookies.clear()
    resp = web.post(f"{PAGE}/sign-in", data={"key": key}, follow_redirects=False)
    assert resp.status_code == 303, resp.text


@pytest.fixture
def operator(service: TestClient) -> Operator:
    account, headers = new_account(service, scopes=SCOPES)
    _sign_in(service, headers["Authorization"].split(" ", 1)[1])
    return Operator(service, account, headers)


def _token(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, page
    return found.group(1)


def _form(web: TestClient, kind: str = "webhook") -> tuple[int, str]:
    resp = web.get(f"{STREAM}/new", params={"kind": kind})
    return resp.status_code, resp.text


def _add(op: Operator, **fields: Any) -> Any:
    """Post the add form (a webhook to nowhere unless told), as a person would fill it."""
    kind = str(fields.get("kind", "webhook"))
    status, page = _form(op.web, kind)
    assert status == 200, page
    secrets = {"secret.secret": SECRET} if kind == "webhook" else {}
    data: dict[str, Any] = {"csrf": _token(page), "kind": kind, "name": "SIEM",
                            "url": "https://siem.invalid/hook", "format": "entry", **secrets,
                            "start": "now", **fields}  # fmt: skip
    return op.web.post(f"{STREAM}/new", data=data, follow_redirects=False)


def _api(op: Operator, destination_id: str) -> dict[str, Any]:
    resp = op.web.get(f"/v1/destinations/{destination_id}", headers=op.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _only(op: Operator) -> dict[str, Any]:
    """The account's one destination, as the list the page shows reads it."""
    found = op.web.get("/v1/destinations", headers=op.headers).json()["destinations"]
    assert len(found) == 1, found
    return dict(found[0])


def _row(page: str, destination_id: str) -> str:
    found = re.search(rf'<tr data-destination="{destination_id}">.*?</tr>', page, re.S)
    assert found, page
    return found.group(0)


def _cell(row: str, column: str) -> str:
    found = re.search(rf'<td data-column="{column}">(.*?)</td>', row, re.S)
    assert found, row
    return found.group(1)


def _audit(op: Operator, action: str, destination_id: str) -> list[dict[str, Any]]:
    resp = op.web.get("/v1/entries", params={"category": "audit", "size": 100},
                      headers=op.headers)  # fmt: skip
    entries = resp.json()["entries"]
    return [e for e in entries if e["action"] == action
            and e["metadata"].get("target_id") == destination_id]  # fmt: skip


def _post(op: Operator, path: str, page: str | None = None, **data: str) -> Any:
    token = _token(page or _form(op.web)[1])
    return op.web.post(path, data={"csrf": token, **data}, follow_redirects=False)


def test_the_tab_and_the_view_need_the_destinations_scope(service: TestClient) -> None:
    account, headers = new_account(service, scopes=SCOPES)
    _sign_in(service, headers["Authorization"].split(" ", 1)[1])
    entries = service.get(PAGE)
    assert entries.status_code == 200 and TAB in entries.text
    listed = service.get(STREAM)
    assert listed.status_code == 200 and "No destinations yet." in listed.text
    assert listed.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "<script>" not in listed.text and " style=" not in listed.text  # nothing inline
    token = _token(_form(service)[1])
    for scopes in (("read",), ("read", "export", "ingest")):
        _, reader = new_account(service, scopes=scopes)
        _sign_in(service, reader["Authorization"].split(" ", 1)[1])
        assert TAB not in service.get(PAGE).text
        assert service.get(STREAM).status_code == 403
        assert service.get(f"{STREAM}/new", params={"kind": "webhook"}).status_code == 403
        data = {"csrf": token, "kind": "webhook", "name": "x", "url": "https://siem.invalid/",
                "secret.secret": SECRET}  # fmt: skip
        assert service.post(f"{STREAM}/new", data=data).status_code == 403
        fake = f"{STREAM}/dst_{'0' * 24}"
        for action in ("pause", "resume", "delete"):
            assert service.post(f"{fake}/{action}", data={"csrf": token}).status_code == 403
    service.cookies.clear()
    signed_out = service.get(STREAM)
    assert signed_out.status_code == 200 and 'name="key"' in signed_out.text  # sign in first
    assert service.get("/v1/destinations", headers=headers).json()["destinations"] == []
    assert account


def test_a_viewer_session_never_manages_destinations(service: TestClient) -> None:
    account, _ = new_account(service, scopes=SCOPES)
    host = service.post("/v1/admin/keys", headers=ADMIN, json={
        "account_id": account, "scopes": ["viewer", "read", "export", "destinations"],
        "name": "host app"}).json()["key"]  # fmt: skip
    minted = service.post("/v1/viewer-sessions", headers={"Authorization": f"Bearer {host}"},
                          json={"viewer": {"id": "u_1", "name": "Jane Doe"},
                                "scopes": ["read", "export"]})  # fmt: skip
    assert minted.status_code == 201, minted.text
    path = minted.json()["url"][minted.json()["url"].index(PAGE) :]
    service.cookies.clear()
    assert service.get(path).status_code == 200
    opened = service.post(path, headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert opened.status_code == 303
    page = service.get(PAGE)
    assert page.status_code == 200 and "Jane Doe" in page.text and TAB not in page.text
    assert service.get(STREAM).status_code == 403
    token = _token(page.text)  # the viewer's own form token: still refused
    data = {"csrf": token, "kind": "webhook", "name": "x", "url": "https://siem.invalid/",
            "secret.secret": SECRET}  # fmt: skip
    assert service.post(f"{STREAM}/new", data=data).status_code == 403
    listed = service.get("/v1/destinations", headers={"Authorization": f"Bearer {host}"})
    assert listed.json()["destinations"] == []
    service.cookies.clear()


def test_an_added_destination_is_listed_with_its_health(
    operator: Operator, receivers: dict[str, Receiver]
) -> None:
    op, ok = operator, receivers["ok"]
    status, form = _form(op.web)
    assert status == 200
    for ident in ("name", "url", "format", "secret-secret", "category-webhook", "type-error",
                  "start-position"):  # fmt: skip
        assert f'<label for="d-{ident}">' in form, ident
    added = _add(op, name="Acme SIEM", url=ok.url, **{"category": "webhook", "type": "error"})
    assert added.status_code == 303 and added.headers["location"] == f"{STREAM}?done=created"
    destination = _only(op)
    assert destination["filter"] == {"categories": ["webhook"], "types": ["error"]}
    ids = ingest_some(op.web, op.headers, 3)
    until(lambda: _only(op)["health"].get("delivered") == 3, "delivered")
    until(lambda: set(ids) <= set(ok.ids), "received")
    page = op.web.get(f"{STREAM}?done=created")
    assert page.status_code == 200
    assert "Destination added. Its secrets are stored encrypted" in page.text
    row = _row(page.text, destination["id"])
    assert "Acme SIEM" in row and "Secrets set: secret" in row and SECRET not in page.text
    assert _cell(row, "kind") == "Webhook"
    assert html.unescape(_cell(row, "address")).endswith(f">{ok.url}</code>")
    assert _cell(row, "format").startswith("Entry")
    assert _cell(row, "sends") == "Categories: Webhook; Types: Error"
    assert 'data-status="active"' in _cell(row, "status")
    assert "<time datetime=" in _cell(row, "last success")
    assert 'data-delivered="3"' in row and 'data-failed="0"' in row
    assert ">None<" in _cell(row, "last error")
    assert f'action="{STREAM}/{destination["id"]}/pause"' in row


def test_a_failing_destination_shows_its_lag_and_last_error(
    operator: Operator, receivers: dict[str, Receiver]
) -> None:
    op = operator
    created = time.time()
    assert _add(op, url=receivers["down"].url, category="webhook").status_code == 303
    destination = _only(op)
    start = int(destination["position"])
    ingest_some(op.web, op.headers, 4)

    def head() -> int:
        resp = op.web.get("/v1/integrity/head", headers=op.headers)
        return int(resp.json()["tree_size"]) if resp.status_code == 200 else 0

    until(lambda: head() >= start + 4, "sealed")
    sealed = time.time()  # the oldest waiting entry was sealed between `created` and now
    until(lambda: _only(op)["health"].get("last_error"), "failed")
    while True:  # a head that did not move while the page was drawn
        before, shown, asked = head(), _only(op), time.time()
        page = op.web.get(STREAM).text
        answered = time.time()
        if head() == before:
            break
    row = _row(page, destination["id"])
    assert int(shown["position"]) == start and before - start >= 4
    assert f'data-lag-entries="{before - start}"' in row
    waited = int(re.search(r'data-lag-seconds="(\d+)"', row).group(1))  # type: ignore[union-attr]
    assert asked - sealed - 1 <= waited <= answered - created + 1
    assert 'data-status="failing"' in _cell(row, "status")
    assert html.escape(shown["health"]["last_error"]) in _cell(row, "last error")
    assert int(re.search(r'data-failed="(\d+)"', row).group(1)) >= 1  # type: ignore[union-attr]
    assert "Never" in _cell(row, "last success")


def test_pause_and_resume_from_the_page_are_audited(operator: Operator) -> None:
    op = operator
    assert _add(op, name="To pause").status_code == 303
    destination = _only(op)
    paused = _post(op, f"{STREAM}/{destination['id']}/pause")
    assert paused.status_code == 303 and paused.headers["location"] == f"{STREAM}?done=paused"
    assert _api(op, destination["id"])["status"] == "paused"
    row = _row(op.web.get(STREAM).text, destination["id"])
    status = _cell(row, "status")
    assert 'data-status="paused"' in status and "paused by a person" in status  # and why
    assert f"{destination['id']}/resume" in row and f"{destination['id']}/pause" not in row
    until(lambda: _audit(op, "destination.paused", destination["id"]), "the pause's audit entry")
    entry = _audit(op, "destination.paused", destination["id"])[0]
    assert entry["actor"]["type"] == "api_key" and entry["metadata"]["status"] == "paused"
    resumed = _post(op, f"{STREAM}/{destination['id']}/resume")
    assert resumed.status_code == 303
    assert _api(op, destination["id"])["status"] in ("active", "failing")
    until(lambda: _audit(op, "destination.resumed", destination["id"]), "the resume's entry")
    assert _audit(op, "destination.created", destination["id"])


@pytest.mark.parametrize(
    ("fields", "field_name", "words"),
    [
        ({"url": "ftp://siem.example.com/"}, "url", "url of a webhook destination is"),
        ({"url": "https://user:pw@siem.example.com/"}, "url", "must not carry credentials"),
        ({"name": "  "}, "name", "name must be a non-empty string"),
        ({"secret.secret": ""}, "secrets", "secrets.secret is required"),
        ({"start": "position", "start_position": "abc"}, "start", "start must be"),
        ({"start": "position", "start_position": "999999"}, "start", "start must be"),
        ({"format": "xml"}, "format", "format must be one of"),
        ({"category": "nonsense"}, "filter", "filter.categories must list"),
    ],
)
def test_mistakes_are_shown_next_to_their_field(
    operator: Operator, fields: dict[str, str], field_name: str, words: str
) -> None:
    resp = _add(operator, name=fields.pop("name", "Typed name"), **fields)
    assert resp.status_code == 400, resp.text
    page = resp.text
    assert f'data-field="{field_name}"' in page and words in html.unescape(page)
    assert f'id="error-{field_name}"' in page  # under the field (or its group)
    if field_name in ("name", "url"):
        assert re.search(rf'id="d-{field_name}"[^>]*aria-invalid="true"', page)
    assert SECRET not in page  # secrets are typed again, never written back
    if field_name != "name":
        assert 'value="Typed name"' in page  # what was typed is kept
    assert operator.web.get("/v1/destinations", headers=operator.headers).json() == {
        "destinations": []
    }


def test_a_refused_url_with_credentials_is_drawn_again_without_them(operator: Operator) -> None:
    token = "tok3n-" + uuid.uuid4().hex
    typed = {
        f"https://siem-user:{token}@siem.example.com:8443/in@box?x=1": (
            "https://siem.example.com:8443/in@box?x=1"
        ),
        f"https://{token}@[2001:db8::1]/hook": "https://[2001:db8::1]/hook",
        f"ftp://siem-user:{token}@siem.example.com/": "ftp://siem.example.com/",  # scheme refused
    }
    for url, shown in typed.items():
        resp = _add(operator, url=url)
        assert resp.status_code == 400 and 'data-field="url"' in resp.text, resp.text
        assert token not in resp.text and "siem-user" not in resp.text
        assert re.search(rf'id="d-url"[^>]*value="{re.escape(html.escape(shown))}"', resp.text)
    assert operator.web.get("/v1/destinations", headers=operator.headers).json() == {
        "destinations": []
    }


def test_settings_and_kinds_are_checked_by_the_action(operator: Operator) -> None:
    op = operator
    assert _form(op.web, "smtp")[0] == 400
    status, form = _form(op.web, "elasticsearch")
    assert status == 200 and 'name="setting.index"' in form and 'name="secret.api_key"' in form
    no_index = _add(op, kind="elasticsearch", url="https://es.invalid:9200", **{
        "secret.api_key": "k"})  # fmt: skip
    assert no_index.status_code == 400 and 'data-field="settings"' in no_index.text
    slow = _add(op, kind="elasticsearch", url="https://es.invalid:9200",
                **{"setting.index": "audit", "setting.timeout_s": "a while"})  # fmt: skip
    assert slow.status_code == 400 and "settings.timeout_s must be a number" in slow.text
    typed = {"setting.facility": "local3", "setting.max_message_bytes": "4096"}
    syslog = _add(op, kind="syslog", url="tcp://siem.invalid:6514", **typed)
    assert syslog.status_code == 303, syslog.text
    made = _only(op)
    assert made["settings"] == {"facility": "local3", "max_message_bytes": 4096}
    assert made["kind"] == "syslog" and made["secrets_set"] == []


def test_formats_and_search_text_follow_the_action(operator: Operator) -> None:
    op = operator
    form = _form(op.web)[1]
    for fmt in destinations.FORMATS:  # whatever formats the action takes, the form offers
        assert f'<option value="{fmt}"' in form
    if not takes_search_text():
        assert 'name="q"' not in form
        return
    bad = _add(op, q="after:notadate")
    assert bad.status_code == 400 and 'data-field="filter.q"' in bad.text
    assert re.search(r'id="d-q"[^>]*aria-invalid="true"', bad.text)
    assert 'id="error-filter.q"' in bad.text and 'value="after:notadate"' in bad.text
    last = destinations.FORMATS[-1]
    good = _add(op, q='signal "Rival watch"', format=last)
    assert good.status_code == 303, good.text
    made = _only(op)
    assert made["filter"] == {"q": 'signal "Rival watch"'} and made["format"] == last
    row = _row(op.web.get(STREAM).text, made["id"])
    assert html.unescape(_cell(row, "sends")) == 'Search: signal "Rival watch"'


def test_delete_asks_for_confirmation_first(operator: Operator) -> None:
    op = operator
    assert _add(op, name="Old SIEM").status_code == 303
    destination = _only(op)
    confirm = op.web.get(f"{STREAM}/{destination['id']}/delete")
    assert confirm.status_code == 200 and "Old SIEM" in confirm.text
    assert 'name="confirm" value="yes"' in confirm.text
    unconfirmed = _post(op, f"{STREAM}/{destination['id']}/delete", confirm.text)
    assert unconfirmed.status_code == 200 and 'id="confirm-delete"' in unconfirmed.text
    assert _api(op, destination["id"])["name"] == "Old SIEM"  # still there
    deleted = _post(op, f"{STREAM}/{destination['id']}/delete", confirm.text, confirm="yes")
    assert deleted.status_code == 303 and deleted.headers["location"] == f"{STREAM}?done=deleted"
    gone = op.web.get(f"/v1/destinations/{destination['id']}", headers=op.headers)
    assert gone.status_code == 404
    assert "No destinations yet." in op.web.get(STREAM).text
    until(lambda: _audit(op, "destination.deleted", destination["id"]), "the deletion's entry")
    again = _post(op, f"{STREAM}/{destination['id']}/delete", confirm.text, confirm="yes")
    assert again.status_code == 404 and "no such destination" in again.text


def test_forms_need_the_page_origin_and_the_form_token(operator: Operator) -> None:
    op = operator
    assert _add(op).status_code == 303
    destination = _only(op)
    pause = f"{STREAM}/{destination['id']}/pause"
    assert op.web.post(pause, data={}).status_code == 403
    assert op.web.post(pause, data={"csrf": "0" * 32}).status_code == 403
    token = _token(op.web.get(STREAM).text)
    forged = op.web.post(pause, data={"csrf": token}, headers={"Origin": "https://evil.test"})
    assert forged.status_code == 403
    assert _api(op, destination["id"])["status"] in ("active", "failing")
    other, other_headers = new_account(op.web, scopes=SCOPES)
    _sign_in(op.web, other_headers["Authorization"].split(" ", 1)[1])
    theirs = _post(op, pause)  # another account's destination: not found, not paused
    assert theirs.status_code == 404 and other
    assert _api(op, destination["id"])["status"] in ("active", "failing")


def test_names_and_messages_are_escaped(operator: Operator) -> None:
    op = operator
    assert _add(op, name="<b>x</b>").status_code == 303
    destination = _only(op)
    for path in (STREAM, f"{STREAM}/{destination['id']}/delete"):
        page = op.web.get(path).text
        assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    bad = _add(op, name="<i>y</i>", url="<script>alert(1)</script>")
    assert bad.status_code == 400
    assert "<script>alert(1)</script>" not in bad.text and "<i>y</i>" not in bad.text


def test_without_a_destination_key_the_page_says_so(web: TestClient) -> None:
    _, headers = new_account(web, scopes=SCOPES)
    _sign_in(web, headers["Authorization"].split(" ", 1)[1])
    page = web.get(STREAM)
    assert page.status_code == 200 and "AUDITLOG_DESTINATION_KEY" in page.text
    form = web.get(f"{STREAM}/new", params={"kind": "webhook"}).text
    data = {"csrf": _token(form), "kind": "webhook", "name": "x",
            "url": "https://siem.invalid/", "secret.secret": SECRET}  # fmt: skip
    refused = web.post(f"{STREAM}/new", data=data)
    assert refused.status_code == 503 and "AUDITLOG_DESTINATION_KEY" in refused.text


@pytest.fixture
def disabling(engine_url: str, es: Elasticsearch) -> Iterator[Operator]:
    """A deployment of its own that disables a destination paused for half a second."""
    prefix = f"pe{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(streaming_settings(engine_url, prefix),
                                   destination_disable_after_s=0.5)  # fmt: skip
    client = start_service(settings)
    try:
        account, headers = new_account(client, scopes=SCOPES)
        _sign_in(client, headers["Authorization"].split(" ", 1)[1])
        yield Operator(client, account, headers)
    finally:
        client.__exit__(None, None, None)
        delete_prefixed(es, prefix)


def test_a_disabled_destination_is_re_enabled_with_a_backfill(disabling: Operator) -> None:
    op = disabling
    ingest_some(op.web, op.headers, 2)
    assert _add(op, name="Dormant").status_code == 303
    destination = _only(op)
    assert _post(op, f"{STREAM}/{destination['id']}/pause").status_code == 303
    until(lambda: _only(op)["status"] == "disabled", "disabled")
    page = op.web.get(STREAM).text
    row = _row(page, destination["id"])
    assert 'data-status="disabled"' in row and "paused for too long" in row
    assert f"{destination['id']}/resume" in row and "Re-enable" in row
    resume = f"{STREAM}/{destination['id']}/resume"
    wrong = _post(op, resume, page, **{"from": "position", "position": "-1"})
    assert wrong.status_code == 400 and "Backfill position: not done." in wrong.text
    assert _api(op, destination["id"])["status"] == "disabled"
    again = _post(op, resume, page, **{"from": "position", "position": "0"})
    assert again.status_code == 303 and again.headers["location"] == f"{STREAM}?done=resumed"
    shown = _api(op, destination["id"])
    assert shown["status"] in ("active", "failing")
    until(lambda: _audit(op, "destination.resumed", destination["id"]), "the resume's entry")
    assert _audit(op, "destination.resumed", destination["id"])[0]["metadata"]["position"] == 0


@pytest.mark.browser
def test_a_person_adds_pauses_and_deletes_a_destination(
    browser: Any, engine_url: str, es: Elasticsearch, receivers: dict[str, Receiver]
) -> None:
    """In Chromium, by keyboard-reachable names: the tab, the kind, the labelled fields, the
    row's own buttons, the confirmation."""
    prefix = f"pb{uuid.uuid4().hex[:8]}"
    try:
        with live_server(streaming_settings(engine_url, prefix)) as base:
            until(lambda: httpx.get(f"{base}/readyz").status_code == 200, "ready")
            account = f"acct-{uuid.uuid4().hex[:10]}"
            made = httpx.post(f"{base}/v1/admin/accounts", headers=ADMIN,
                              json={"id": account, "name": "Acme", "timezone": "UTC"})  # fmt: skip
            assert made.status_code == 201, made.text
            wanted = {"account_id": account, "scopes": list(SCOPES), "name": "ops"}
            key = httpx.post(f"{base}/v1/admin/keys", headers=ADMIN, json=wanted).json()["key"]
            visit = Visit(browser, base)
            try:
                _click_through(visit, key, receivers["ok"].url)
            finally:
                visit.close()
    finally:
        delete_prefixed(es, prefix)


def _click_through(visit: Visit, key: str, url: str) -> None:
    page, name = visit.page, "Acme <SIEM>"
    visit.sign_in(key)
    with page.expect_navigation():
        page.get_by_role("link", name="Streaming").click()
    expect(page.get_by_role("heading", name="Streaming", level=1)).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("link", name="Webhook").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Address (URL)").fill(url)
    page.get_by_label("Secret (required)").fill(SECRET)
    page.get_by_role("checkbox", name="Audit", exact=True).check()
    with page.expect_navigation():
        page.get_by_role("button", name="Add the destination").click()
    expect(page.get_by_role("status")).to_contain_text("Destination added")
    row = page.locator("tr[data-destination]")
    expect(row.get_by_role("rowheader")).to_contain_text(name)  # as text, not markup
    expect(row.locator('td[data-column="sends"]')).to_have_text("Categories: Audit")
    with page.expect_navigation():
        page.get_by_role("button", name=f"Pause {name}").click()
    expect(row.locator(".pill")).to_have_text("Paused")
    expect(row.locator(".status-reason")).to_have_text("paused by a person")
    with page.expect_navigation():
        page.get_by_role("link", name=f"Delete… {name}").click()
    with page.expect_navigation():
        page.get_by_role("button", name=f"Delete {name}").click()
    expect(page.locator(".empty-destinations")).to_have_text("No destinations yet.")
    assert visit.errors == []
