"""The page over HTTP without a browser: sign-in rules, headers, escaping, errors, job ownership."""

from __future__ import annotations

import re
import time

import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.page import exports
from service.page.html import CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from tests.helpers import ADMIN, ADMIN_KEY, wait_ready
from tests.page.browsing import PAGE
from tests.page.conftest import Seeded


def sign_in(web: TestClient, key: str, next_url: str = PAGE) -> None:
    resp = web.post(f"{PAGE}/sign-in", data={"key": key, "next": next_url}, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == next_url


def assert_secured(headers: dict[str, str] | object) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value, name  # type: ignore[index]


def test_root_redirects_to_the_page(web: TestClient) -> None:
    resp = web.get("/", follow_redirects=False)
    assert resp.status_code in (302, 307)
    assert resp.headers["location"] == PAGE


def test_signed_out_visitors_get_the_sign_in_form(web: TestClient) -> None:
    resp = web.get(f"{PAGE}?category=webhook")
    assert resp.status_code == 200
    assert_secured(resp.headers)
    assert resp.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert 'name="key" type="password"' in resp.text
    assert 'value="/settings/audit-logs?category=webhook"' in resp.text  # back there after
    assert "<script>" not in resp.text and " style=" not in resp.text  # nothing inline


def test_static_files_are_served_with_the_headers(web: TestClient) -> None:
    css = web.get(f"{PAGE}/static/page.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert_secured(css.headers)
    js = web.get(f"{PAGE}/static/page.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert web.get(f"{PAGE}/static/..%2Fhtml.py").status_code == 404
    assert web.get(f"{PAGE}/static/html.py").status_code == 404


def test_sign_in_cookie_attributes(web: TestClient, seeded: Seeded) -> None:
    resp = web.post(f"{PAGE}/sign-in", data={"key": seeded.key}, follow_redirects=False)
    assert resp.status_code == 303
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith(f"auditlog_key={seeded.key};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert f"Path={PAGE}" in cookie and "Secure" not in cookie
    assert seeded.key not in resp.headers["location"]


def test_cookie_is_secure_over_https(settings: Settings, seeded: Seeded) -> None:
    with TestClient(create_app(settings), base_url="https://testserver") as secure:
        wait_ready(secure)
        resp = secure.post(f"{PAGE}/sign-in", data={"key": seeded.key}, follow_redirects=False)
    assert resp.status_code == 303
    assert "Secure" in resp.headers["set-cookie"]


def test_next_never_leaves_the_page(web: TestClient, seeded: Seeded) -> None:
    for target in ("https://evil.test/", "//evil.test", "/v1/entries", f"{PAGE}evil"):
        resp = web.post(f"{PAGE}/sign-in", data={"key": seeded.key, "next": target},
                        follow_redirects=False)  # fmt: skip
        assert resp.headers["location"] == PAGE, target


@pytest.mark.parametrize(
    ("which", "status", "message"),
    [
        ("platform", 403, "This is a platform key"),
        ("unknown", 401, "unknown or has been revoked"),
        ("empty", 401, "Enter an account key"),
    ],
)
def test_refused_keys(web: TestClient, which: str, status: int, message: str) -> None:
    key = {"platform": ADMIN_KEY, "unknown": "alk_0123456789abcdef_" + "y" * 43, "empty": ""}
    resp = web.post(f"{PAGE}/sign-in", data={"key": key[which]}, follow_redirects=False)
    assert resp.status_code == status
    assert message in resp.text
    assert 'name="key"' in resp.text
    assert resp.headers.get("set-cookie", 'auditlog_key=""').startswith('auditlog_key=""')


def test_a_key_without_read_is_refused(web: TestClient, seeded: Seeded) -> None:
    resp = web.post("/v1/admin/keys", json={"account_id": seeded.account, "scopes": ["ingest"],
                                            "name": "writer"}, headers=ADMIN)  # fmt: skip
    writer = resp.json()["key"]
    refused = web.post(f"{PAGE}/sign-in", data={"key": writer})
    assert refused.status_code == 403
    assert "lacks the read scope" in refused.text


def test_a_revoked_key_signs_the_visitor_out(web: TestClient, seeded: Seeded) -> None:
    created = web.post("/v1/admin/keys", json={"account_id": seeded.account,
                                               "scopes": ["read"], "name": "soon revoked"},
                       headers=ADMIN).json()  # fmt: skip
    sign_in(web, created["key"])
    assert web.get(PAGE).status_code == 200
    assert web.delete(f"/v1/admin/keys/{created['id']}", headers=ADMIN).status_code == 204
    resp = web.get(PAGE)
    assert resp.status_code == 401
    assert "unknown or has been revoked" in resp.text
    assert 'auditlog_key=""' in resp.headers["set-cookie"]  # the bad cookie is dropped


def test_forms_posted_from_elsewhere_are_refused(web: TestClient, seeded: Seeded) -> None:
    foreign = {"Origin": "https://evil.test"}
    resp = web.post(f"{PAGE}/sign-in", data={"key": seeded.key}, headers=foreign,
                    follow_redirects=False)  # fmt: skip
    assert resp.status_code == 403 and "set-cookie" not in resp.headers
    sign_in(web, seeded.key)
    export = web.post(f"{PAGE}/export", data={"format": "csv"}, headers=foreign)
    assert export.status_code == 403
    out = web.post(f"{PAGE}/sign-out", headers=foreign, follow_redirects=False)
    assert "set-cookie" not in out.headers


def test_entries_are_escaped(web: TestClient, seeded: Seeded) -> None:
    sign_in(web, seeded.key)
    resp = web.get(PAGE, params={"q": "Renamed"})
    assert resp.status_code == 200
    assert "<script>alert(1)</script>" not in resp.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in resp.text
    assert "<b>Doe</b>" not in resp.text and "Jane &lt;b&gt;Doe&lt;/b&gt;" in resp.text
    assert "<img src=x" not in resp.text
    reflected = web.get(PAGE, params={"q": '"><script>x</script>'})
    assert "<script>x" not in reflected.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "colour:blue"}, "unknown qualifier &#x27;colour&#x27;"),
        ({"q": "type:fatal"}, "invalid value &#x27;fatal&#x27; for qualifier"),
        ({"range": "5d"}, "range must be one of"),
        ({"start": "2026-13-45"}, "The start date must be a date"),
        ({"start": "2026-03-02", "end": "2026-03-01"}, "start date is after the end date"),
        ({"category": "nope"}, "category &#x27;nope&#x27; is not one of"),
    ],
)
def test_bad_input_is_a_400_page(
    web: TestClient, seeded: Seeded, params: dict[str, str], message: str
) -> None:
    sign_in(web, seeded.key)
    resp = web.get(PAGE, params=params)
    assert resp.status_code == 400, resp.text[:300]
    assert resp.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in resp.text and message in resp.text
    assert_secured(resp.headers)


