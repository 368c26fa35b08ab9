"""The Audit Logs page in headless Chromium, against the real service and engine.

Expected rows and counts are computed here from the seeded entries (which groups a preset or a
custom range covers, which categories and types they have), not by the code under test. The
service writes ``audit`` entries of its own (key creation, exports), so comparisons of totals
leave the ``audit`` category out.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from service.page.html import CONTENT_SECURITY_POLICY
from tests.helpers import ADMIN_KEY, refresh
from tests.page.browsing import PAGE, Visit, csv_ids, xlsx_ids
from tests.page.conftest import GROUPS, NOW, POST_URN, SIGNAL, TZ, Seeded

pytestmark = pytest.mark.browser  # drives Debian's Chromium: not in `make test-fast`

SCREENSHOT_SIZES = ((1440, 1000), (390, 844))
"""A desktop and a phone (`make screenshots` writes these for reviewers)."""
PRESET_GROUPS = {"24h": ("day",), "7d": ("day", "week"), "30d": ("day", "week", "month"),
                 "90d": ("day", "week", "month", "quarter")}  # fmt: skip


def group_of(entry_id: str) -> str:
    prefix = entry_id.split("-", 1)[0]
    return prefix if prefix in GROUPS else "day"  # the realistic entries are hours old


def expected(seeded: Seeded, groups: tuple[str, ...], category: str) -> list[dict[str, Any]]:
    """Seeded entries of ``category`` in ``groups``, newest first (the page's order)."""
    chosen = [
        e for e in seeded.entries if group_of(e["id"]) in groups and e["category"] == category
    ]
    return sorted(chosen, key=lambda e: (e["timestamp"], e["id"]), reverse=True)


@pytest.fixture
def visit(browser: Any, server_url: str) -> Iterator[Visit]:
    person = Visit(browser, server_url)
    yield person
    person.close()


def test_sign_in_keeps_the_key_in_a_strict_http_only_cookie(visit: Visit, seeded: Seeded) -> None:
    first = visit.open()
    assert first.status == 200
    assert visit.page.is_visible("form[action$='/sign-in'] #key")
    landed = visit.sign_in(seeded.key, "category=webhook")
    assert landed.status == 200
    assert landed.url.endswith(f"{PAGE}?category=webhook")  # back to the view it asked for
    headers = landed.all_headers()
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    cookies = visit.context.cookies()
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == PAGE
    assert cookie["value"] == seeded.key
    assert visit.page.evaluate("document.cookie") == ""  # not readable by script
    assert visit.row_categories() == {"webhook"}
    assert TZ in visit.page.inner_text(".account-tz")
    with visit.page.expect_navigation():
        visit.page.click("button:has-text('Sign out')")
    assert visit.context.cookies() == []
    assert visit.page.is_visible("#key")
    assert all(seeded.key not in url for url in visit.urls)
    assert visit.errors == []


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        (ADMIN_KEY, 403, "This is a platform key"),
        ("alk_0123456789abcdef_" + "x" * 43, 401, "unknown or has been revoked"),
        ("not a key", 401, "unknown or has been revoked"),
    ],
)
def test_refused_keys_show_the_sign_in_form_with_the_reason(
    visit: Visit, seeded: Seeded, key: str, status: int, message: str
) -> None:
    answer = visit.sign_in(key)
    assert answer.status == status
    assert message in visit.page.inner_text(".alert")
    assert visit.page.is_visible("#key")
    assert visit.context.cookies() == []
    assert visit.unexpected_errors(allow_error_status=True) == []


def test_source_filter_changes_rows_and_counts(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key)
    webhooks = expected(seeded, PRESET_GROUPS["7d"], "webhook")
    all_before = visit.chip_count("category", "All")
    assert visit.chip_count("category", "Webhook") == len(webhooks)
    assert len(visit.row_categories()) > 1
    visit.click_chip("category", "Webhook")
    assert "category=webhook" in visit.page.url
    assert visit.row_categories() == {"webhook"}
    assert visit.total() == len(webhooks)
    assert visit.row_ids() == [e["id"] for e in webhooks]
    # Multi-select facets: the source counts ignore the source filter, the others follow it.
    assert visit.chip_count("category", "All") == all_before
    assert visit.chip_count("category", "Webhook") == len(webhooks)
    by_type = Counter(e["type"] for e in webhooks)
    for kind in ("notice", "warning", "error"):
        assert visit.chip_count("type", kind.capitalize()) == by_type[kind], kind
    assert visit.chip("category", "Webhook").get_attribute("aria-current") == "true"
    visit.click_chip("category", "All")
    assert "category" not in visit.page.url
    assert len(visit.row_categories()) > 1
    assert visit.errors == []


