"""``python -m bench.run``: every benchmark in one run against one throwaway local engine.

A fresh Elasticsearch node (heap 2g) starts in a temporary directory and is stopped at the end,
even on failure. The service runs as a separate ``uvicorn`` process. Steps: generate the entries;
ingest them raw (second prefix, then deleted) and through the service, the two taking turns for
``--ingest-rounds`` rounds, then again with the engine and the service on separate CPUs; search
and histogram latencies; exports at 10k/100k/1M rows against a raw scan and the bare writers; XLSX
rollover; profiles of the missed targets. Prints a markdown table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch, Elasticsearch
from starlette.datastructures import Secret

from bench import export_bench, profiles, report
from bench.dataset import ACCOUNTS, MAIN_ACCOUNT, format_utc
from bench.ingest_bench import (
    IngestData,
    build_bodies,
    complete,
    delete_indices,
    ingest_fresh_service,
    ingest_raw,  # fmt: skip
    ingest_service,
    load_raw_in_parts,
)
from bench.measure import machine_info, median_of
from bench.pinned import ingest_on_separate_cpus
from bench.search_bench import RawSearch, run_search
from bench.service import HttpClient, ServiceProcess, create_account_key
from service.config import Settings, load_settings
from service.local_engine.node import EngineInstance
from service.search.indices import IndexNames
from service.search.setup import run_setup

SERVICE_PREFIX, RAW_PREFIX, ROUND_PREFIX = "bench", "rawbench", "roundbench"
ADMIN_KEY = "bench-admin-key-0123456789abcdef0123"
HEAP = "2g"
_T0 = time.monotonic()


WARMUP_EVERY = 10
"""Every tenth body is sent raw once before the measures: the side measured first would otherwise
pay for the engine's warming up (its compiler threads' CPU counts as the engine's)."""


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S} +{time.monotonic() - _T0:6.0f}s] {message}",
          file=sys.stderr, flush=True)  # fmt: skip


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--entries", type=int, default=1_000_000, help="entries of the main account")
    p.add_argument("--large", action="store_true", help="10,000,000 entries")
    p.add_argument("--skip-ingest", action="store_true",
                   help="no ingest measurement: write the entries straight to the service's "
                        "indices with _bulk (faster), then measure search and exports")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    p.add_argument("--repeats", type=int, default=50, help="timed requests per filter and side")
    p.add_argument("--warmup", type=int, default=5, help="untimed requests per filter first")
    p.add_argument("--rollover-rows", type=int, default=export_bench.ROLLOVER_ROWS,
                   help="rows for the bare XLSX writer's sheet rollover (0: skip)")  # fmt: skip
    p.add_argument(
        "--ingest-rounds",
        type=_positive,
        default=3,
        help="ingest runs of each side, taking turns; the median run is reported",
    )
    p.add_argument("--no-profile", action="store_true", help="skip profiling missed targets")
    p.add_argument("--ids", choices=("client", "generated"), default="client",
                   help="entries sent with ids of their own (claimed), or without (the service "
                        "generates ids no client can send, and claims none)")  # fmt: skip
    p.add_argument("--formats", type=lambda text: tuple(text.split(",")),
                   default=export_bench.FORMATS,
                   help="export formats measured, comma-separated (csv,xlsx,ndjson)")  # fmt: skip
    p.add_argument("--search-only", action="store_true",
                   help="after the data: search and the facets only, no export")  # fmt: skip
    p.add_argument("--service-workers", type=_positive, default=1,
                   help="uvicorn --workers of the service while it shares the CPUs with the "
                        "engine (on separate CPUs it runs one)")  # fmt: skip
    p.add_argument("--ingest-only", action="store_true",
                   help="measure ingest alone: no search, export or profile")  # fmt: skip
    return p.parse_args(argv)


def _settings(es_url: str, prefix: str) -> Settings:
    return load_settings(env_file=None, es_url=es_url, index_prefix=prefix,
                         admin_key=Secret(ADMIN_KEY))  # fmt: skip


def _templates_dir() -> Path:
    return load_settings(env_file=None).templates_dir


async def _setup(es_url: str, prefix: str) -> None:
    es = AsyncElasticsearch(es_url)
    try:
        await run_setup(es, _settings(es_url, prefix))
    finally:
        await es.close()