def test_a_cursor_that_cannot_be_used_shows_the_newest_entries_with_a_note(
    web: TestClient, seeded: Seeded
) -> None:
    sign_in(web, seeded.key)
    first = web.get(PAGE).text
    cursor = re.search(r'href="[^"]*cursor=([^"&]+)', first)
    assert cursor is not None
    newest = web.get(f"{PAGE}?category=webhook").text
    for stale in (cursor.group(1), "forged"):  # another view's, and a made-up one
        other_view = web.get(f"{PAGE}?category=webhook&cursor={stale}")
        assert other_view.status_code == 200
        assert "cannot be shown again" in other_view.text and 'role="status"' in other_view.text
        assert _row_ids(other_view.text) == _row_ids(newest)  # the view's first page


def test_read_only_key_sees_the_page_but_cannot_export(web: TestClient, seeded: Seeded) -> None:
    sign_in(web, seeded.read_only_key)
    page = web.get(PAGE)
    assert page.status_code == 200
    assert "lacks the export scope" in page.text and 'id="export-button"' not in page.text
    assert web.post(f"{PAGE}/export", data={"format": "csv"}).status_code == 403


def test_export_needs_a_signed_in_visitor(web: TestClient) -> None:
    resp = web.post(f"{PAGE}/export", data={"format": "csv"})
    assert resp.status_code == 401
    assert 'name="key"' in resp.text
    assert web.get(f"{PAGE}/exports/exp_nothing").status_code == 401


