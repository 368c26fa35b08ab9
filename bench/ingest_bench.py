"""Ingest: entries/s through ``POST /v1/entries/_bulk`` versus ``_bulk`` straight to the engine.

Both sides send the same entries in bodies of ``BATCH`` entries from ``WORKERS`` client threads,
pre-serialised before the clock starts. The raw side writes the documents the service would store
(``validate_entry``'s output) with ``create`` into the same index names (``entry_index_for``) and
ids (``doc_id_for``) under a second prefix whose templates ``run_setup`` installed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from bench.dataset import ACCOUNTS, entry_counts, generate
from bench.measure import CpuMeter, RssSampler, Stopwatch
from bench.service import HttpClient, Reply, ServiceProcess, create_account_key
from ingest.validation import validate_entry
from service.search.indices import IndexNames
from service.search.writer import BULK_FIELDS, doc_id_for

BATCH = 2000
WORKERS = 2
MAX_SKEW_S = 300


@dataclass
class Body:
    account_id: str
    first_timestamp: str
    entries: int
    service: bytes
    raw: bytes


@dataclass
class IngestData:
    bodies: list[Body]
    main_timestamps: list[str]
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _raw_lines(entries: list[dict[str, Any]], account_id: str, raw: IndexNames, tpl: Path) -> bytes:
    now = datetime.now(UTC)
    lines = []
    for entry in entries:
        valid = validate_entry(entry, account_id, now, MAX_SKEW_S, tpl)
        index = raw.entry_index_for(valid.source["category"], valid.timestamp)
        action = {"create": {"_index": index, "_id": doc_id_for(account_id, valid.id)}}
        lines += [json.dumps(action), json.dumps(valid.source, ensure_ascii=False)]
    return ("\n".join(lines) + "\n").encode()


def build_bodies(n: int, end: datetime, raw: IndexNames, templates_dir: Path,
                 generated_ids: bool = False) -> IngestData:  # fmt: skip
    """Every request body of both sides, time-ordered across accounts. With ``generated_ids``
    the service's bodies carry no ``id`` (the service makes one) and the raw side writes the ids
    validation made while building them, of the same form."""
    counts = entry_counts(n)
    bodies: list[Body] = []
    main_timestamps: list[str] = []
    for account in ACCOUNTS:
        batch: list[dict[str, Any]] = []
        for entry in generate(account, counts[account.id], end):
            if generated_ids:
                del entry["id"]
            batch.append(entry)
            if account is ACCOUNTS[0]:
                main_timestamps.append(entry["timestamp"])
            if len(batch) == BATCH:
                bodies.append(_body(account.id, batch, raw, templates_dir))
                batch = []
        if batch:
            bodies.append(_body(account.id, batch, raw, templates_dir))
    bodies.sort(key=lambda b: b.first_timestamp)
    return IngestData(bodies, main_timestamps, counts)


def load_raw_in_parts(n: int, end: datetime, raw: IndexNames, templates_dir: Path, es_url: str,
                      engine_pid: int, part: int = 500_000) -> IngestData:  # fmt: skip
    """Write the data set straight to ``raw``'s indices a part at a time (10M entries'
    bodies would take more than 10 GB at once); the counts and the main account's timestamps,
    no bodies."""
    counts = entry_counts(n)
    main_timestamps: list[str] = []
    bodies: list[Body] = []

    def flush() -> None:
        sent = IngestData(bodies, [], {"part": sum(b.entries for b in bodies)})
        complete(ingest_raw(es_url, sent, engine_pid), "raw _bulk")
        bodies.clear()

    for account in ACCOUNTS:
        batch: list[dict[str, Any]] = []
        for entry in generate(account, counts[account.id], end):
            batch.append(entry)
            if account is ACCOUNTS[0]:
                main_timestamps.append(entry["timestamp"])
            if len(batch) == BATCH:
                bodies.append(Body(account.id, batch[0]["timestamp"], len(batch), b"",
                                   _raw_lines(batch, account.id, raw, templates_dir)))  # fmt: skip
                batch = []
                if len(bodies) * BATCH >= part:
                    flush()
        if batch:
            bodies.append(Body(account.id, batch[0]["timestamp"], len(batch), b"",
                               _raw_lines(batch, account.id, raw, templates_dir)))  # fmt: skip
    if bodies:
        flush()
    return IngestData([], main_timestamps, counts)


def _body(account_id: str, batch: list[dict[str, Any]], raw: IndexNames, tpl: Path) -> Body:
    service = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in batch).encode()
    return Body(account_id, batch[0]["timestamp"], len(batch), service,
                _raw_lines(batch, account_id, raw, tpl))  # fmt: skip


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ok: int, failed: int, error: str | None = None) -> None:
        with self.lock:
            self.ok += ok
            self.failed += failed
            if error and len(self.errors) < 5:
                self.errors.append(error)


def _send_all(bodies: list[Body], send: Callable[[HttpClient, Body, Tally], None],
              base_url: str, tally: Tally) -> float:  # fmt: skip
    """Send every body from ``WORKERS`` threads; return the wall-clock seconds."""
    queue = iter(bodies)
    lock = threading.Lock()

    def worker() -> None:
        client = HttpClient(base_url)
        try:
            while True:
                with lock:
                    body = next(queue, None)
                if body is None:
                    return
                send(client, body, tally)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, name=f"ingest-{i}") for i in range(WORKERS)]
    with Stopwatch() as watch:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return watch.seconds


def _post_with_retry(client: HttpClient, path: str, body: bytes, headers: dict[str, str],
                     tally: Tally) -> Reply:  # fmt: skip
    for attempt in range(20):
        reply = client.request("POST", path, body, headers)
        if reply.status not in (429, 503):
            return reply
        with tally.lock:
            tally.retries += 1
        time.sleep(min(0.2 * 2**attempt, 5.0))
    return reply


RAW_BULK = f"/_bulk?filter_path={BULK_FIELDS}"
"""The answer trimmed as the service trims its own (the full one costs the client CPU that the
engine, sharing the CPUs, would be short of)."""


def ingest_raw(es_url: str, data: IngestData, engine_pid: int) -> dict[str, Any]:
    tally = Tally()
    headers = {"Content-Type": "application/x-ndjson"}

    def send(client: HttpClient, body: Body, tally: Tally) -> None:
        reply = _post_with_retry(client, RAW_BULK, body.raw, headers, tally)
        if reply.status != 200:
            tally.add(0, body.entries, f"{reply.status} {reply.body[:300]!r}")
            return
        items = reply.json()["items"]
        ok = sum(1 for item in items if item["create"]["status"] == 201)
        bad = next((i["create"] for i in items if i["create"]["status"] != 201), None)
        tally.add(ok, len(items) - ok, json.dumps(bad)[:300] if bad else None)

    with CpuMeter({"engine": engine_pid, "client": os.getpid()}) as cpu:
        seconds = _send_all(data.bodies, send, es_url, tally)
    return {**_figures(data, tally, seconds), "cpu_s": cpu.seconds}


def delete_indices(es: Elasticsearch, prefix: str) -> None:
    """Delete every index of ``prefix`` (between rounds), fifty names a request."""
    found = list(es.indices.get(index=f"{prefix}-*", allow_no_indices=True).body)
    for i in range(0, len(found), 50):
        es.indices.delete(index=",".join(found[i : i + 50]))


def ingest_service(
    base_url: str, keys: dict[str, str], data: IngestData, pid: int, engine_pid: int,
    acks: list[tuple[float, int]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Send every body to the service; with ``acks``, each acknowledged request appends its
    monotonic time and how many entries it created."""
    tally = Tally()

    def send(client: HttpClient, body: Body, tally: Tally) -> None:
        headers = {"Content-Type": "application/x-ndjson",
                   "Authorization": f"Bearer {keys[body.account_id]}"}  # fmt: skip
        reply = _post_with_retry(client, "/v1/entries/_bulk", body.service, headers, tally)
        if reply.status != 200:
            tally.add(0, body.entries, f"{reply.status} {reply.body[:300]!r}")
            return
        summary = reply.json()
        bad = next((r for r in summary["results"] if r["status"] != "created"), None)
        tally.add(summary["created"], body.entries - summary["created"],
                  json.dumps(bad)[:300] if bad else None)  # fmt: skip
        if acks is not None:
            acks.append((time.monotonic(), summary["created"]))

    pids = {"engine": engine_pid, "service": pid, "client": os.getpid()}
    with RssSampler(pid, tree=True) as rss, CpuMeter(pids, trees=frozenset({"service"})) as cpu:
        seconds = _send_all(data.bodies, send, base_url, tally)
    return {**_figures(data, tally, seconds), "service_peak_rss_mb": round(rss.peak_mb, 1),
            "cpu_s": cpu.seconds}  # fmt: skip