def _count(es: Elasticsearch, prefix: str, end: str) -> dict[str, int]:
    """Generated entries stored per account (the admin API's own audit entries come after)."""
    es.indices.refresh(index=f"{prefix}-*")
    counts = {}
    for account in ACCOUNTS:
        query = {"bool": {"filter": [{"term": {"account_id": account.id}},
                                     {"range": {"timestamp": {"lt": end}}}]}}  # fmt: skip
        resp = es.count(index=IndexNames(prefix).entries_alias, query=query)
        counts[account.id] = int(resp["count"])
    return counts


class Bench:
    def __init__(self, args: argparse.Namespace, n: int, es_url: str, engine_pid: int,
                 workdir: Path) -> None:  # fmt: skip
        self.args, self.n, self.es_url, self.workdir = args, n, es_url, workdir
        self.engine_pid = engine_pid
        self.es = Elasticsearch(es_url, request_timeout=300)
        self.end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        self.end_text = format_utc(self.end)
        self.service = ServiceProcess(
            es_url, SERVICE_PREFIX, ADMIN_KEY, workdir, workers=args.service_workers
        )
        self.results: dict[str, Any] = {}

    def load(self) -> IngestData:
        """The data set in the service's indices: through the service (measured against raw
        ``_bulk``), or with --skip-ingest written straight to them a part at a time (no bodies
        kept)."""
        log(f"generating {self.n:,} entries of {MAIN_ACCOUNT.id} (+ smaller accounts)")
        asyncio.run(_setup(self.es_url, RAW_PREFIX))
        bodies = None
        if not self.args.skip_ingest:
            bodies = build_bodies(self.n, self.end, IndexNames(RAW_PREFIX), _templates_dir(),
                                  generated_ids=self.args.ids == "generated")  # fmt: skip
            log(f"{bodies.total:,} entries in {len(bodies.bodies)} bodies; starting the service")
        self.service.start()
        self.keys = {a.id: create_account_key(self.service, a.id, a.name, a.timezone)
                     for a in ACCOUNTS}  # fmt: skip
        if bodies is None:
            log("writing the entries straight to the service's indices (--skip-ingest), in parts")
            data = load_raw_in_parts(self.n, self.end, IndexNames(SERVICE_PREFIX),
                                     _templates_dir(), self.es_url, self.engine_pid)  # fmt: skip
        else:
            data = bodies
            self.ingest(data)
        counts = _count(self.es, SERVICE_PREFIX, self.end_text)
        if counts != data.counts:
            raise RuntimeError(f"stored {counts}, expected {data.counts}")
        log(f"stored and verified: {counts}")
        return data

    def ingest(self, data: IngestData) -> None:
        warm = IngestData(data.bodies[::WARMUP_EVERY], [], {})
        warm.counts["warm-up"] = sum(body.entries for body in warm.bodies)
        log(f"ingest: warming the engine up with {warm.total:,} entries raw (not timed, deleted)")
        ingest_raw(self.es_url, warm, self.engine_pid)
        delete_indices(self.es, RAW_PREFIX)
        rounds = self.args.ingest_rounds
        done: dict[str, list[dict[str, Any]]] = {"raw": [], "service": []}
        for r in range(1, rounds + 1):
            log(f"ingest round {r}/{rounds}: raw _bulk")
            raw = complete(ingest_raw(self.es_url, data, self.engine_pid), "raw _bulk")
            raw["verified_count"] = sum(_count(self.es, RAW_PREFIX, self.end_text).values())
            if raw["verified_count"] != data.total:
                raise RuntimeError(f"raw _bulk stored {raw['verified_count']} of {data.total}")
            delete_indices(self.es, RAW_PREFIX)
            log(f"ingest raw: {raw['entries_per_s']:,.0f}/s; now through the service")
            done["raw"].append(raw)
            done["service"].append(self._ingest_service(data, last=r == rounds))
            log(f"ingest service: {done['service'][-1]['entries_per_s']:,.0f}/s")
        self.results["ingest"] = {
            "rounds": rounds,
            **{side: median_of(figures, "entries") for side, figures in done.items()},
        }
        log("ingest again, a fifth of the bodies, engine and service on separate CPUs")
        separate = ingest_on_separate_cpus(
            self.es_url, self.engine_pid, data, ADMIN_KEY, self.workdir,
            lambda prefix: delete_indices(self.es, prefix), RAW_PREFIX, rounds,
        )  # fmt: skip
        if "raw" in separate:
            log(f"raw {separate['raw']['entries_per_s']:,.0f}/s, "
                f"service {separate['service']['entries_per_s']:,.0f}/s")  # fmt: skip
        self.results["ingest"]["separate_cpus"] = separate

    def _ingest_service(self, data: IngestData, last: bool) -> dict[str, Any]:
        """One service round. The last writes the service's own prefix, which the search and
        export measures read; the others go through a second service process whose prefix is
        checked and deleted after."""
        if last:
            return complete(ingest_service(self.service.url, self.keys, data, self.service.pid,
                                           self.engine_pid), "the service")  # fmt: skip

        def verify() -> None:
            counts = _count(self.es, ROUND_PREFIX, self.end_text)
            if counts != data.counts:
                raise RuntimeError(f"an ingest round stored {counts}, expected {data.counts}")

        return ingest_fresh_service(self.es_url, ROUND_PREFIX, ADMIN_KEY, self.workdir, data,
                                    self.engine_pid, partial(delete_indices, self.es),
                                    verify=verify, workers=self.args.service_workers)  # fmt: skip

    def search(self) -> None:
        log(f"search: entries and histogram, {self.args.repeats} timed requests per filter")
        client = HttpClient(self.service.url, {"Authorization": f"Bearer {self.keys['acme']}"})
        raw = RawSearch(self.es, IndexNames(SERVICE_PREFIX), MAIN_ACCOUNT.id, MAIN_ACCOUNT.timezone)
        try:
            self.results["search"] = run_search(client, raw, self.args.repeats, self.args.warmup)
        finally:
            client.close()
        stats = self.es.nodes.stats(metric="indices", index_metric="search")
        node = next(iter(stats["nodes"].values()))
        self.results["search"]["engine_open_contexts_after"] = node["indices"]["search"][
            "open_contexts"
        ]

    def facets_exact(self, timestamps: list[str]) -> None:
        """The main account's facet counts over its whole data set, as the service answers
        them, against the engine's own count of each value (a ``count`` per value)."""
        client = HttpClient(self.service.url, {"Authorization": f"Bearer {self.keys['acme']}"})
        frm, to = timestamps[0], self.end_text
        try:
            reply = client.request("GET", f"/v1/entries?from={frm}&to={to}&size=1")
        finally:
            client.close()
        if reply.status != 200:
            raise RuntimeError(f"GET /v1/entries: {reply.status} {reply.body[:300]!r}")
        body = reply.json()
        checked: dict[str, Any] = {"total": body["total"], "expected_total": len(timestamps)}
        mismatches = []
        for facet, field in (("category", "category"), ("type", "type"), ("actor", "actor.id")):
            for bucket in body["facets"][facet]:
                query = {"bool": {"filter": [
                    {"term": {"account_id": MAIN_ACCOUNT.id}}, {"term": {field: bucket["value"]}},
                    {"range": {"timestamp": {"gte": frm, "lt": to}}}]}}  # fmt: skip
                engine = int(self.es.count(index=f"{SERVICE_PREFIX}-entries", query=query)["count"])
                if engine != bucket["count"]:
                    mismatches.append({"facet": facet, "value": bucket["value"],
                                       "service": bucket["count"], "engine": engine})  # fmt: skip
            checked[f"{facet}_values"] = len(body["facets"][facet])
        checked["mismatches"] = mismatches
        checked["exact"] = not mismatches and body["total"] == len(timestamps)
        log(f"facets of {MAIN_ACCOUNT.id}: {checked}")
        self.results["facets"] = checked

    def export(self, timestamps: list[str]) -> None:
        names = IndexNames(SERVICE_PREFIX)
        client = HttpClient(self.service.url, {"Authorization": f"Bearer {self.keys['acme']}"})
        tpl = _templates_dir()
        log("export: shaping the sample pages for the bare writers")
        sample = export_bench.build_sample(self.es_url, names, timestamps, self.end_text, tpl)
        tiers = []
        for k in export_bench.tiers_for(len(timestamps)):
            frm, to = export_bench.window(k, timestamps, self.end_text)
            runs = export_bench.runs_for(k)
            tier: dict[str, Any] = {"rows": k, "from": frm, "to": to, "runs": runs,
                                    "service": {}, "bare_writer": {}}  # fmt: skip
            measures: dict[str, Callable[[], dict[str, Any]]] = {}
            formats = tuple(f for f in export_bench.formats_for(k) if f in self.args.formats)
            for fmt in formats:
                measures[f"service {fmt}"] = partial(
                    export_bench.service_export, client, self.service.pid, fmt, frm, to,
                    self.workdir, self.engine_pid)  # fmt: skip
            measures["raw scan"] = partial(export_bench.raw_scan, self.es_url, names, frm, to,
                                           self.engine_pid)  # fmt: skip
            if k < export_bench.HUGE_TIER:
                for fmt in formats:
                    measures[f"bare {fmt}"] = partial(export_bench.bare_writer, fmt, sample, k)
            log(f"export {k:,} rows: {', '.join(measures)} ({runs} run(s) each)")
            figures = export_bench.median_runs(measures, runs)
            for fmt in formats:
                served = figures[f"service {fmt}"]
                if served["rows"] != k or served["header_total"] != k:
                    raise RuntimeError(f"{fmt} export of {k} rows: got {served}")
                tier["service"][fmt] = served
                if f"bare {fmt}" in figures:
                    tier["bare_writer"][fmt] = figures[f"bare {fmt}"]
            tier["raw_scan"] = figures["raw scan"]
            if tier["raw_scan"]["rows"] != k:
                raise RuntimeError(f"raw scan of {k} rows: got {tier['raw_scan']}")
            tiers.append(tier)
        client.close()
        self.results["export"] = {"tiers": tiers}
        if self.args.rollover_rows:
            log(f"XLSX rollover: bare writer, {self.args.rollover_rows:,} rows")
            self.results["export"]["rollover"] = export_bench.rollover(
                sample, self.args.rollover_rows
            )

    def profile(self, data: IngestData, timestamps: list[str]) -> None:
        out = self.args.out.parent
        settings = _settings(self.es_url, SERVICE_PREFIX)
        missed = {t["measure"].split(",")[0] for t in self.results["targets"] if t["met"] is False}
        files: dict[str, str] = {}
        for stale in out.glob("profile-*.txt"):  # of targets missed in an earlier run
            stale.unlink()
        if any(m.startswith("ingest") for m in missed):
            log("profiling ingest")
            files["ingest"] = profiles.profile_ingest(settings, data.bodies[:10],
                                                      out / "profile-ingest.txt")  # fmt: skip
        if any(m.startswith("`GET") for m in missed):
            log("profiling search")
            files["search"] = profiles.profile_search(settings, 5, out / "profile-search.txt")
        k = min(100_000, len(timestamps))
        filters = export_bench.view_filters(*export_bench.window(k, timestamps, self.end_text))
        for fmt in ("csv", "xlsx"):
            if any(m.startswith(fmt.upper()) for m in missed):
                log(f"profiling the {fmt} export of {k:,} rows")
                files[f"export-{fmt}"] = profiles.profile_export(
                    settings, filters, fmt, out / f"profile-export-{fmt}.txt"
                )
        self.results["profiles"] = files

    def run(self, engine_version: str | None) -> dict[str, Any]:
        self.results["machine"] = machine_info(engine_version)
        data = self.load()
        timestamps = data.main_timestamps
        profile_bodies = data.bodies[:10]
        data.bodies = []  # free the pre-serialised bodies before measuring memory
        self.results["ids"] = self.args.ids
        if self.args.ingest_only:
            self.results["targets"] = report.evaluate(self.results)
            return self.results
        self.search()
        self.facets_exact(timestamps)
        if self.args.search_only:
            self.results["export"] = {"tiers": []}
            self.results["targets"] = report.evaluate(self.results)
            return self.results
        self.export(timestamps)
        self.results["targets"] = report.evaluate(self.results)
        if not self.args.no_profile:
            self.profile(IngestData(profile_bodies, [], {}), timestamps)
        return self.results

    def close(self) -> None:
        self.service.stop()
        self.es.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n = 10_000_000 if args.large else args.entries
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="auditlog-bench-"))
    engine = EngineInstance(workdir / "engine")
    bench: Bench | None = None
    try:
        log(f"starting a local engine in {workdir} (heap {HEAP})")
        status = engine.start(heap=HEAP)
        assert status.url is not None and status.pid is not None
        bench = Bench(args, n, status.url, status.pid, workdir)
        results = bench.run(status.version)
    except BaseException:
        if bench is not None:
            log(f"failed; the service's log ends with:\n{bench.service.log_tail()}")
        raise
    finally:
        if bench is not None:
            bench.close()
        engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        log("engine stopped")
    results = {
        "command": " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)]),
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started).total_seconds()),
        "entries_main_account": n,
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(report.markdown(results))
    log(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