def test_large_views_are_exported_as_a_job(
    web: TestClient, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(web, seeded.key)
    monkeypatch.setattr(exports, "JOB_THRESHOLD", 5)
    page = web.get(PAGE, params={"category": "signal"})
    assert "the export runs as a job" in page.text
    resp = web.post(f"{PAGE}/export", data={"format": "xlsx", "category": "signal"},
                    follow_redirects=False)  # fmt: skip
    assert resp.status_code == 303
    job_url = resp.headers["location"].split("?", 1)[0]  # the rest: the view to go back to
    assert job_url.startswith(f"{PAGE}/exports/exp_")
    deadline = time.monotonic() + 30
    while 'id="job-download"' not in (job_page := web.get(job_url)).text:
        assert time.monotonic() < deadline, job_page.text
        assert '<meta http-equiv="refresh" content="2">' in job_page.text
        time.sleep(0.3)
    download = web.get(f"{job_url}/download")
    assert download.status_code == 200
    assert download.headers["content-disposition"].endswith('.xlsx"')
    assert download.content[:2] == b"PK"
    # Another account's visitor cannot see the job nor download its file.
    web.cookies.clear()
    sign_in(web, seeded.other_key)
    assert web.get(job_url).status_code == 404
    assert web.get(f"{job_url}/download").status_code == 404


def test_a_page_export_offers_its_signed_manifest(web: TestClient, seeded: Seeded) -> None:
    """The export form carries the id its export will have; the manifest is at the page's
    address for it once the download is done, and is the account's only."""
    sign_in(web, seeded.key)
    page = web.get(PAGE, params={"category": "signal"})
    found = re.search(r'name="export_id" value="(exp_[0-9a-f]{24})"', page.text)
    assert found is not None
    export_id = found.group(1)
    assert f'href="{PAGE}/exports/{export_id}/manifest"' in page.text
    resp = web.post(f"{PAGE}/export", data={"format": "csv", "category": "signal",
                                            "export_id": export_id})  # fmt: skip
    assert resp.status_code == 200 and resp.headers["x-export-id"] == export_id
    deadline = time.monotonic() + 60
    while (manifest := web.get(f"{PAGE}/exports/{export_id}/manifest")).status_code == 202:
        assert time.monotonic() < deadline
        assert '<meta http-equiv="refresh"' in manifest.text
        time.sleep(0.3)
    assert manifest.status_code == 200, manifest.text
    assert manifest.headers["content-disposition"].endswith('.csv.manifest.json"')
    assert manifest.json()["export_id"] == export_id
    assert manifest.json()["rows"] == len(resp.text.splitlines()) - 1
    again = web.post(f"{PAGE}/export", data={"format": "csv", "category": "signal",
                                             "export_id": export_id})  # fmt: skip
    assert again.headers["x-export-id"] != export_id  # an id is never given twice
    web.cookies.clear()
    sign_in(web, seeded.other_key)
    assert web.get(f"{PAGE}/exports/{export_id}/manifest").status_code == 404


def test_entry_details_say_which_checkpoint_sealed_them(web: TestClient, seeded: Seeded) -> None:
    sign_in(web, seeded.key)
    deadline = time.monotonic() + 30
    while "Sealing…" in (page := web.get(PAGE, params={"range": "all"})).text:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    sealed = re.findall(r"Sealed at checkpoint ([\d,]+)", page.text)
    assert len(sealed) == page.text.count('<tr class="entry ') and sealed


def _row_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="entry[^"]*" data-id="([^"]+)"', html)