def complete(figures: dict[str, Any], what: str) -> dict[str, Any]:
    """``figures`` of a run where the engine acknowledged every entry; else the run is void."""
    if figures["failed"] or figures["created"] != figures["entries"]:
        raise RuntimeError(f"{what}: {figures['created']} of {figures['entries']} created, "
                           f"{figures['failed']} failed: {figures['errors']}")  # fmt: skip
    return figures


def ingest_fresh_service(
    es_url: str, prefix: str, admin_key: str, workdir: Path, data: IngestData, engine_pid: int,
    clear: Callable[[str], None], started: Callable[[int], None] = lambda pid: None,
    verify: Callable[[], None] = lambda: None, workers: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """One complete run through a fresh service process with ``prefix`` to itself: ``started``
    gets its pid before the run, ``verify`` runs after it; the process is stopped and the prefix
    deleted even on failure."""
    service = ServiceProcess(es_url, prefix, admin_key, workdir, workers=workers)
    try:
        service.start()
        keys = {a.id: create_account_key(service, a.id, a.name, a.timezone) for a in ACCOUNTS}
        started(service.pid)
        figures = complete(ingest_service(service.url, keys, data, service.pid, engine_pid),
                           "the service")  # fmt: skip
        verify()
        return figures
    finally:
        service.stop()
        clear(prefix)


def _figures(data: IngestData, tally: Tally, seconds: float) -> dict[str, Any]:
    return {
        "entries": data.total,
        "created": tally.ok,
        "failed": tally.failed,
        "retried_requests": tally.retries,
        "errors": tally.errors,
        "seconds": round(seconds, 2),
        "entries_per_s": round(tally.ok / seconds, 1) if seconds else 0.0,
        "body_mb": round(sum(len(b.service) for b in data.bodies) / 1e6, 1),
        "requests": len(data.bodies),
    }
