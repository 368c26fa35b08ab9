"""The page's edges over HTTP: the actor picker, notes for retention and empty views, search
mistakes that keep the last good view, short paging links, the entry details' links and marks."""

from __future__ import annotations

import html
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import new_account, refresh
from tests.page.browsing import PAGE
from tests.page.conftest import Seeded
from tests.page.test_page_http import sign_in

NOW = datetime.now(UTC).replace(microsecond=0)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _rows(text: str) -> list[str]:
    return re.findall(r'<tr class="entry[^"]*" data-id="([^"]+)"', text)


def _checked_actors(text: str) -> list[str]:
    return re.findall(r'<input type="checkbox" name="actor" value="([^"]+)" checked>', text)


@pytest.fixture(scope="module")
def details(client: TestClient, es: Elasticsearch, settings: Settings) -> dict[str, Any]:
    """An account with entries whose metadata hold a big number, addresses and identifiers,
    and 120 entries to page through."""
    account, headers = new_account(client)
    actor = {"type": "user", "id": "u_ada", "name": "Ada Lovelace", "email": "ada@acme.test"}
    special = [
        {"id": "evt-links", "timestamp": _stamp(NOW - timedelta(minutes=1)), "category": "webhook",
         "type": "error", "actor": actor, "action": "webhook.delivery.failed",
         "message": "Delivery to the Webhook endpoint failed after 12480 bytes",
         "metadata": {"url": "https://hooks.acme.test/in?a=1", "webhook_id": "wh_8f3a21",
                      "bytes_sent": 12480, "status_code": 5020, "next": "javascript:alert(1)",
                      "record_id": "7400000000000000001"}},
    ]  # fmt: skip
    paged = [
        {"id": f"evt-{i:03d}", "timestamp": _stamp(NOW - timedelta(hours=1, minutes=i)),
         "category": "api", "type": "notice", "actor": actor, "action": "api.request",
         "message": f"GET /v1/things/{i}"}
        for i in range(120)
    ]  # fmt: skip
    resp = client.post("/v1/entries", json={"entries": special + paged}, headers=headers)
    assert resp.json()["created"] == 121, resp.text
    refresh(es, settings.index_prefix)
    return {"account": account, "key": headers["Authorization"].split(" ", 1)[1]}


def test_the_actor_picker_selects_several_by_name(web: TestClient, seeded: Seeded) -> None:
    sign_in(web, seeded.key)
    both = web.get(PAGE, params=[("actor", "u_7"), ("actor", "scheduler")])
    assert both.status_code == 200
    assert sorted(_checked_actors(both.text)) == ["scheduler", "u_7"]
    summary = re.search(r'<summary id="actor"[^>]*><span class="picker-value">([^<]+)<', both.text)
    assert summary is not None and html.unescape(summary.group(1)).endswith(" +1")
    # Jane has no webhook entries: still named, never her raw id, and marked as such
    alone = web.get(PAGE, params={"actor": "u_7", "category": "webhook"}).text
    item = re.search(r'value="u_7" checked> <span class="actor-name">([^<]*)</span> '
                     r'<span class="count">([^<]*)</span>', alone)  # fmt: skip
    assert item is not None
    assert html.unescape(item.group(1)) == "Jane <b>Doe</b>" and item.group(2) == "none here"


def test_integration_past_30_days_says_why_older_entries_are_missing(
    web: TestClient, seeded: Seeded
) -> None:
    sign_in(web, seeded.key)
    for range_, noted in (("90d", True), ("all", True), ("7d", False), ("30d", False)):
        text = web.get(PAGE, params={"category": "integration", "range": range_}).text
        assert ("are kept 30 days" in text) is noted, range_
    assert "are kept 30 days" not in web.get(PAGE, params={"range": "90d"}).text


def test_an_empty_view_offers_to_clear_the_filters_and_cannot_be_exported(
    web: TestClient, seeded: Seeded
) -> None:
    sign_in(web, seeded.key)
    text = web.get(PAGE, params={"q": "zzqqxx-nothing-matches"}).text
    assert re.search(r'class="empty-actions">No entries match\. <a class="button" '
                     rf'href="{PAGE}">Clear filters</a>', text)  # fmt: skip
    assert "Nothing to export." in text and 'id="export-button"' not in text


