"""A person at the page: one browser context, its console errors and every URL it requested."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

PAGE = "/settings/audit-logs"
# What Chromium logs for a document that was answered with an error status on purpose.
EXPECTED_STATUS_LOG = re.compile(r"Failed to load resource: .* status of 4\d\d")


class Visit:
    def __init__(
        self, browser: Any, base_url: str, width: int = 1280, color_scheme: str = "light",
        height: int = 900, has_touch: bool = False,
    ) -> None:  # fmt: skip
        self.base_url = base_url
        self.context = browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True, base_url=base_url,
            has_touch=has_touch,
            color_scheme=color_scheme,
        )  # fmt: skip
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.errors: list[str] = []
        self.urls: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.urls.append(r.url))

    def open(self, query: str = "") -> Any:
        return self.page.goto(f"{PAGE}?{query}" if query else PAGE)

    def sign_in(self, key: str, query: str = "") -> Any:
        self.open(query)
        self.page.fill("#key", key)
        with self.page.expect_navigation() as navigation:
            self.page.click("button:has-text('Sign in')")
        return navigation.value

    def submit_filters(self) -> Any:
        with self.page.expect_navigation() as navigation:
            self.page.click(".filter-form button[type=submit]")
        return navigation.value

    def click_chip(self, facet: str, label: str) -> None:
        with self.page.expect_navigation():
            self.chip(facet, label).click()

    def chip(self, facet: str, label: str) -> Any:
        return self.page.locator(f".facet-{facet} a.chip").filter(
            has_text=re.compile(rf"^\s*{re.escape(label)}\b")
        )

    def chip_count(self, facet: str, label: str) -> int:
        return int(self.chip(facet, label).locator(".count").inner_text().replace(",", ""))

    def row_ids(self) -> list[str]:
        ids: list[str] = self.page.eval_on_selector_all(
            "#entry-rows tr.entry", "rows => rows.map(r => r.dataset.id)"
        )
        return ids

    def row_categories(self) -> set[str]:
        found: list[str] = self.page.eval_on_selector_all(
            "#entry-rows tr.entry", "rows => rows.map(r => r.dataset.category)"
        )
        return set(found)

    def total(self) -> int:
        text = self.page.inner_text("#results-title")
        return int(text.split()[0].replace(",", "").rstrip("+"))

    def export(self, fmt: str, as_job: bool = False) -> Any:
        self.page.select_option("#export-format", fmt)
        if as_job:
            self.page.check("#export-job")
            with self.page.expect_navigation():
                self.page.click("#export-button")
            return None
        with self.page.expect_download() as download:
            self.page.click("#export-button")
        return download.value

    def unexpected_errors(self, allow_error_status: bool = False) -> list[str]:
        if not allow_error_status:
            return self.errors
        return [e for e in self.errors if not EXPECTED_STATUS_LOG.search(e)]

    def close(self) -> None:
        self.context.close()


def csv_ids(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [row["id"] for row in csv.DictReader(f)]


def xlsx_ids(path: Path) -> list[str]:
    book = load_workbook(io.BytesIO(path.read_bytes()), read_only=True)
    sheets = [name for name in book.sheetnames if name != "Export info"]
    ids: list[str] = []
    for name in sheets:
        rows = book[name].iter_rows(values_only=True)
        header = list(next(rows))
        column = header.index("id")
        ids += [str(row[column]) for row in rows]
    return ids
