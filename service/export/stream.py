"""An export of a filtered view: plan it (first page fetched), then produce its bytes.

The range is frozen to absolute instants when the export starts; the first page is read before
any byte is sent, so a bad filter or an unavailable engine is still a 4xx/5xx; later failures
propagate and abort the download, never an error message inside a 200 body.

Every export has an id and gathers what its signed manifest states
(:mod:`service.integrity.manifests`): the SHA-256 and size of every byte produced, the rows' entry
digests, and which rows were still in the seal queue when the export's point in time was opened
(every other row visible to it is already under a checkpoint: the sealer removes a queue record
only once its entries are).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool

from ingest.schema import known_metadata_columns
from service.export.in_words import filters_in_words, window_in_words
from service.export.shaping import (
    RowShaper,
    export_columns,
    local_timestamps,
    metadata_columns_of,
)
from service.export.writers import CsvWriter, NdjsonWriter, XlsxWriter, writer_for
from service.integrity.canonical import entry_digest
from service.integrity.manifests import RowDigests
from service.search.client import Engine
from service.search.entries import HIDDEN_FIELDS
from service.search.filters import ViewFilters
from service.search.indices import IndexNames
from service.search.queries import EntryQuery
from service.search.scan import ScanPage, ViewScan
from service.search.seal_queue import SealQueue
from service.search.search_text import format_instant


def new_export_id() -> str:
    return f"exp_{secrets.token_hex(12)}"


@dataclass
class ExportPlan:
    filters: ViewFilters
    fmt: str
    order: str
    columns: list[str]
    scan: ViewScan
    first: ScanPage
    writer: CsvWriter | XlsxWriter | NdjsonWriter
    shaper: RowShaper
    export_id: str = field(default_factory=new_export_id)
    queued: set[str] | None = None
    """Document ids in the seal queue when the point in time was opened (``None``: sealing is
    off, no row is known to be sealed)."""
    awaiting: dict[str, str] = field(default_factory=dict)
    """The exported rows among :attr:`queued`: the manifest's head must wait for them."""
    row_digests: RowDigests = field(default_factory=RowDigests)
    file_hash: Any = field(default_factory=hashlib.sha256)
    file_bytes: int = 0
    rows: int = 0
    """Rows written so far."""
    read: int = 0
    """Entries read from the engine: the first page's, then the file's row count once the last
    page is in."""
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
            "export id": self.export_id,
            "rows sha256": self.row_digests.hexdigest(),
            "manifest": f"/v1/exports/{self.export_id}/manifest",
        }

    def sheet_info(self) -> dict[str, Any]:
        """:meth:`info` for people (the ``Export info`` sheet): the filters in words, and the
        window in the export's timezone beside its UTC instants."""
        info = self.info()
        described = {
            "account": info.pop("account"),
            "filters": filters_in_words(self.filters),
            "window": window_in_words(self.filters.window, self.filters.tz),
        }
        del info["filters"]
        return {**described, **info}


async def plan_export(
    es: Engine,
    names: IndexNames,
    filters: ViewFilters,
    fmt: str,
    order: str,
    templates_dir: Any,
    writer_factory: Callable[[], CsvWriter | XlsxWriter | NdjsonWriter] | None = None,
    sealing: bool = True,
    export_id: str | None = None,
    bom: bool = False,
) -> ExportPlan:
    """The export of ``filters`` as ``fmt``, its first page read; a CSV file starts with a
    UTF-8 byte-order mark when ``bom`` (Excel then reads it as UTF-8)."""
    scan = ViewScan(es, names, EntryQuery(filters), order)
    first = await scan.first_page(categories=True)  # the metadata columns: the view's categories
    try:
        queued = await SealQueue(es, names).pending_ids() if sealing else None
    except BaseException:
        await scan.close()
        raise
    columns = export_columns(known_metadata_columns(templates_dir, first.categories))
    if writer_factory is not None:
        writer = writer_factory()
    else:
        writer = writer_for(fmt, bom=bom, zone_name=filters.tz.key)
    shaper = RowShaper(metadata_columns_of(columns), text=writer.text_cells)
    read = len(first.hits)
    plan = ExportPlan(filters, fmt, order, columns, scan, first, writer, shaper, queued=queued,
                      read=read)  # fmt: skip
    if export_id is not None:
        plan.export_id = export_id
    return plan


SHAPE_ROWS = 500
"""Entries shaped at once (a few milliseconds of work)."""