def test_a_search_mistake_keeps_the_last_good_view(web: TestClient, seeded: Seeded) -> None:
    sign_in(web, seeded.key)
    good = web.get(PAGE, params={"q": "webhook"})
    referer = f"http://testserver{PAGE}?q=webhook"
    bad = web.get(PAGE, params={"q": "colour:blue"}, headers={"Referer": referer})
    assert bad.status_code == 400
    assert _rows(bad.text) == _rows(good.text) and _rows(good.text)  # the last good rows
    assert 'class="chart' in bad.text  # and its chart
    at = bad.text.index('class="filter-form"')
    form = bad.text[at : bad.text.index("</form>", at)]
    assert "unknown qualifier" in form and 'id="view-error"' in form  # beside the box
    assert 'value="colour:blue"' in form  # as typed, to correct it
    # without a page to come back to, the view without the search is shown
    plain = web.get(PAGE, params={"q": "colour:blue", "category": "webhook"})
    assert plain.status_code == 400
    assert _rows(plain.text) == _rows(web.get(PAGE, params={"category": "webhook"}).text)


def test_older_entries_have_short_links_and_page_exactly(
    web: TestClient, details: dict[str, Any]
) -> None:
    sign_in(web, details["key"])
    href = f"{PAGE}?category=api"
    seen: list[str] = []
    for _ in range(3):
        text = web.get(href).text
        seen += _rows(text)
        found = re.search(r'href="([^"]+)"\s+rel="next"', text)
        if found is None:
            break
        href = html.unescape(found.group(1))
        assert len(href) < 400, href  # the view and a cursor, no point in time
        assert parse_qs(urlsplit(href).query)["category"] == ["api"]
    assert seen == [f"evt-{i:03d}" for i in range(120)]


def test_entry_details_link_format_and_narrow(web: TestClient, details: dict[str, Any]) -> None:
    sign_in(web, details["key"])
    text = web.get(PAGE, params={"q": "webhook"}).text
    row = text[text.index('data-id="evt-links"') :]
    row = row[: row.index("</tr>")]
    assert '<a href="https://hooks.acme.test/in?a=1" rel="noopener noreferrer nofollow"' in row
    assert "javascript:alert(1)" in row and 'href="javascript:' not in row
    assert "12,480" in row  # a quantity, grouped
    assert ">5020<" in row and "7400000000000000001" in row  # a code and an id, as they are
    assert 'data-copy="wh_8f3a21"' in row and 'data-copy="evt-links"' in row
    assert 'data-copy="u_ada"' in row
    narrows = [html.unescape(h) for h in re.findall(r'<a class="narrow" href="([^"]+)"', row)]
    queries = [parse_qs(urlsplit(h).query) for h in narrows]
    assert {"q": ["webhook"], "actor": ["u_ada"]} in queries
    assert {"q": ["webhook action:webhook.delivery.failed"]} in queries
    assert {"q": ['webhook "wh_8f3a21"']} in queries
    assert "<mark>Webhook</mark>" in row  # the search's word, marked in the message
    single = re.search(r'<p class="entry-link"><a href="([^"]+)">', row)
    assert single is not None
    alone = web.get(html.unescape(single.group(1)))
    assert alone.status_code == 200 and _rows(alone.text) == ["evt-links"]


def test_background_exports_are_listed_and_lead_back_to_their_view(
    web: TestClient, details: dict[str, Any]
) -> None:
    sign_in(web, details["key"])
    view = {"category": "api", "q": "things"}
    started = web.post(f"{PAGE}/export", data={"format": "csv", "as_job": "1", **view},
                       follow_redirects=False)  # fmt: skip
    assert started.status_code == 303
    job_url = started.headers["location"]
    job_id = urlsplit(job_url).path.rsplit("/", 1)[1]
    deadline = time.monotonic() + 60
    while 'id="job-download"' not in (job_page := web.get(job_url)).text:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    back = re.search(r'<p class="back"><a href="([^"]+)">', job_page.text)
    assert back is not None
    assert parse_qs(urlsplit(html.unescape(back.group(1))).query) == {
        "category": ["api"], "q": ["things"]}  # fmt: skip
    listed = web.get(PAGE).text
    row = re.search(rf'<tr data-job="{job_id}">(.*?)</tr>', listed)
    assert row is not None, "the job is not under Recent exports"
    cells = row.group(1)
    assert "Done" in cells and ">120<" in cells  # status and rows
    assert f'href="{PAGE}/exports/{job_id}/download"' in cells
    assert f'href="{PAGE}/exports/{job_id}/manifest"' in cells


def test_the_page_exports_csv_with_a_byte_order_mark_and_ndjson(
    web: TestClient, details: dict[str, Any]
) -> None:
    sign_in(web, details["key"])
    assert '<option value="ndjson">' in web.get(PAGE).text
    csv_file = web.post(f"{PAGE}/export", data={"format": "csv", "category": "api"})
    assert csv_file.content.startswith(b"\xef\xbb\xbfid,")  # Excel reads it as UTF-8
    resp = web.post(f"{PAGE}/export", data={"format": "ndjson", "category": "api"})
    assert resp.status_code == 200
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert sorted(e["id"] for e in lines) == [f"evt-{i:03d}" for i in range(120)]
