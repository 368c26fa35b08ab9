"""Load: sustained ingest with concurrent searches and exports, for minutes, on a fresh stack.

``python -m bench.soak [--minutes 10]`` starts a throwaway engine and the service in its own
process, preloads entries, then runs ingest, search and export workers until the time is up. It
passes when every answer was a success or backpressure (429/503), every entry reported ``created``
is stored, and the service's memory did not grow (the last minute's mean RSS within 20 % of the
second minute's). The figures go to ``bench/results/soak-latest.json`` and a summary is printed.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.dataset import MAIN_ACCOUNT, generate
from bench.measure import machine_info, rss_bytes
from bench.service import HttpClient, ServiceProcess, create_account_key
from service.local_engine.node import EngineInstance

OK = {200, 201, 202}
BACKPRESSURE = {429, 503}
BATCH = 500
QUERIES: list[dict[str, str]] = [
    {"range": "7d"},
    {"range": "30d", "category": "webhook", "type": "error"},
    {"range": "90d", "q": "Competitor mentions"},
    {"range": "24h", "q": "type:warning,error -category:api"},
    {"range": "30d", "actor": "u_101"},
]


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    created: int = 0
    failed: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses.setdefault(kind, Counter())[status] += 1
            self.latencies.setdefault(kind, []).append(seconds)


def _ndjson(entries: list[dict[str, Any]]) -> bytes:
    return b"\n".join(json.dumps(e).encode() for e in entries)


def _ingest_worker(url: str, key: str, worker: int, stop: float, tally: Tally) -> None:
    client = HttpClient(url, {"Authorization": f"Bearer {key}"})
    n = 0
    while time.monotonic() < stop:
        now = datetime.now(UTC)
        entries = list(generate(MAIN_ACCOUNT, BATCH, now, seed=1000 * worker + n))
        for i, e in enumerate(entries):
            e["id"] = f"soak-{worker}-{n}-{i}"
            e.pop("account_id", None)
        started = time.monotonic()
        reply = client.request("POST", "/v1/entries/_bulk", _ndjson(entries),
                               {"Content-Type": "application/x-ndjson"})  # fmt: skip
        tally.add("ingest", reply.status, time.monotonic() - started)
        if reply.status == 200:
            body = reply.json()
            with tally.lock:
                tally.created += body["created"]
                tally.failed += body["failed"]
        elif reply.status in BACKPRESSURE:
            time.sleep(float(reply.headers.get("Retry-After", "1")))
        n += 1
    client.close()


def _search_worker(url: str, key: str, stop: float, tally: Tally, seed: int) -> None:
    client = HttpClient(url, {"Authorization": f"Bearer {key}"})
    rng = random.Random(seed)
    while time.monotonic() < stop:
        params = rng.choice(QUERIES)
        path = rng.choice(["/v1/entries", "/v1/histogram"])
        started = time.monotonic()
        query = "&".join(f"{k}={v}" for k, v in params.items()).replace(" ", "+")
        reply = client.request("GET", f"{path}?{query}")
        tally.add(path.removeprefix("/v1/"), reply.status, time.monotonic() - started)
    client.close()


def _export_worker(url: str, key: str, stop: float, tally: Tally) -> None:
    client = HttpClient(url, {"Authorization": f"Bearer {key}"})
    while time.monotonic() < stop:
        started = time.monotonic()
        with client.stream("/v1/export?format=csv&range=30d") as resp:
            while resp.read(1 << 16):
                pass
            status = resp.status
        tally.add("export", status, time.monotonic() - started)
    client.close()


def _sample_rss(pid: int, stop: float, timeline: list[tuple[float, int]]) -> None:
    start = time.monotonic()
    while time.monotonic() < stop:
        timeline.append((time.monotonic() - start, rss_bytes(pid)))
        time.sleep(5)


def _stored(es_url: str, prefix: str) -> int:
    import urllib.request

    urllib.request.urlopen(f"{es_url}/{prefix}-*/_refresh", data=b"", timeout=60).read()
    query = json.dumps({"query": {"prefix": {"id": "soak-"}}}).encode()
    req = urllib.request.Request(f"{es_url}/{prefix}-entries/_count", data=query,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=60) as resp:
        return int(json.load(resp)["count"])


def _verdict(tally: Tally, timeline: list[tuple[float, int]], stored: int) -> dict[str, Any]:
    bad = {k: {s: n for s, n in c.items() if s not in OK | BACKPRESSURE}
           for k, c in tally.statuses.items()}  # fmt: skip
    second = [r for t, r in timeline if 60 <= t < 120] or [r for _, r in timeline[:3]]
    last_t = timeline[-1][0] if timeline else 0
    last = [r for t, r in timeline if t >= last_t - 60] or [timeline[-1][1]]
    growth = (sum(last) / len(last)) / (sum(second) / len(second)) - 1 if second else 0.0
    return {
        "other_errors": {k: v for k, v in bad.items() if v},
        "created_reported": tally.created,
        "created_stored": stored,
        "rss_second_minute_mb": round(sum(second) / len(second) / 1e6, 1),
        "rss_last_minute_mb": round(sum(last) / len(last) / 1e6, 1),
        "rss_growth_pct": round(100 * growth, 1),
        "passed": not any(bad.values()) and stored == tally.created and growth <= 0.2,
    }


def run(
    minutes: float, ingest_workers: int, search_workers: int, export_workers: int
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="auditlog-soak-"))
    engine = EngineInstance(workdir / "engine")
    status = engine.start()
    assert status.url is not None
    service = ServiceProcess(status.url, "soak", "soak-admin-key-0123456789", workdir)
    try:
        service.start()
        key = create_account_key(service, MAIN_ACCOUNT.id, MAIN_ACCOUNT.name, MAIN_ACCOUNT.timezone)
        preload = list(generate(MAIN_ACCOUNT, 20_000, datetime.now(UTC) - timedelta(hours=1)))
        loader = HttpClient(service.url, {"Authorization": f"Bearer {key}"})
        for i in range(0, len(preload), 2000):
            loader.request("POST", "/v1/entries/_bulk", _ndjson(preload[i : i + 2000]),
                           {"Content-Type": "application/x-ndjson"})  # fmt: skip
        loader.close()
        tally = Tally()
        timeline: list[tuple[float, int]] = []
        stop = time.monotonic() + minutes * 60
        threads = [threading.Thread(target=_sample_rss, args=(service.pid, stop, timeline))]
        threads += [threading.Thread(target=_ingest_worker, args=(service.url, key, w, stop, tally))
                    for w in range(ingest_workers)]  # fmt: skip
        threads += [threading.Thread(target=_search_worker, args=(service.url, key, stop, tally, s))
                    for s in range(search_workers)]  # fmt: skip
        threads += [threading.Thread(target=_export_worker, args=(service.url, key, stop, tally))
                    for _ in range(export_workers)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        verdict = _verdict(tally, timeline, _stored(status.url, "soak"))
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "minutes": minutes,
            "workers": {
                "ingest": ingest_workers,
                "search": search_workers,
                "export": export_workers,
            },
            "machine": machine_info(status.version),
            "requests": {k: dict(sorted(c.items())) for k, c in tally.statuses.items()},
            "p95_s": {
                k: round(sorted(v)[int(0.95 * (len(v) - 1))], 3)
                for k, v in tally.latencies.items()
                if v
            },
            "failed_entries": tally.failed,
            "rss_timeline_mb": [(round(t), round(r / 1e6, 1)) for t, r in timeline],
            **verdict,
        }
    finally:
        service.stop()
        engine.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--ingest-workers", type=int, default=3)
    p.add_argument("--search-workers", type=int, default=2)
    p.add_argument("--export-workers", type=int, default=1)
    p.add_argument("--out", default="bench/results/soak-latest.json")
    args = p.parse_args(argv)
    result = run(args.minutes, args.ingest_workers, args.search_workers, args.export_workers)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k not in ("rss_timeline_mb", "machine")}
    print(json.dumps(summary, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