def test_search_finds_a_signal_and_a_row_shows_its_metadata(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key)
    visit.page.fill("#q", f'"{SIGNAL}"')
    answer = visit.submit_filters()
    assert answer.status == 200
    assert visit.row_ids() == ["real-credits", "real-signal-run"]
    assert visit.total() == 2
    assert visit.page.input_value("#q") == f'"{SIGNAL}"'
    row = visit.page.locator("tr[data-id='real-signal-run']")
    assert SIGNAL in row.locator("summary").inner_text()
    row.locator("summary").click()
    fields = visit.page.locator("tr.entry-expanded[data-for='real-signal-run'] dl.fields")
    fields.wait_for(state="visible", timeout=10_000)  # the page's script opens it after the click
    assert fields.is_visible()
    text = fields.inner_text()
    assert "Signal name" in text.replace("SIGNAL NAME", "Signal name")
    assert SIGNAL in text and POST_URN in text and "212" in text
    visit.page.fill("#q", "type:error webhook")
    visit.submit_filters()
    assert visit.row_ids() == ["real-webhook"]
    assert visit.errors == []


def test_presets_and_a_custom_range(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key, "category=signal")
    assert visit.total() == len(expected(seeded, PRESET_GROUPS["7d"], "signal"))
    for preset, label in (("24h", "Last 24 hours"), ("30d", "Last 30 days"),
                          ("90d", "Last 90 days")):  # fmt: skip
        with visit.page.expect_navigation():
            visit.page.locator(".facet-range a.chip", has_text=label).click()
        assert f"range={preset}" in visit.page.url and "category=signal" in visit.page.url
        rows = expected(seeded, PRESET_GROUPS[preset], "signal")
        assert visit.total() == len(rows), preset
        assert visit.row_ids() == [e["id"] for e in rows][:50], preset
    tz = ZoneInfo(TZ)
    start = (NOW - timedelta(days=26)).astimezone(tz).date()
    end = (NOW - timedelta(days=8)).astimezone(tz).date()
    visit.page.fill("#start", start.isoformat())
    visit.page.fill("#end", end.isoformat())
    visit.submit_filters()
    assert f"start={start.isoformat()}" in visit.page.url
    assert f"end={end.isoformat()}" in visit.page.url
    rows = expected(seeded, ("month",), "signal")
    assert visit.total() == len(rows)
    assert visit.row_ids() == [e["id"] for e in rows][:50]
    assert visit.chip("range", "Custom range").get_attribute("aria-current") == "true"
    assert TZ in visit.page.inner_text(".tz-note")
    assert visit.errors == []


def test_bad_search_text_is_a_400_with_the_message(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key)
    visit.page.fill("#q", "colour:blue")
    answer = visit.submit_filters()
    assert answer.status == 400
    assert "unknown qualifier 'colour'" in visit.page.inner_text(".alert")
    assert visit.page.input_value("#q") == "colour:blue"  # kept, to correct it
    visit.page.fill("#end", "2026-01-01")
    visit.page.fill("#start", "2026-02-01")
    visit.page.fill("#q", "")
    assert visit.submit_filters().status == 400
    assert "start date is after the end date" in visit.page.inner_text(".alert")
    assert visit.unexpected_errors(allow_error_status=True) == []


def test_load_more_appends_older_entries(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key)
    first = visit.row_ids()
    assert len(first) == 50
    visit.page.click("a[data-load-more]")
    visit.page.locator("#entry-rows tr.entry").nth(50).wait_for()
    both = visit.row_ids()
    assert both[:50] == first
    assert len(both) == len(set(both)) == min(100, visit.total())
    stamps = visit.page.eval_on_selector_all(
        "#entry-rows time", "ts => ts.map(t => new Date(t.getAttribute('datetime')).getTime())"
    )
    assert stamps == sorted(stamps, reverse=True)
    assert "cursor=" in visit.page.url  # the address is the last page loaded: shareable
    visit.page.reload()
    assert visit.row_ids() == both[50:100]  # a reload keeps the place
    assert visit.errors == []


