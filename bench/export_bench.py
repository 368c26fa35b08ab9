"""Export: rows/s and peak RSS of ``GET /v1/export`` versus a raw scan and the bare writers.

A tier of ``k`` rows is the main account's window ``[from, to)`` from its ``k``-th newest entry's
timestamp to the data set's end (timestamps are unique, so the count is exact; it is verified from
the file). Per tier (the median of 15 runs of each measure at 10k rows, of 3 at 100k, the
measures taking turns): the service's CSV, XLSX and NDJSON downloads with the service's RSS sampled
every 50 ms; a raw point-in-time + ``search_after`` scan of the same entries (the engine alone,
read by the same paging code and the same orjson-backed client as the service's);
and each bare writer fed pre-shaped pages from memory (the writer alone, with this process's
own RSS growth).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer

from bench.dataset import MAIN_ACCOUNT
from bench.measure import CpuMeter, RssSampler, Stopwatch, median_of
from bench.service import HttpClient
from ingest.schema import known_metadata_columns
from service.app import collector_tuned
from service.export.shaping import export_columns, shape_rows
from service.export.writers import WRITERS
from service.search.entries import present
from service.search.filters import ViewFilters, parse_view_filters
from service.search.indices import IndexNames
from service.search.queries import EntryQuery
from service.search.scan import ViewScan

TIERS = (10_000, 100_000, 1_000_000, 10_000_000)
HUGE_TIER = 10_000_000
"""From this many rows a tier measures CSV and NDJSON against the raw scan, once each: an XLSX
file of 10 sheets and the bare writers would take an hour more, and a run lasts minutes."""
SHORT_TIER = 100_000
SHORT_TIER_RUNS = 15
"""A tier under ``SHORT_TIER`` rows lasts a fraction of a second: each of its measures is run
``SHORT_TIER_RUNS`` times and the median run reported (one run of 0.15 s is mostly noise: runs
of the same code spread from 0.13 to 0.22 s)."""
LONG_TIER_RUNS = 3
"""A tier of ``SHORT_TIER`` rows or more (seconds to minutes a measure) gets the median of 3 runs:
a single run of the 1M-row XLSX export measured 0.7993x of the bare writer, 0.82-0.85x in the
runs before."""
FORMATS = ("csv", "xlsx", "ndjson")
SAMPLE_ROWS = 100_000
ROLLOVER_ROWS = 1_100_000
BLOCK = 1 << 20
_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def tiers_for(main_count: int) -> list[int]:
    return [t for t in TIERS if t <= main_count] or [main_count]


def runs_for(k: int) -> int:
    if k < SHORT_TIER:
        return SHORT_TIER_RUNS
    return 1 if k >= HUGE_TIER else LONG_TIER_RUNS


def formats_for(k: int) -> tuple[str, ...]:
    return ("csv", "ndjson") if k >= HUGE_TIER else FORMATS


def median_runs(
    measures: dict[str, Callable[[], dict[str, Any]]], runs: int
) -> dict[str, dict[str, Any]]:
    """Each measure's median run of ``runs``; the measures take turns (one run of each per
    round), so that the service and its baselines meet the same state of the engine and the
    machine, as the search measures do."""
    done: dict[str, list[dict[str, Any]]] = {name: [] for name in measures}
    for _ in range(runs):
        for name, measure in measures.items():
            done[name].append(measure())
    return {name: median_of(figures) for name, figures in done.items()}


def window(k: int, timestamps: list[str], end: str) -> tuple[str, str]:
    """``from`` (inclusive) and ``to`` (exclusive) holding exactly the ``k`` newest entries."""
    return timestamps[-k], end


def view_filters(frm: str, to: str) -> ViewFilters:
    params = {"from": [frm], "to": [to]}
    return parse_view_filters(params, MAIN_ACCOUNT.id, MAIN_ACCOUNT.timezone, datetime.now(UTC))


# --- the service --------------------------------------------------------------------------


def service_export(client: HttpClient, pid: int, fmt: str, frm: str, to: str, workdir: Path,
                   engine_pid: int) -> dict[str, Any]:  # fmt: skip
    path = f"/v1/export?{urlencode({'format': fmt, 'from': frm, 'to': to})}"
    size = newlines = 0
    target = workdir / f"export.{fmt}"
    pids = {"engine": engine_pid, "service": pid, "client": os.getpid()}
    with (RssSampler(pid) as rss, CpuMeter(pids) as cpu, Stopwatch() as watch,
          client.stream(path) as resp):  # fmt: skip
        if resp.status != 200:
            raise RuntimeError(f"export {fmt}: {resp.status} {resp.read()[:500]!r}")
        header_total = int(resp.getheader("X-Total-Count") or -1)
        with target.open("wb") as out:
            while block := resp.read(BLOCK):
                size += len(block)
                if fmt == "xlsx":
                    out.write(block)
                else:
                    newlines += block.count(b"\n")
    if fmt == "xlsx":
        sheets = xlsx_sheets(target)
        rows = sum(s["rows"] - 1 for s in sheets if s["name"] != "Export info")
    else:
        rows = newlines - (1 if fmt == "csv" else 0)
    target.unlink(missing_ok=True)
    return {
        "rows": rows, "header_total": header_total, "seconds": round(watch.seconds, 3),
        "rows_per_s": round(rows / watch.seconds, 1), "mb": round(size / 1e6, 1),
        "rss_before_mb": round(rss.before / 1e6, 1), "peak_rss_mb": round(rss.peak_mb, 1),
        "cpu_s": cpu.seconds,
    }  # fmt: skip


# --- the engine alone ---------------------------------------------------------------------


@contextlib.contextmanager
def as_the_service_runs() -> Iterator[None]:
    """An in-process baseline runs with the service's collector settings (what is alive now,
    the writers' sample included, frozen out of the collector's scans), after the garbage of
    earlier runs is collected (not timed). Without it, a 10,000-row raw scan took 0.11 or 0.18 s
    by turns: every other run, a full collection went through this process's whole heap."""
    gc.collect()
    with collector_tuned():
        yield


