"""Reading a whole filtered view page by page: point in time + ``search_after``.

Exports use this: the first page is fetched by the caller before a response starts (so a bad
filter is still a 4xx), the rest streams. Memory holds one page at a time.

Each page after the first also filters on the timestamp of the last entry read (inclusive, so
that ``search_after`` still orders ties by id): ``search_after`` alone makes the engine visit
every entry of the view again for every page, which made a million-row scan cost twice the
engine time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from service.errors import bad_request, engine_unavailable
from service.search.indices import IndexNames
from service.search.queries import EntryQuery

PAGE_SIZE = 2500
FIRST_PAGE_SIZE = 500
"""Smaller, so that the first bytes go out sooner and the pipeline below fills sooner."""
KEEP_ALIVE = "5m"
PAGE_FIELDS = "pit_id,hits.total,hits.hits._source,hits.hits.sort"
"""What a page needs from the answer (not ``_index``, ``_id``, ``_score``: less to parse)."""


@dataclass
class ScanPage:
    hits: list[dict[str, Any]]
    total: int
    asked: int = PAGE_SIZE

    @property
    def is_last(self) -> bool:
        return len(self.hits) < self.asked


async def open_window_pit(
    es: AsyncElasticsearch, names: IndexNames, query: EntryQuery, keep_alive: str
) -> str:
    """A point in time over the indices that can hold the view's window only (the engine drops
    the others by their timestamp range, so no page searches them)."""
    window = query.base_clauses()[1]
    resp = await es.open_point_in_time(
        index=names.entries_alias, keep_alive=keep_alive, index_filter=window
    )
    return str(resp["id"])


class ViewScan:
    """All entries of a view in ``order``; close it to release the point in time."""

    def __init__(
        self, es: AsyncElasticsearch, names: IndexNames, query: EntryQuery, order: str = "desc",
        page_size: int = PAGE_SIZE,
    ) -> None:  # fmt: skip
        self.es, self.names, self.query = es, names, query
        self.order, self.page_size = order, page_size
        self.pit: str | None = None
        self.total = 0

    async def first_page(self) -> ScanPage:
        try:
            self.pit = await open_window_pit(self.es, self.names, self.query, KEEP_ALIVE)
            page = await self._page(None, min(FIRST_PAGE_SIZE, self.page_size), track_total=True)
        except ApiError as e:
            await self.close()
            if e.meta.status == 400:
                raise bad_request(f"the engine refused the query: {e.message}", "q") from e
            raise engine_unavailable() from e
        except TransportError as e:
            await self.close()
            raise engine_unavailable() from e
        self.total = page.total
        return page

    async def _page(
        self, after: list[Any] | None, size: int, track_total: bool = False
    ) -> ScanPage:
        assert self.pit is not None
        query = self.query.full_query()
        if after is not None:  # only what is left: without it, every page visits every entry
            bound = "lte" if self.order == "desc" else "gte"
            left = {"range": {"timestamp": {bound: after[0], "format": "epoch_millis"}}}
            query = {"bool": {"filter": [query, left]}}
        body: dict[str, Any] = {
            "query": query,
            "sort": [{"timestamp": {"order": self.order}}, {"id": {"order": self.order}}],
            "size": size,
            "pit": {"id": self.pit, "keep_alive": KEEP_ALIVE},
            "track_total_hits": track_total,
        }
        if after is not None:
            body["search_after"] = after
        resp = await self.es.search(**body, filter_path=PAGE_FIELDS)
        self.pit = str(resp.get("pit_id", self.pit))
        found = resp.get("hits", {})  # filtered away entirely when empty
        total = found["total"]["value"] if track_total else self.total
        return ScanPage(list(found.get("hits", [])), total, size)

    async def rest(self, first: ScanPage) -> AsyncGenerator[ScanPage, None]:
        """The pages after ``first``; engine failures propagate (the download aborts).

        The next page is fetched while the caller works on the current one (two pages in memory
        at most), so the engine's time and the shaping overlap; once the last page is in, the
        point in time is released while the caller works on that page.
        """
        ahead = self._fetch_after(first)
        closing = None if ahead else asyncio.create_task(self.close())
        try:
            while ahead is not None:
                page = await ahead
                ahead = self._fetch_after(page)
                if ahead is None:
                    closing = asyncio.create_task(self.close())
                if page.hits:
                    yield page
        finally:
            if ahead is not None:
                ahead.cancel()
            if closing is not None:
                await closing

    def _fetch_after(self, page: ScanPage) -> asyncio.Task[ScanPage] | None:
        if page.is_last:
            return None
        return asyncio.create_task(self._page(page.hits[-1]["sort"], self.page_size))

    async def close(self) -> None:
        pit, self.pit = self.pit, None
        if pit is not None:
            with contextlib.suppress(ApiError, TransportError):  # it expires by itself anyway
                await self.es.close_point_in_time(id=pit)


async def categories_in_view(
    es: AsyncElasticsearch, names: IndexNames, query: EntryQuery
) -> list[str]:
    """The categories that occur in the view (to choose the metadata columns)."""
    try:
        resp = await es.search(
            index=names.entries_alias, size=0, query=query.full_query(),
            aggs={"c": {"terms": {"field": "category", "size": 20}}},
        )  # fmt: skip
    except TransportError as e:
        raise engine_unavailable() from e
    return [str(b["key"]) for b in resp["aggregations"]["c"]["buckets"]]
