"""Reading a whole filtered view page by page: point in time + ``search_after``.

Exports use this: the first page is fetched by the caller before a response starts (so a bad
filter is still a 4xx), the rest is read ahead of the caller, a bounded number of pages at a time.

Each page after the first also filters on the timestamp of the last entry read (inclusive, so
that ``search_after`` still orders ties by id): ``search_after`` alone makes the engine visit
every entry of the view again for every page, which made a million-row scan cost twice the
engine time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from service.errors import bad_request, engine_unavailable
from service.search.engine_errors import engine_failures
from service.search.indices import IndexNames
from service.search.queries import EntryQuery

PAGE_SIZE = 2500
FIRST_PAGE_SIZE = 500
"""Smaller, so that the first bytes go out sooner and the pipeline below fills sooner."""
KEEP_ALIVE = "5m"
CATEGORIES_MAX = 20
"""More than there are categories."""


@dataclass
class ScanPage:
    hits: list[dict[str, Any]]
    total: int
    asked: int = PAGE_SIZE
    categories: list[str] = field(default_factory=list)
    """The categories that occur in the view (first page, when asked for)."""

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
        self,
        es: AsyncElasticsearch,
        names: IndexNames,
        query: EntryQuery,
        order: str = "desc",
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.es, self.names, self.query = es, names, query
        self.order, self.page_size = order, page_size
        self.pit: str | None = None
        self.total = 0
        self.reader: asyncio.Task[None] | None = None
        self.reading = False

    async def first_page(self, categories: bool = False) -> ScanPage:
        """The first page with the view's total and, with ``categories``, the categories in it
        (counted over the point in time, in the same request: exactly the entries read)."""
        try:
            self.pit = await open_window_pit(self.es, self.names, self.query, KEEP_ALIVE)
            size = min(FIRST_PAGE_SIZE, self.page_size)
            page = await self._page(None, size, track_total=True, categories=categories)
        except ApiError as e:
            await self.close()
            if e.meta.status == 400:
                raise bad_request(f"the engine refused the query: {e.message}", "q") from e
            raise engine_unavailable(detail=str(e)) from e
        except TransportError as e:
            await self.close()
            raise engine_unavailable(detail=str(e)) from e
        self.total = page.total
        return page

    async def _page(
        self,
        after: list[Any] | None,
        size: int,
        track_total: bool = False,
        categories: bool = False,
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
        if categories:
            body["aggs"] = {"c": {"terms": {"field": "category", "size": CATEGORIES_MAX}}}
        # no filter_path: with one, the engine re-encodes every _source token by token instead of
        # copying its stored bytes (about 10-15 % more engine CPU; _id and _index cost less)
        resp = await self.es.search(**body)
        self.pit = str(resp.get("pit_id", self.pit))
        found = resp["hits"]
        total = found["total"]["value"] if track_total else self.total
        page = ScanPage(list(found["hits"]), total, size)
        if categories:
            buckets = resp.get("aggregations", {}).get("c", {}).get("buckets", [])  # none: no index
            page.categories = [str(b["key"]) for b in buckets]
        return page

    def rest(
        self, first: ScanPage, all_read: Callable[[int], None] | None = None
    ) -> AsyncGenerator[ScanPage, None]:
        """The pages after ``first``; engine failures propagate (the download aborts).

        Pages are read ahead by a task started here: the next page is asked for as soon as the
        one before it is in, up to two pages ahead of the caller (at most three pages in memory:
        the caller's, one waiting, one arriving). As soon as the last page is in from the engine,
        ``all_read`` is called with the number of entries read; once that page is queued for the
        caller, the point in time is released while the caller works. ``close`` stops the
        reading.
        """
        queue: asyncio.Queue[ScanPage | Exception] = asyncio.Queue(maxsize=1)
        self.reading = True
        self.reader = asyncio.create_task(self._read_ahead(first, queue, all_read))
        return self._pages(first, queue, self.reader)

    async def _read_ahead(
        self,
        page: ScanPage,
        out: asyncio.Queue[ScanPage | Exception],
        all_read: Callable[[int], None] | None,
    ) -> None:
        read = len(page.hits)
        if page.is_last and all_read is not None:
            all_read(read)  # its failure, if any, reaches the caller through this task
        try:
            while not page.is_last:
                with engine_failures():
                    page = await self._page(page.hits[-1]["sort"], self.page_size)
                read += len(page.hits)
                if page.is_last and all_read is not None:
                    all_read(read)  # before the caller takes the page: it may start on it now
                await out.put(page)
        except Exception as e:  # handed to the caller, in order
            await out.put(e)
            return
        self.reading = False
        await self._release()

    @staticmethod
    async def _pages(
        first: ScanPage, queue: asyncio.Queue[ScanPage | Exception], reader: asyncio.Task[None]
    ) -> AsyncGenerator[ScanPage, None]:
        page = first
        while not page.is_last:
            item = await queue.get()
            if isinstance(item, Exception):
                raise item
            page = item
            if page.hits:
                yield page
        # the reader releases the point in time once the last page is in; a cancelled caller
        # must not cut that request short (the point in time would stay open until it expires)
        await asyncio.shield(reader)

    async def close(self) -> None:
        """Stop reading ahead and release the point in time."""
        reader, self.reader = self.reader, None
        if reader is not None:
            if self.reading:  # else it is only releasing the point in time: let it finish
                reader.cancel()
            await asyncio.wait({reader})
            if not reader.cancelled():
                reader.exception()  # taken: its failure, if any, went to the caller
        await self._release()

    async def _release(self) -> None:
        pit, self.pit = self.pit, None
        if pit is not None:
            with contextlib.suppress(ApiError, TransportError):  # it expires by itself anyway
                await self.es.close_point_in_time(id=pit)
