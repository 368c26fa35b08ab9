"""Query building, with the account filter at the lowest layer.

Every engine query about entries is built by :class:`EntryQuery`, whose constructor takes the
account: the ``account_id`` term is part of every query it produces, so no endpoint can forget it.
Facet selections (category, type, actor, provider) are kept apart so that search can put them in
``post_filter`` and count each facet with the others only (multi-select facets).
"""

from __future__ import annotations

import functools
from typing import Any

from service.search.filters import ViewFilters
from service.search.search_text import compile_search_text, format_instant

FACET_FIELDS = {
    "category": "category",
    "type": "type",
    "actor": "actor.id",
    "provider": "metadata.provider",
}


def _actions_clause(actions: tuple[str, ...]) -> dict[str, Any]:
    exact = [a for a in actions if not a.endswith("*")]
    clauses: list[dict[str, Any]] = [{"terms": {"action": exact}}] if exact else []
    clauses += [{"prefix": {"action": a.rstrip("*")}} for a in actions if a.endswith("*")]
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


class EntryQuery:
    """The engine query of one filtered view of one account."""

    def __init__(self, filters: ViewFilters) -> None:
        self.filters = filters

    def base_clauses(self) -> list[dict[str, Any]]:
        """Account, time window, actions and search text: what every count shares."""
        return list(self._base)

    @functools.cached_property
    def _base(self) -> list[dict[str, Any]]:
        f = self.filters
        window: dict[str, str] = {"lt": format_instant(f.window.end)}
        if f.window.start is not None:
            window["gte"] = format_instant(f.window.start)
        clauses: list[dict[str, Any]] = [
            {"term": {"account_id": f.account_id}},
            {"range": {"timestamp": window}},
        ]
        if f.actions:
            clauses.append(_actions_clause(f.actions))
        text = compile_search_text(f.text, f.tz)
        if text != {"match_all": {}}:
            clauses.append(text)
        return clauses

    def facet_selections(self) -> dict[str, dict[str, Any]]:
        """Facet name → its filter clause, for the facets that have a selection."""
        f = self.filters
        selected = {
            "category": f.categories,
            "type": f.types,
            "actor": f.actors,
            "provider": f.providers,
        }
        return {
            name: {"terms": {FACET_FIELDS[name]: list(values)}}
            for name, values in selected.items()
            if values
        }

    def query(self) -> dict[str, Any]:
        """Base clauses only (the facet selections go to ``post_filter``)."""
        return {"bool": {"filter": self.base_clauses()}}

    def post_filter(self) -> dict[str, Any] | None:
        selections = list(self.facet_selections().values())
        return {"bool": {"filter": selections}} if selections else None

    def full_query(self) -> dict[str, Any]:
        """Everything applied: for histograms and exports, which have no facets."""
        return {"bool": {"filter": self.base_clauses() + list(self.facet_selections().values())}}

    def facet_filter(self, facet: str) -> dict[str, Any]:
        """The selections of every facet but ``facet``."""
        others = [c for name, c in self.facet_selections().items() if name != facet]
        return {"bool": {"filter": others}} if others else {"match_all": {}}