async def _scan(es_url: str, names: IndexNames, filters: ViewFilters,
                engine_pid: int) -> tuple[int, float, dict[str, float]]:  # fmt: skip
    """The rows of the view, the seconds to read them and the CPU seconds of the engine and this
    process meanwhile, the client connected beforehand (as the service's is)."""
    es = AsyncElasticsearch(es_url, request_timeout=120, serializer=OrjsonSerializer())
    pids = {"engine": engine_pid, "client": os.getpid()}
    try:
        await es.cluster.health()
        with CpuMeter(pids) as cpu, Stopwatch() as watch:
            scan = ViewScan(es, names, EntryQuery(filters))
            try:
                first = await scan.first_page()
                rows = len(first.hits)
                async for page in scan.rest(first):
                    rows += len(page.hits)
            finally:
                await scan.close()
        return rows, watch.seconds, cpu.seconds
    finally:
        await es.close()


def raw_scan(es_url: str, names: IndexNames, frm: str, to: str, engine_pid: int) -> dict[str, Any]:
    with as_the_service_runs():
        rows, seconds, cpu = asyncio.run(_scan(es_url, names, view_filters(frm, to), engine_pid))
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds, 1),
            "cpu_s": cpu}  # fmt: skip


# --- the writers alone --------------------------------------------------------------------


@dataclass
class Sample:
    """Pre-shaped pages of real entries: rows for XLSX, rows of text cells for CSV (each as the
    service shapes them for its writer), presented entries for NDJSON."""

    columns: list[str]
    rows: list[list[list[Any]]]
    text_rows: list[list[list[Any]]]
    entries: list[list[dict[str, Any]]]


