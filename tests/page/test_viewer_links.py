"""Viewer links: a host application opens the page for one person, whose exports are recorded
as theirs. Over HTTP (minting rules, the one-time link, expiry, revocation, isolation, two
instances), and end to end in headless Chromium."""

from __future__ import annotations

import concurrent.futures
import hashlib
import html
import http.server
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.search.indices import IndexNames
from service.web.security import RedactLinkTokens
from tests.helpers import ADMIN, new_account, refresh
from tests.live import served
from tests.page.browsing import PAGE, Visit, csv_ids
from tests.page.conftest import Seeded

JANE = {"id": "u_42", "name": "Jane Doe", "email": "jane@acme.test"}
SAME_ORIGIN = {"Origin": "http://testserver"}


def _minting_key(client: TestClient, account_id: str, scopes: list[str]) -> dict[str, str]:
    created = client.post(
        "/v1/admin/keys",
        headers=ADMIN,
        json={"account_id": account_id, "scopes": scopes, "name": "host app"},
    )
    assert created.status_code == 201, created.text  # fmt: skip
    return {"Authorization": f"Bearer {created.json()['key']}"}


def _mint(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/viewer-sessions", json={"viewer": JANE, **body}, headers=headers)


def _path(url: str) -> str:
    return url[url.index(PAGE) :]


def _open(web: TestClient, url: str) -> Any:
    greeting = web.get(_path(url))
    assert greeting.status_code == 200, greeting.text
    assert greeting.headers["cache-control"] == "no-store"
    assert greeting.headers["referrer-policy"] == "strict-origin"  # the origin, never the token
    assert "Jane Doe" in greeting.text and 'id="continue"' in greeting.text
    return web.post(_path(url), follow_redirects=False, headers={"Origin": "http://testserver"})


def test_minting_needs_the_viewer_scope_and_names_bad_fields(
    client: TestClient, seeded: Seeded
) -> None:
    reader = {"Authorization": f"Bearer {seeded.key}"}  # read, export, ingest: no viewer
    assert _mint(client, reader).status_code == 403
    host = _minting_key(client, seeded.account, ["viewer", "read"])
    bad = [
        ({"viewer": None}, "viewer"),
        ({"viewer": {"id": "u1"}}, "viewer.name"),
        ({"viewer": {**JANE, "email": "not an address"}}, "viewer.email"),
        ({"viewer": {**JANE, "role": "admin"}}, "viewer.role"),
        ({"scopes": ["export"]}, "scopes"),
        ({"scopes": ["read", "export"]}, "scopes"),  # more than the key has
        ({"scopes": ["read", "admin"]}, "scopes"),
        ({"expires_in_s": 7200}, "expires_in_s"),
        ({"expires_in_s": "60"}, "expires_in_s"),
        ({"return_url": "https://evil.test/"}, "return_url"),
        ({"return_url": "https://["}, "return_url"),  # not a URL
        ({"return_url": "https://app.acme.test/settings/../admin"}, "return_url"),
        ({"colour": "red"}, "colour"),
        ({"account_id": seeded.other_account}, None),  # another account: 403
    ]
    for body, field in bad:
        resp = client.post("/v1/viewer-sessions", json={"viewer": JANE, **body}, headers=host)
        if field is None:
            assert resp.status_code == 403, resp.text
        else:
            assert resp.status_code == 400, (body, resp.text)
            assert resp.json()["error"]["field"] == field, (body, resp.text)
    env_admin = client.post("/v1/viewer-sessions", json={"viewer": JANE}, headers=ADMIN)
    assert env_admin.status_code == 400  # its links could never be revoked: a stored key mints
    created = client.post(
        "/v1/admin/keys",
        headers=ADMIN,
        json={"account_id": None, "scopes": ["viewer", "read"], "name": "p"},
    )
    platform = {"Authorization": f"Bearer {created.json()['key']}"}  # fmt: skip
    unnamed = client.post("/v1/viewer-sessions", json={"viewer": JANE}, headers=platform)
    assert unnamed.status_code == 400 and unnamed.json()["error"]["field"] == "account_id"
    named = _mint(client, platform, account_id=seeded.account)
    assert named.status_code == 201 and named.json()["account_id"] == seeded.account
    minted = _mint(client, host)
    assert minted.status_code == 201, minted.text
    link = minted.json()
    assert re.search(rf"{PAGE}/view/[A-Za-z0-9_-]{{43}}$", link["url"])
    assert link["scopes"] == ["read"] and link["session_expires_in_s"] == 900
    assert minted.headers["cache-control"] == "no-store"


def test_a_link_opens_once_for_its_person_and_their_export_is_theirs(
    client: TestClient, web: TestClient, es: Elasticsearch, settings: Settings, seeded: Seeded
) -> None:
    host = _minting_key(client, seeded.account, ["viewer", "read", "export"])
    link = _mint(client, host, scopes=["read", "export"], expires_in_s=600).json()
    assert web.get(_path(link["url"])).status_code == 200  # a preview spends nothing
    for forged in ({}, {"Origin": "null"}, {"Origin": "https://evil.test"}):  # no session
        assert web.post(_path(link["url"]), headers=forged).status_code == 403
    opened = _open(web, link["url"])
    assert opened.status_code == 303 and opened.headers["location"] == PAGE
    cookie = opened.headers["set-cookie"]
    assert "auditlog_viewer=" in cookie and "HttpOnly" in cookie
    assert re.search(r"auditlog_viewer=[^;]+; HttpOnly; Max-Age=59\d", cookie)  # the session
    assert "alk_" not in cookie  # the key never reaches the browser
    page = web.get(PAGE)
    assert page.status_code == 200 and "Jane Doe" in page.text
    assert "rival-run" not in page.text  # the other account's entry
    csrf = re.search(r'name="csrf" value="([0-9a-f]{32})"', page.text)
    assert csrf is not None  # a viewer session's forms carry its token
    refused = web.post(f"{PAGE}/export", data={"format": "csv"})
    assert refused.status_code == 403 and "reload the page" in refused.text
    export = web.post(f"{PAGE}/export", data={"format": "csv", "csrf": csrf.group(1)})
    assert export.status_code == 200
    refresh(es, settings.index_prefix)
    found = client.get(
        "/v1/entries",
        headers={"Authorization": f"Bearer {seeded.key}"},
        params={"action": "export.completed", "range": "all", "size": 200},
    )
    [entry] = [e for e in found.json()["entries"]
               if e["metadata"].get("export_id") == export.headers["x-export-id"]]  # fmt: skip
    assert entry["actor"] == {"type": "user", **JANE}
    assert entry["metadata"]["minted_by_key"] == host["Authorization"].split("_")[1]
    web.cookies.clear()
    again = web.post(_path(link["url"]), follow_redirects=False, headers=SAME_ORIGIN)
    assert again.status_code == 410 and "already used" in again.text


def test_an_expired_link_and_a_revoked_key_are_refused(
    client: TestClient, web: TestClient, es: Elasticsearch, settings: Settings, seeded: Seeded
) -> None:
    host = _minting_key(client, seeded.account, ["viewer", "read"])
    link = _mint(client, host).json()
    token = link["url"].rsplit("/", 1)[1]
    state = IndexNames(settings.index_prefix).state
    doc_id = f"viewer-link:{hashlib.sha256(token.encode()).hexdigest()}"
    es.update(index=state, id=doc_id, doc={"expires_at": "2020-01-01T00:00:00.000Z"})
    expired = web.get(_path(link["url"]))
    assert expired.status_code == 410 and "expired" in expired.text
    assert (
        web.post(_path(link["url"]), follow_redirects=False, headers=SAME_ORIGIN).status_code == 410
    )
    assert web.get(f"{PAGE}/view/{'x' * 43}").status_code == 404
    fresh = _mint(client, host).json()
    assert _open(web, fresh["url"]).status_code == 303
    assert "Jane Doe" in web.get(PAGE).text
    key_id = host["Authorization"].split("_")[1]
    assert client.delete(f"/v1/admin/keys/{key_id}", headers=ADMIN).status_code == 204
    deadline = time.monotonic() + 10  # other instances within the key cache time
    while "Your session has ended" not in (page := web.get(PAGE)).text:
        assert time.monotonic() < deadline, page.text
        time.sleep(0.5)
    assert page.status_code == 401


def test_access_logs_never_carry_a_link_token() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "GET",
                               f"{PAGE}/view/{'a' * 43}?x=1", "1.1", 200), None)  # fmt: skip
    assert RedactLinkTokens().filter(record)
    assert record.getMessage() == f'127.0.0.1:5 - "GET {PAGE}/view/[token]?x=1 HTTP/1.1" 200'


