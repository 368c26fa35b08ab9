"""Profiles (pyinstrument) of the service-side hot paths, run in this process on the same engine.

Each runs the service's own functions the way its endpoint does (an export's pages are shaped
and written on the event loop; only a workbook's final zipping runs in a worker thread and shows
as waiting), and writes the call tree (wall-clock seconds; awaiting the engine shows as
``epoll.poll``) to a file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch
from pyinstrument import Profiler
from starlette.responses import JSONResponse

from bench.dataset import MAIN_ACCOUNT
from bench.ingest_bench import Body
from bench.search_bench import SEARCH_MIX, _as_dict
from ingest.pipeline import IngestContext, ingest_items, summarize
from service.api.ingest import parse_ndjson
from service.app import collector_tuned
from service.config import Settings
from service.export.stream import export_bytes, plan_export
from service.search.client import make_client
from service.search.entries import search_entries
from service.search.filters import ViewFilters, parse_view_filters
from service.search.histogram import date_histogram
from service.search.indices import IndexNames

PROFILE_ACCOUNT = "zprofile"
"""Profiled ingestion writes here, never into the accounts whose figures are measured."""


def _write(profiler: Profiler, path: Path, title: str) -> str:
    tree = profiler.output_text(unicode=True, color=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title}\n\n## call tree\n{tree}")
    return str(path)


def _profile(settings: Settings, work: Callable[[AsyncElasticsearch], Awaitable[None]],
             path: Path, title: str) -> str:  # fmt: skip
    async def main() -> str:
        assert settings.es_url is not None
        es = make_client(settings, settings.es_url)
        try:
            with collector_tuned():  # as the service runs
                profiler = Profiler(interval=0.0005, async_mode="enabled")
                profiler.start()
                await work(es)
                profiler.stop()
        finally:
            await es.close()
        return _write(profiler, path, title)

    return asyncio.run(main())


def profile_ingest(settings: Settings, bodies: list[Body], path: Path) -> str:
    """``POST /v1/entries/_bulk``'s work for ``bodies``: parse, validate, store, answer."""

    async def work(es: AsyncElasticsearch) -> None:
        ctx = IngestContext(es, IndexNames(settings.index_prefix), settings.templates_dir,
                            settings.max_future_skew_s, settings.bulk_batch_size)  # fmt: skip
        for body in bodies:
            items = parse_ndjson(body.service, settings.max_line_bytes)
            account_of: dict[int, Any] = dict.fromkeys(range(len(items)), PROFILE_ACCOUNT)
            results = await ingest_items(ctx, items, account_of)
            JSONResponse(summarize(results))

    title = f"ingest of {sum(b.entries for b in bodies)} entries in {len(bodies)} bodies"
    return _profile(settings, work, path, title)


def profile_export(settings: Settings, filters: ViewFilters, fmt: str, path: Path) -> str:
    """``GET /v1/export``'s work: plan (first page), every page shaped and written, finish."""

    async def work(es: AsyncElasticsearch) -> None:
        names = IndexNames(settings.index_prefix)
        plan = await plan_export(es, names, filters, fmt, "desc", settings.templates_dir)
        async for _ in export_bytes(plan):
            pass

    return _profile(settings, work, path, f"{fmt} export of the window {filters.window}")


def profile_search(settings: Settings, repeats: int, path: Path) -> str:
    """``GET /v1/entries`` and ``GET /v1/histogram`` over the search mix."""

    async def work(es: AsyncElasticsearch) -> None:
        names = IndexNames(settings.index_prefix)
        for _, params in SEARCH_MIX:
            for _ in range(repeats):
                filters = parse_view_filters(_as_dict(params), MAIN_ACCOUNT.id,
                                             MAIN_ACCOUNT.timezone, datetime.now(UTC))  # fmt: skip
                page = await search_entries(
                    es, names, filters, size=50, order="desc", cursor_text=None,
                    secret=b"k" * 32, timeout_s=10.0,
                )  # fmt: skip
                JSONResponse(page.to_dict())
                histogram = await date_histogram(es, names, filters, "auto", "category")
                JSONResponse(histogram.to_dict())

    return _profile(settings, work, path, f"search mix, {repeats} of each")