async def _sample(es_url: str, names: IndexNames, filters: ViewFilters, tpl: Path) -> Sample:
    es = AsyncElasticsearch(es_url, request_timeout=120)
    try:
        query = EntryQuery(filters)
        scan = ViewScan(es, names, query)
        try:
            first = await scan.first_page(categories=True)
            columns = export_columns(known_metadata_columns(tpl, first.categories))
            pages = [first.hits]
            async for page in scan.rest(first):
                pages.append(page.hits)
        finally:
            await scan.close()
    finally:
        await es.close()
    sources = [[h["_source"] for h in hits] for hits in pages]
    rows = [shape_rows(s, columns[10:-1], filters.tz) for s in sources]
    text_rows = [shape_rows(s, columns[10:-1], filters.tz, text=True) for s in sources]
    entries = [[present(e, filters) for e in s] for s in sources]
    return Sample(columns, rows, text_rows, entries)


def build_sample(es_url: str, names: IndexNames, timestamps: list[str], end: str,
                 tpl: Path) -> Sample:  # fmt: skip
    frm, to = window(min(SAMPLE_ROWS, len(timestamps)), timestamps, end)
    return asyncio.run(_sample(es_url, names, view_filters(frm, to), tpl))


def _feed(writer: Any, fmt: str, sample: Sample, rows: int) -> int:
    """Write ``rows`` rows cycling through the sample's pages; return the bytes produced."""
    size, done, i = len(writer.start(sample.columns)), 0, 0
    while done < rows:
        if fmt == "ndjson":
            page = sample.entries[i % len(sample.entries)]
            take = min(len(page), rows - done)
            size += len(writer.write_entries(page[:take]))
        else:
            pages = sample.text_rows if writer.text_cells else sample.rows
            shaped = pages[i % len(pages)]
            take = min(len(shaped), rows - done)
            size += len(writer.write_rows(shaped[:take]))
        done, i = done + take, i + 1
    return size


def bare_writer(fmt: str, sample: Sample, rows: int, keep: Path | None = None) -> dict[str, Any]:
    """The writer alone; with ``keep``, the file is written there (else only counted)."""
    writer = WRITERS[fmt]()
    with as_the_service_runs(), RssSampler(os.getpid()) as rss, Stopwatch() as watch:
        size = _feed(writer, fmt, sample, rows)
        out = keep.open("wb") if keep else None
        info = {"account": MAIN_ACCOUNT.id, "filters": {}, "timezone": MAIN_ACCOUNT.timezone,
                "row count": rows, "generated at": datetime.now(UTC).isoformat()}  # fmt: skip
        for tail in writer.finish(info):
            size += len(tail)
            if out:
                out.write(tail)
        if out:
            out.close()
    return {"rows": rows, "seconds": round(watch.seconds, 3),
            "rows_per_s": round(rows / watch.seconds, 1), "mb": round(size / 1e6, 1),
            "rss_delta_mb": round(rss.delta_mb, 1)}  # fmt: skip


def rollover(sample: Sample, rows: int = ROLLOVER_ROWS) -> dict[str, Any]:
    """The bare XLSX writer past Excel's row limit: the sheets it made and their rows."""
    with tempfile.TemporaryDirectory(prefix="bench-xlsx-") as tmp:
        path = Path(tmp) / "rollover.xlsx"
        figures = bare_writer("xlsx", sample, rows, keep=path)
        sheets = xlsx_sheets(path)
    data_rows = sum(s["rows"] - 1 for s in sheets if s["name"] != "Export info")
    return {**figures, "sheets": sheets, "data_rows": data_rows}


def xlsx_sheets(path: Path) -> list[dict[str, Any]]:
    """Each sheet's name and row count (header included), counted from the raw sheet XML."""
    with zipfile.ZipFile(path) as zf:
        book = ElementTree.fromstring(zf.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
        targets = {r.get("Id"): str(r.get("Target")) for r in rels}
        out = []
        for sheet in book.iterfind("m:sheets/m:sheet", _NS):
            target = targets[sheet.get(_REL_ID)].lstrip("/")
            member = target if target.startswith("xl/") else f"xl/{target}"
            out.append({"name": sheet.get("name"), "rows": _count_rows(zf, member)})
    return out


def _count_rows(zf: zipfile.ZipFile, member: str) -> int:
    count, tail = 0, b""
    with zf.open(member) as stream:
        while block := stream.read(BLOCK):
            buffer = tail + block
            count += buffer.count(b"<row ") + buffer.count(b"<row>")
            tail = buffer[-4:]
    return count