@pytest.mark.fleet
def test_two_instances_and_two_clicks_open_one_session(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    account_id, _ = new_account(client)
    host = _minting_key(client, account_id, ["viewer", "read"])
    env = {"AUDITLOG_ES_URL": str(settings.es_url), "AUDITLOG_INDEX_PREFIX": settings.index_prefix,
           "AUDITLOG_ADMIN_KEY": str(settings.admin_key),
           "AUDITLOG_KEYS_DIR": str(settings.keys_dir)}  # fmt: skip
    with served(env, tmp_path) as one, served(env, tmp_path) as two:
        for _ in range(3):
            link = _mint(client, host).json()
            path = _path(link["url"])

            def click(base: str, path: str = path) -> int:
                origin = {"Origin": base}
                return httpx.post(f"{base}{path}", headers=origin, follow_redirects=False,
                                  timeout=30).status_code  # fmt: skip

            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                codes = sorted(pool.map(click, [one.url, two.url]))
            assert codes == [303, 410]


@pytest.mark.browser
def test_in_chromium_a_person_opens_the_link_and_exports(
    browser: Any, server_url: str, client: TestClient, es: Elasticsearch, settings: Settings,
    seeded: Seeded,
) -> None:  # fmt: skip
    host = _minting_key(client, seeded.account, ["viewer", "read", "export"])
    link = _mint(client, host, scopes=["read", "export"]).json()
    url = server_url + _path(link["url"])
    visit = Visit(browser, server_url, color_scheme="dark")  # the host's preference, followed
    try:
        visit.page.goto(url)
        with visit.page.expect_navigation():
            visit.page.click("#continue")
        assert visit.page.url == f"{server_url}{PAGE}"
        assert "Jane Doe" in visit.page.inner_text(".top-bar")
        background = visit.page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 22, 31)"  # the dark palette
        assert "rival-run" not in visit.row_ids()
        download = visit.export("csv")
        path = Path(download.path())
        assert csv_ids(path)
        refresh(es, settings.index_prefix)
        found = client.get("/v1/entries", headers={"Authorization": f"Bearer {seeded.key}"},
                           params={"action": "export.completed", "range": "all",
                                   "actor": JANE["id"]})  # fmt: skip
        assert found.json()["total"] >= 1
        assert found.json()["entries"][0]["actor"]["name"] == "Jane Doe"
        reused = visit.page.goto(url)  # the same link again: refused, with a clear page
        assert reused is not None and reused.status == 410
        assert "already used" in visit.page.content()
        late = _mint(client, host).json()
        token = late["url"].rsplit("/", 1)[1]
        es.update(index=IndexNames(settings.index_prefix).state,
                  id=f"viewer-link:{hashlib.sha256(token.encode()).hexdigest()}",
                  doc={"expires_at": "2020-01-01T00:00:00.000Z"})  # fmt: skip
        expired = visit.page.goto(server_url + _path(late["url"]))
        assert expired is not None and expired.status == 410
        assert "This link has expired" in visit.page.inner_text("main")
        assert visit.unexpected_errors(allow_error_status=True) == []
    finally:
        visit.close()


