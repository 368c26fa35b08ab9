"""The page's edges in headless Chromium: typed filters kept by every control, the actor picker,
the chart's links and tips, entry details across the row, the filters folded on a phone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.page.browsing import Visit
from tests.page.conftest import Seeded

pytestmark = pytest.mark.browser  # drives Debian's Chromium: not in `make test-fast`


@pytest.fixture
def visit(browser: Any, server_url: str) -> Iterator[Visit]:
    person = Visit(browser, server_url)
    yield person
    person.close()


def _query(visit: Visit) -> dict[str, list[str]]:
    return parse_qs(urlsplit(visit.page.url).query)


def test_every_control_keeps_what_was_typed(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key)
    visit.page.fill("#q", "signal")  # typed, not applied
    visit.page.click("#actor")
    visit.page.check("input[name=actor][value=scheduler]")
    visit.click_chip("type", "Notice")
    assert _query(visit) == {"q": ["signal"], "actor": ["scheduler"], "type": ["notice"]}
    assert visit.row_ids() and set(visit.row_ids()) <= {
        e["id"] for e in seeded.entries
        if e["actor"]["id"] == "scheduler" and e["type"] == "notice"}  # fmt: skip
    visit.page.fill("#q", "credits")
    visit.click_chip("range", "Last 30 days")
    assert _query(visit) == {"q": ["credits"], "actor": ["scheduler"], "type": ["notice"],
                             "range": ["30d"]}  # fmt: skip
    assert visit.errors == []


def test_the_actor_picker_takes_several_people_by_name(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key)
    visit.page.click("#actor")
    names = visit.page.locator(".picker-list .actor-name").all_inner_texts()
    assert "Scheduler" in names and "Jane <b>Doe</b>" in names  # names, escaped
    visit.page.check("input[name=actor][value=scheduler]")
    visit.page.check("input[name=actor][value=u_7]")
    visit.submit_filters()
    assert sorted(_query(visit)["actor"]) == ["scheduler", "u_7"]
    assert visit.page.inner_text("#actor").strip() in ("Scheduler +1", "Jane <b>Doe</b> +1")
    assert {r for r in visit.row_ids()} <= {
        e["id"] for e in seeded.entries if e["actor"]["id"] in ("scheduler", "u_7")}  # fmt: skip
    assert visit.errors == []


def test_the_chart_narrows_to_a_bar_and_toggles_a_source(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key, "range=30d")
    bar = visit.page.locator("svg.plot a.bucket").filter(has=visit.page.locator("rect.bar")).last
    tip = bar.get_attribute("data-tip")
    bar.focus()  # reachable by keyboard, and says what it holds
    assert visit.page.inner_text(".chart-tip") == tip
    with visit.page.expect_navigation():
        visit.page.keyboard.press("Enter")
    query = _query(visit)
    assert query["start"] == query["end"]  # one day, the bar's
    assert tip is not None and visit.total() == int(tip.split(": ")[1].split()[0].replace(",", ""))
    legend = visit.page.locator(".legend a.legend-item").first
    label = legend.inner_text().split()[0]
    with visit.page.expect_navigation():
        legend.click()
    assert len(_query(visit)["category"]) == 1
    assert visit.page.locator(".legend a.is-selected").inner_text().startswith(label)
    assert visit.errors == []


def test_entry_details_span_the_row_and_copy_ids(visit: Visit, seeded: Seeded) -> None:
    visit.sign_in(seeded.key)
    visit.context.grant_permissions(["clipboard-read", "clipboard-write"])
    row = visit.page.locator("tr[data-id='real-webhook']")
    row.locator("summary").click()
    expanded = visit.page.locator("tr.entry-expanded[data-for='real-webhook']")
    table_width = visit.page.locator("table.entries").bounding_box()["width"]
    assert expanded.bounding_box()["width"] >= table_width * 0.95
    assert expanded.locator("a[href='https://hooks.acme.test/signals']").count() == 1
    expanded.locator("button.copy[data-copy='real-webhook']").click()
    # the page answers a click through events it handles in a later task: wait for the outcome
    expect(expanded.locator("button.copy[data-copy='real-webhook']")).to_have_text("Copied")
    row.locator("summary").click()  # closed: the details go back into the row
    expect(visit.page.locator("tr.entry-expanded")).to_have_count(0)
    assert visit.errors == []


def test_on_a_phone_the_filters_fold_behind_one_button(browser: Any, server_url: str,
                                                      seeded: Seeded) -> None:  # fmt: skip
    phone = Visit(browser, server_url, width=390)
    try:
        phone.sign_in(seeded.key, "type=error")
        toggle = phone.page.locator("button.filters-toggle")
        assert toggle.is_visible() and "1 set" in toggle.inner_text()
        assert not phone.page.locator("#q").is_visible()
        toggle.click()
        assert phone.page.locator("#q").is_visible()
        assert toggle.get_attribute("aria-expanded") == "true"
        for chip in phone.page.locator(".facet a.chip").all():  # none off-screen
            box = chip.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert phone.errors == []
    finally:
        phone.close()


def test_on_a_touch_screen_a_first_tap_on_a_bar_shows_its_tip(
    browser: Any, server_url: str, seeded: Seeded
) -> None:
    touch = Visit(browser, server_url, width=390, height=844, has_touch=True)
    try:
        touch.sign_in(seeded.key, "range=30d")
        before = touch.page.url
        bar = touch.page.locator("svg.plot a.bucket").filter(
            has=touch.page.locator("rect.bar")).last  # fmt: skip
        bar.tap()
        assert touch.page.inner_text(".chart-tip") == bar.get_attribute("data-tip")
        assert touch.page.url == before  # the first tap only told what the bar holds
        with touch.page.expect_navigation():
            bar.tap()
        assert "start=" in touch.page.url
        assert touch.errors == []
    finally:
        touch.close()
