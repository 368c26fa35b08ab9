"""An export of a filtered view: plan it (first page fetched), then produce its bytes.

The range is frozen to absolute instants when the export starts; the first page is read before
any byte is sent, so a bad filter or an unavailable engine is still a 4xx/5xx; later failures
propagate and abort the download, never an error message inside a 200 body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch
from starlette.concurrency import run_in_threadpool

from ingest.schema import known_metadata_columns
from service.export.shaping import export_columns, shape_page
from service.export.writers import WRITERS, CsvWriter, NdjsonWriter, XlsxWriter
from service.search.entries import present
from service.search.filters import ViewFilters
from service.search.indices import IndexNames
from service.search.queries import EntryQuery
from service.search.scan import ScanPage, ViewScan, categories_in_view
from service.search.search_text import format_instant


@dataclass
class ExportPlan:
    filters: ViewFilters
    fmt: str
    order: str
    columns: list[str]
    scan: ViewScan
    first: ScanPage
    writer: CsvWriter | XlsxWriter | NdjsonWriter
    rows: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def total(self) -> int:
        return self.first.total

    def filename(self) -> str:
        tz = self.filters.tz
        start = self.filters.window.start
        begin = start.astimezone(tz).date().isoformat() if start else "beginning"
        end = self.filters.window.end.astimezone(tz).date().isoformat()
        return f"audit-log_{self.filters.account_id}_{begin}_{end}.{self.writer.extension}"

    def info(self) -> dict[str, Any]:
        window = self.filters.window
        return {
            "account": self.filters.account_id,
            "filters": self.filters.describe(),
            "from": format_instant(window.start) if window.start else "beginning",
            "to": format_instant(window.end),
            "timezone": self.filters.tz.key,
            "order": self.order,
            "row count": self.rows,
            "generated at": format_instant(self.started_at),
        }


async def plan_export(
    es: AsyncElasticsearch,
    names: IndexNames,
    filters: ViewFilters,
    fmt: str,
    order: str,
    templates_dir: Any,
    writer_factory: Callable[[], CsvWriter | XlsxWriter | NdjsonWriter] | None = None,
) -> ExportPlan:
    query = EntryQuery(filters)
    scan = ViewScan(es, names, query, order)
    categories, first = await asyncio.gather(  # independent: one round trip instead of two
        categories_in_view(es, names, query), scan.first_page(), return_exceptions=True
    )
    for outcome in (first, categories):  # the page's error first: it names a bad query
        if isinstance(outcome, BaseException):
            await scan.close()
            raise outcome
    assert isinstance(first, ScanPage) and isinstance(categories, list)
    columns = export_columns(known_metadata_columns(templates_dir, categories))
    writer = writer_factory() if writer_factory else WRITERS[fmt]()
    return ExportPlan(filters, fmt, order, columns, scan, first, writer)


def _page_bytes(plan: ExportPlan, page: ScanPage) -> bytes:
    sources = [h["_source"] for h in page.hits]
    plan.rows += len(sources)
    if isinstance(plan.writer, NdjsonWriter):
        return plan.writer.write_entries([present(s, plan.filters) for s in sources])
    metadata_columns = plan.columns[10:-1]
    return plan.writer.write_frame(shape_page(sources, metadata_columns, plan.filters.tz))


async def export_bytes(plan: ExportPlan) -> AsyncIterator[bytes]:
    """Every byte of the export file, page by page; releases the point in time at the end."""
    try:
        head = plan.writer.start(plan.columns)
        if plan.first.hits:
            head += await run_in_threadpool(_page_bytes, plan, plan.first)
        if head:
            yield head
        async for page in plan.scan.rest(plan.first):
            chunk = await run_in_threadpool(_page_bytes, plan, page)
            if chunk:
                yield chunk
        tails = await run_in_threadpool(plan.writer.finish, plan.info())
        for tail in tails:
            yield tail
    finally:
        await plan.scan.close()