def _export_recorded(client: TestClient, es: Elasticsearch, settings: Settings, key: str,
                     fmt: str, how: str) -> bool:  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        refresh(es, settings.index_prefix)
        resp = client.get(
            "/v1/entries",
            params={"action": "export.completed", "q": f'"{how}" "as {fmt.upper()}"'},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert resp.status_code == 200, resp.text
        if resp.json()["total"]:
            return True
        time.sleep(0.5)
    return False


def test_export_csv_and_xlsx_match_the_view(
    visit: Visit, seeded: Seeded, client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    visit.sign_in(seeded.key, "category=webhook&category=credits")
    shown = visit.row_ids()
    assert 0 < len(shown) < 50 and visit.page.locator("a[data-load-more]").count() == 0
    csv_file = visit.export("csv")
    assert csv_file.suggested_filename.endswith(".csv")
    assert csv_ids(Path(csv_file.path())) == shown
    xlsx_file = visit.export("xlsx")
    assert xlsx_file.suggested_filename.endswith(".xlsx")
    assert xlsx_ids(Path(xlsx_file.path())) == shown
    for fmt in ("csv", "xlsx"):
        assert _export_recorded(
            client, es, settings, seeded.key, fmt, "download from the Audit Logs page"
        ), fmt
    assert visit.errors == []


def test_export_job_shows_progress_and_downloads(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key, "q=-category:audit&range=30d")
    total = visit.total()
    first_page = visit.row_ids()
    visit.export("csv", as_job=True)
    assert f"{PAGE}/exports/exp_" in visit.page.url
    assert visit.page.inner_text("h1") == "Export of the audit log"
    link = visit.page.locator("#job-download")
    link.wait_for(timeout=60_000)  # the page refreshes itself until the file is ready
    assert f"{total:,} of {total:,} rows" in visit.page.inner_text(".rows")
    assert visit.page.locator("meta[http-equiv=refresh]").count() == 0
    with visit.page.expect_download() as download:
        link.click()
    ids = csv_ids(Path(download.value.path()))
    assert len(ids) == total
    assert ids[: len(first_page)] == first_page
    assert visit.errors == []


def test_another_account_sees_only_its_own_data(
    browser: Any, server_url: str, seeded: Seeded
) -> None:
    shared = f"q=%22{SIGNAL.replace(' ', '+')}%22"
    owner, other = Visit(browser, server_url), Visit(browser, server_url)
    try:
        owner.sign_in(seeded.key, shared)
        assert owner.row_ids() == ["real-credits", "real-signal-run"]
        other.sign_in(seeded.other_key, shared)
        assert other.row_ids() == ["rival-run"]
        assert "America/New_York" in other.page.inner_text(".account-tz")
        assert owner.errors == other.errors == []
    finally:
        owner.close()
        other.close()


def test_controls_are_labelled_and_keyboard_reachable(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key)
    unlabelled = visit.page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(el => el.labels.length === 0).map(el => el.name || el.id)"""
    )
    assert unlabelled == []
    visit.page.keyboard.press("Tab")
    assert visit.page.evaluate("document.activeElement.textContent") == "Skip to the entries"
    seen = set()
    for _ in range(40):
        visit.page.keyboard.press("Tab")
        seen.add(visit.page.evaluate("document.activeElement.id || document.activeElement.name"))
    assert {"q", "actor", "start", "end"} <= seen
    outline = visit.page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # a visible focus ring
    summary = visit.page.locator("#entry-rows summary").first
    summary.focus()
    visit.page.keyboard.press("Enter")
    assert visit.page.locator("#entry-rows details").first.get_attribute("open") is not None
    assert visit.errors == []


def test_screenshots_with_the_demo_data(
    browser: Any, server_url: str, demo_key: str, artifacts_dir: Path
) -> None:
    for width, height in SCREENSHOT_SIZES:
        person = Visit(browser, server_url, width=width, height=height)
        try:
            person.sign_in(demo_key)
            assert "Acme Corp" in person.page.inner_text(".account-name")
            assert person.total() > 50
            assert person.page.locator("svg.plot rect.bar").count() > 0
            overflow = person.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"horizontal scrolling at {width} px"
            top = artifacts_dir / f"audit-logs-{width}.png"
            person.page.screenshot(path=str(top))
            person.page.locator("#entry-rows summary").nth(1).click()
            full = artifacts_dir / f"audit-logs-{width}-full.png"
            person.page.screenshot(path=str(full), full_page=True)
            print(f"screenshots: {top} {full}")
            assert person.errors == []
        finally:
            person.close()
