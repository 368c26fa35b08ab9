"""What the page's URL says: the filters of the view, and their translation into API parameters.

The page's query string is the bookmarkable state of a view: ``q``, ``category``, ``type`` and
``actor`` (repeatable), ``range`` (a preset) or ``start``/``end`` (a custom range of whole days
in the account's timezone, both **inclusive**, as people read a date picker), and ``cursor`` for
older entries. :meth:`PageView.filter_params` turns it into the filter parameters of
``/v1/entries`` (``to`` exclusive: the day after ``end``), so the page and the API share one
parser, one query builder and one cursor format.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from urllib.parse import urlencode

from service.errors import bad_request
from service.page.html import BASE_PATH
from service.search.filters import DEFAULT_RANGE
from service.search.search_text import LATEST

PAGE_PRESETS: dict[str, str] = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "all": "All time",
}


@dataclass(frozen=True)
class PageView:
    q: str = ""
    categories: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    actors: tuple[str, ...] = ()
    range: str = DEFAULT_RANGE
    start: str = ""
    end: str = ""
    cursor: str = ""

    @property
    def custom(self) -> bool:
        """A custom range (``start``/``end``) overrides the preset."""
        return bool(self.start or self.end)

    def filter_params(self) -> dict[str, list[str]]:
        """The API filter parameters of this view (no cursor)."""
        params: dict[str, list[str]] = {}
        if self.q.strip():
            params["q"] = [self.q]
        for name, values in (
            ("category", self.categories),
            ("type", self.types),
            ("actor", self.actors),
        ):
            if values:
                params[name] = list(values)
        if self.custom:
            if self.start:
                params["from"] = [_day(self.start, "start").isoformat()]
            if self.end:
                params["to"] = [_day_after(_day(self.end, "end"))]
            if self.start and self.end and self.start > self.end:
                raise bad_request("The start date is after the end date.", field="start")
        else:
            params["range"] = [self.range]
        return params

    def pairs(self, with_cursor: bool = False) -> list[tuple[str, str]]:
        """The view as ordered query-string pairs, defaults left out."""
        out: list[tuple[str, str]] = [("q", self.q)] if self.q else []
        out += [("category", v) for v in self.categories]
        out += [("type", v) for v in self.types]
        out += [("actor", v) for v in self.actors]
        if self.custom:
            out += [(k, v) for k, v in (("start", self.start), ("end", self.end)) if v]
        elif self.range != DEFAULT_RANGE:
            out.append(("range", self.range))
        if with_cursor and self.cursor:
            out.append(("cursor", self.cursor))
        return out

    def url(self, with_cursor: bool = False) -> str:
        query = urlencode(self.pairs(with_cursor))
        return f"{BASE_PATH}?{query}" if query else BASE_PATH

    def selected(self, facet: str) -> tuple[str, ...]:
        return {"category": self.categories, "type": self.types, "actor": self.actors}[facet]

    def with_values(self, facet: str, values: tuple[str, ...]) -> PageView:
        """The first page of this view with ``values`` selected in ``facet``."""
        if facet == "category":
            return replace(self, categories=values, cursor="")
        if facet == "type":
            return replace(self, types=values, cursor="")
        return replace(self, actors=values, cursor="")

    def toggled(self, facet: str, value: str) -> PageView:
        """The first page of this view with ``value`` of ``facet`` switched on or off."""
        current = self.selected(facet)
        values = tuple(v for v in current if v != value) if value in current else (*current, value)
        return self.with_values(facet, values)

    def cleared(self, facet: str) -> PageView:
        return self.with_values(facet, ())

    def with_range(self, preset: str) -> PageView:
        return replace(self, range=preset, start="", end="", cursor="")

    def first_page(self) -> PageView:
        return replace(self, cursor="")


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as e:
        raise bad_request(f"The {name} date must be a date such as 2026-11-01.", field=name) from e


def _day_after(day: date) -> str:
    """The exclusive end of a range ending on ``day``; a 400 naming ``end`` past the last day a
    view can end on."""
    if day >= LATEST.date():
        raise bad_request(f"The end date must be before {LATEST.date()}.", field="end")
    return (day + timedelta(days=1)).isoformat()


def _values(items: Iterable[tuple[str, str]], name: str) -> tuple[str, ...]:
    found: list[str] = []
    for key, value in items:
        if key == name:
            found += [v.strip() for v in value.split(",") if v.strip()]
    return tuple(dict.fromkeys(found))


def _last(items: list[tuple[str, str]], name: str, default: str = "") -> str:
    values = [v for k, v in items if k == name]
    return values[-1].strip() if values else default


def parse_page_view(items: Iterable[tuple[str, str]]) -> PageView:
    """A view from query-string (or form) pairs; unknown names are ignored."""
    pairs = list(items)
    return PageView(
        q=_last(pairs, "q"),
        categories=_values(pairs, "category"),
        types=_values(pairs, "type"),
        actors=_values(pairs, "actor"),
        range=_last(pairs, "range", DEFAULT_RANGE) or DEFAULT_RANGE,
        start=_last(pairs, "start"),
        end=_last(pairs, "end"),
        cursor=_last(pairs, "cursor"),
    )