async def _page_chunks(plan: ExportPlan, page: ScanPage) -> AsyncIterator[bytes]:
    """The bytes of one page, written a slice of ``writer.slice_rows`` rows at a time.

    Shaping and writing run on the event loop (a worker thread cost more in hand-offs and lock
    contention with the page reads than the work itself); between two slices the loop serves
    other requests and reads the next page, so no request waits more than a few milliseconds.
    """
    step = plan.writer.slice_rows
    sources = [h["_source"] for h in page.hits]
    local = _local_times(plan, sources)
    for start in range(0, len(sources), SHAPE_ROWS):
        end = start + SHAPE_ROWS
        part_sources = sources[start:end]
        digests = [entry_digest(source) for source in part_sources]
        plan.row_digests.add(digests)
        if plan.queued:
            for source, digest in zip(part_sources, digests, strict=True):
                doc_id = f"{source['account_id']}/{source['id']}"
                if doc_id in plan.queued:
                    plan.awaiting[doc_id] = digest
        shaped = _shape(plan, part_sources, local[start:end], digests)
        for i in range(0, len(shaped), step):
            part = shaped[i : i + step]
            chunk = _write(plan.writer, part)
            plan.rows += len(part)
            yield chunk  # empty for a workbook: progress all the same
            await asyncio.sleep(0)


def _local_times(plan: ExportPlan, sources: list[dict[str, Any]]) -> list[str]:
    """The page's local timestamps, for export rows and NDJSON's ``local_time`` alike
    (vectorised: once per page is cheapest; the same text :func:`present` writes)."""
    return local_timestamps([s["timestamp"] for s in sources], plan.filters.tz)


def _shape(
    plan: ExportPlan, sources: list[dict[str, Any]], local: list[str], digests: list[str]
) -> list[Any]:
    """Entries as the API returns them with their ``entry_digest`` (NDJSON) or export rows (CSV,
    XLSX)."""
    if isinstance(plan.writer, NdjsonWriter):  # as present() shows them, local_time vectorised
        shown = []
        for source, when, digest in zip(sources, local, digests, strict=True):
            entry = {k: v for k, v in source.items() if k not in HIDDEN_FIELDS}
            entry["local_time"] = when
            entry["entry_digest"] = digest
            shown.append(entry)
        return shown
    return plan.shaper.rows(sources, local, digests)


def _write(writer: CsvWriter | XlsxWriter | NdjsonWriter, shaped: list[Any]) -> bytes:
    if isinstance(writer, NdjsonWriter):
        return writer.write_entries(shaped)
    return writer.write_rows(shaped)


async def export_bytes(
    plan: ExportPlan, when_read: Callable[[], Coroutine[Any, Any, None]] | None = None
) -> AsyncIterator[bytes]:
    """Every byte of the export file (see :func:`_file_bytes`), each counted into the plan's
    file hash and size."""
    chunks = _file_bytes(plan, when_read)
    try:
        async for chunk in chunks:
            plan.file_hash.update(chunk)
            plan.file_bytes += len(chunk)
            yield chunk
    finally:  # at once, also when the download is cut: the point in time, the audit entry
        await chunks.aclose()


async def _file_bytes(
    plan: ExportPlan, when_read: Callable[[], Coroutine[Any, Any, None]] | None = None
) -> AsyncGenerator[bytes, None]:
    """Every byte of the export file, page by page; releases the point in time at the end.

    The pages after the first are read ahead while the first is written (``ViewScan.rest``).
    ``when_read`` starts as soon as the last page is in from the engine (``plan.read`` is then
    the file's row count) and runs alongside the writing; the last rows and the file's tail wait
    for it, and its failure aborts the download without them. A chunk may be empty (a
    workbook's rows go to its file until the end): it marks progress, ``plan.rows`` having grown.
    """
    closing: list[asyncio.Task[None]] = []

    def all_read(count: int) -> None:
        plan.read = count
        if when_read is not None:
            closing.append(asyncio.create_task(when_read()))

    pages = plan.scan.rest(plan.first, all_read)
    try:
        await asyncio.sleep(0)  # the second page is asked for before the first is written
        head = plan.writer.start(plan.columns)
        if head:
            yield head
        page: ScanPage | None = plan.first
        held: bytes | None = None  # the last rows wait for ``when_read`` with the tails
        while page is not None:
            async for chunk in _page_chunks(plan, page):
                if held is not None:
                    yield held
                held = chunk
            page = await anext(pages, None)
        if isinstance(plan.writer, XlsxWriter):  # zipped here (seconds for a million rows)
            tails = await run_in_threadpool(plan.writer.finish, plan.sheet_info())
        else:  # nothing left to write: a thread's hand-offs would cost more
            tails = plan.writer.finish(plan.sheet_info())
        for task in closing:  # called once every page is in, before the last one is taken
            await task
        if held:
            yield held
        for tail in tails:
            yield tail
    finally:
        # also when the download was cancelled (client gone): release the point in time now, and
        # let a started audit entry be written (every entry has left the engine: it is exported)
        with anyio.CancelScope(shield=True):
            for task in closing:
                await _finished(task)
            await pages.aclose()
            await plan.scan.close()


async def _finished(task: asyncio.Task[Any]) -> None:
    """Wait for ``task`` and take its outcome (its failure, if any, aborted the download)."""
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()