@pytest.fixture(scope="module")
def embedding(settings: Settings, client: TestClient) -> Iterator[tuple[str, str]]:
    """The service on ``http://localhost:<port>``, allowing frames from a host application on
    ``http://127.0.0.1:<port>`` — another site — which serves a page framing ``?src=``."""
    host_port, service_port = _free_port(), _free_port()
    host = f"http://127.0.0.1:{host_port}"
    framed = replace(settings, frame_ancestors=(host,))
    config = uvicorn.Config(create_app(framed), host="127.0.0.1", port=service_port,
                            log_level="warning", lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="embedded-page", daemon=True).start()

    class HostApp(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            src = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("src", [""])
            body = (f'<!doctype html><title>Acme settings</title><h1>Acme</h1>'
                    f'<iframe id="audit" src="{html.escape(src[0])}" width="1200" '
                    'height="800"></iframe>').encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    app = http.server.ThreadingHTTPServer(("127.0.0.1", host_port), HostApp)
    threading.Thread(target=app.serve_forever, name="host-app", daemon=True).start()
    service = f"http://localhost:{service_port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{service_port}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the embeddable service did not get ready"
        time.sleep(0.2)
    yield host, service
    app.shutdown()
    server.should_exit = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.browser
def test_in_chromium_the_page_works_inside_another_sites_frame(
    browser: Any, embedding: tuple[str, str], client: TestClient, seeded: Seeded
) -> None:
    host, service = embedding
    direct = service.replace("localhost", "127.0.0.1")
    page_headers = httpx.get(f"{direct}{PAGE}").headers
    assert "x-frame-options" not in page_headers
    assert f"frame-ancestors {host};" in page_headers["content-security-policy"]
    minting = _minting_key(client, seeded.account, ["viewer", "read", "export"])
    opened = httpx.post(direct + _path(_mint(client, minting).json()["url"]),
                        headers={"Origin": direct})  # fmt: skip
    assert opened.status_code == 303
    [viewer_cookie] = [c for c in opened.headers.get_list("set-cookie")
                       if c.startswith("auditlog_viewer=")]  # fmt: skip
    assert re.fullmatch(r"auditlog_viewer=[A-Za-z0-9_-]{43}; HttpOnly; Max-Age=\d+; "
                        rf"Path={PAGE}; SameSite=None; Secure; Partitioned",
                        viewer_cookie)  # fmt: skip
    link = _mint(client, minting, scopes=["read", "export"]).json()
    src = service + _path(link["url"])
    visit = Visit(browser, host)
    try:
        visit.page.goto(f"{host}/?src={urllib.parse.quote(src, safe='')}")
        frame = visit.page.frame_locator("#audit")
        frame.locator("#continue").click()
        frame.locator(".viewer-name").wait_for()
        assert frame.locator(".viewer-name").inner_text() == "Jane Doe"
        with visit.page.expect_download() as download:
            frame.locator("#export-button").click()
        assert csv_ids(Path(download.value.path()))
        assert visit.unexpected_errors(allow_error_status=True) == []
    finally:
        visit.close()


def test_an_account_with_view_audit_records_each_view_by_its_person(
    client: TestClient, web: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account_id, headers = new_account(client)
    setting = f"/v1/admin/accounts/{account_id}"
    bad = client.patch(setting, json={"view_audit": "yes"}, headers=ADMIN)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "view_audit"
    host = _minting_key(client, account_id, ["viewer", "read"])
    assert _open(web, _mint(client, host).json()["url"]).status_code == 303
    assert web.get(PAGE).status_code == 200  # not asked for: not recorded
    changed = client.patch(setting, json={"view_audit": True}, headers=ADMIN)
    assert changed.status_code == 200 and changed.json()["view_audit"] is True
    time.sleep(settings.key_cache_s + 0.5)  # other instances see it within the cache time
    web.cookies.clear()
    assert _open(web, _mint(client, host).json()["url"]).status_code == 303
    assert web.get(PAGE, params={"category": "webhook"}).status_code == 200
    refresh(es, settings.index_prefix)
    found = client.get("/v1/entries", headers=headers,
                       params={"action": "audit_log.viewed", "range": "all"}).json()  # fmt: skip
    [viewed] = found["entries"]
    assert viewed["actor"] == {"type": "user", **JANE}
    assert viewed["metadata"]["minted_by_key"] == host["Authorization"].split("_")[1]
    assert "webhook" in json.dumps(viewed["metadata"]["filters"])
