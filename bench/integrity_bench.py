"""What integrity costs, against the same service with sealing off, in one run on a throwaway
engine: ingest with sealing on and off (alternating rounds, in turn first, a fresh service and
prefix each), the seal lag (from an entry's acknowledgement to the signing of the first
checkpoint that covers it, read from the checkpoints once the round is over: nobody polls the
heads while it runs) and how long sealing takes to catch up once the last write is acknowledged,
and `auditlog verify` of the main account against a raw point-in-time scan of the same entries
(rate and peak RSS).

    python -m bench.integrity_bench --entries 200000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from bench import export_bench
from bench.dataset import ACCOUNTS, MAIN_ACCOUNT
from bench.ingest_bench import IngestData, build_bodies, complete, delete_indices, ingest_service
from bench.measure import RssSampler, machine_info
from bench.service import HttpClient, ServiceProcess, bench_keys, create_account_key
from service.config import load_settings
from service.local_engine.node import EngineInstance
from service.search.indices import IndexNames

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
HEAP = "2g"


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _sealed_size(service: ServiceProcess, key: str) -> int:
    client = HttpClient(service.url, {"Authorization": f"Bearer {key}"})
    try:
        reply = client.request("GET", "/v1/integrity/head")
        return int(reply.json()["tree_size"]) if reply.status == 200 else 0
    finally:
        client.close()


def sealed_over_time(es: Elasticsearch, prefix: str) -> list[tuple[float, int]]:
    """Every account's checkpoints in the order they were signed: (Unix time signed, entries
    sealed in all accounts then). Read once the round is over, so measuring the seal lag costs
    the round nothing (a customer polling the heads all along would add reads of its own)."""
    names = IndexNames(prefix)
    es.indices.refresh(index=names.integrity)
    signed: list[tuple[float, str, int]] = []
    after: list[Any] | None = None
    while True:
        page = es.search(
            index=names.integrity, size=1000, search_after=after,
            sort=[{"account_id": "asc"}, {"seq": "asc"}], query={"term": {"kind": "checkpoint"}},
            source_includes=["account_id", "tree_size", "sealed_at"],
        )["hits"]["hits"]  # fmt: skip
        for hit in page:
            checkpoint = hit["_source"]
            moment = datetime.fromisoformat(checkpoint["sealed_at"].replace("Z", "+00:00"))
            signed.append(
                (moment.timestamp(), checkpoint["account_id"], int(checkpoint["tree_size"]))
            )
        if len(page) < 1000:
            break
        after = page[-1]["sort"]
    sizes: dict[str, int] = {}
    samples = []
    for at, account_id, size in sorted(signed):
        sizes[account_id] = size
        samples.append((at, sum(sizes.values())))
    return samples


def seal_lags(acks: list[tuple[float, int]], samples: list[tuple[float, int]],
              before: int) -> list[float]:  # fmt: skip
    """Per acknowledged entry, the seconds until a signed checkpoint first covered it: the k-th
    entry acknowledged counts as covered once the checkpoints hold ``before + k`` entries
    (positions follow the order writes were queued in, so this pairs each entry with its own
    position up to the requests that were in flight together)."""
    lags: list[float] = []
    acked = 0
    s = 0
    for at, created in sorted(acks):
        for _ in range(created):
            acked += 1
            while s < len(samples) and (samples[s][1] < before + acked or samples[s][0] < at):
                s += 1
            if s == len(samples):
                raise RuntimeError("the heads never covered every acknowledged entry")
            lags.append(samples[s][0] - at)
    return lags


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _round(es_url: str, prefix: str, workdir: Path, data: Any, engine_pid: int, sealing: bool,
           total: int) -> tuple[dict[str, Any], ServiceProcess, dict[str, str]]:  # fmt: skip
    env = {"AUDITLOG_SEALING": "true" if sealing else "false", "AUDITLOG_SEAL_INTERVAL_S": "2"}
    service = ServiceProcess(es_url, prefix, ADMIN_KEY, workdir, env)
    service.start()
    keys = {a.id: create_account_key(service, a.id, a.name, a.timezone) for a in ACCOUNTS}
    what = f"sealing {'on' if sealing else 'off'}"
    if not sealing:
        figures = complete(ingest_service(service.url, keys, data, service.pid, engine_pid), what)
        return figures, service, keys
    audit = 2 * len(ACCOUNTS)  # each account's creation and key entries
    while sum(_sealed_size(service, k) for k in keys.values()) < audit:
        time.sleep(0.2)
    acks: list[tuple[float, int]] = []
    figures = complete(ingest_service(service.url, keys, data, service.pid, engine_pid, acks),
                       what)  # fmt: skip
    last_ack = time.monotonic()
    while sum(_sealed_size(service, k) for k in keys.values()) < audit + total:
        if time.monotonic() - last_ack > 600:
            raise RuntimeError("sealing did not catch up in 10 minutes")
        time.sleep(0.2)
    wall = time.time() - time.monotonic()  # acknowledgements are timed on the monotonic clock
    with Elasticsearch(es_url, request_timeout=300) as es:
        samples = sealed_over_time(es, prefix)
    lags = seal_lags([(at + wall, created) for at, created in acks], samples, audit)
    done = next(at for at, sealed in samples if sealed >= audit + total)
    figures["seal_catch_up_s"] = round(max(done - (last_ack + wall), 0.0), 2)
    figures["seal_lag_s"] = {"p50": round(_percentile(lags, 0.5), 2),
                             "p95": round(_percentile(lags, 0.95), 2),
                             "max": round(max(lags), 2)}  # fmt: skip
    return figures, service, keys


def _part(data: IngestData, share: int) -> IngestData:
    """Every ``share``-th body of ``data``."""
    bodies = data.bodies[::share]
    counts: dict[str, int] = {}
    for body in bodies:
        counts[body.account_id] = counts.get(body.account_id, 0) + body.entries
    return IngestData(bodies, [], counts)


def _verify(es_url: str, prefix: str) -> dict[str, Any]:
    env = {**os.environ, "AUDITLOG_ES_URL": es_url, "AUDITLOG_INDEX_PREFIX": prefix,
           "AUDITLOG_KEYS_DIR": str(bench_keys())}  # fmt: skip
    cmd = [sys.executable, "-m", "service.cli", "verify", "--account", MAIN_ACCOUNT.id]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with RssSampler(proc.pid) as rss:
        out, err = proc.communicate()
    seconds = time.monotonic() - started
    report = json.loads(out)
    if proc.returncode != 0 or not report["ok"]:
        raise RuntimeError(f"verify failed: {err.decode()[-2000:]} {out.decode()[:2000]}")
    return {"entries": report["entries_checked"], "seconds": round(seconds, 2),
            "entries_per_s": round(report["entries_checked"] / seconds, 1),
            "peak_rss_mb": round(rss.peak_mb, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.integrity_bench", description=__doc__)
    p.add_argument("--entries", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench/results/integrity.json"))
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="auditlog-integrity-bench-"))
    engine = EngineInstance(workdir / "engine")
    results: dict[str, Any] = {"command": " ".join(["python -m bench.integrity_bench",
                                                     *sys.argv[1:]])}  # fmt: skip
    try:
        status = engine.start(heap=HEAP)
        assert status.url is not None and status.pid is not None
        results["machine"] = machine_info(status.version)
        es = Elasticsearch(status.url, request_timeout=300)
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        templates = load_settings(env_file=None).templates_dir
        data = build_bodies(args.entries, end, IndexNames("ibench"), templates)
        rounds: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
        kept: tuple[ServiceProcess, str] | None = None
        warm = _part(data, 5)
        for sealing in (False, True):  # warm-up: the engine's and the service's first run
            log(f"warm-up, {warm.total:,} entries, sealing {'on' if sealing else 'off'}")
            _, service, _ = _round(status.url, f"ibw{int(sealing)}", workdir, warm, status.pid,
                                   sealing, warm.total)  # fmt: skip
            service.stop()
            delete_indices(es, f"ibw{int(sealing)}")
        for r in range(1, args.rounds + 1):
            for sealing in (False, True) if r % 2 else (True, False):  # in turn first: the
                # engine gets faster over a run
                prefix = f"ib{r}{'s' if sealing else 'n'}"
                state = "on" if sealing else "off"
                log(f"round {r}: ingest {data.total:,} entries, sealing {state}")
                figures, service, _ = _round(status.url, prefix, workdir, data, status.pid,
                                             sealing, data.total)  # fmt: skip
                rounds["on" if sealing else "off"].append(figures)
                log(f"  {figures['entries_per_s']:,.0f} entries/s"
                    + (f", seal lag {figures['seal_lag_s']}, all sealed"
                       f" {figures['seal_catch_up_s']} s after the last write"
                       if sealing else ""))  # fmt: skip
                service.stop()
                if sealing and r == args.rounds:
                    kept = (service, prefix)
                else:
                    delete_indices(es, prefix)
        assert kept is not None
        _, prefix = kept
        log("verify the main account, then a raw point-in-time scan of the same entries")
        verify = _verify(status.url, prefix)
        names = IndexNames(prefix)
        raw = export_bench.raw_scan(status.url, names, "2000-01-01T00:00:00.000Z",
                                    "2100-01-01T00:00:00.000Z", status.pid)  # fmt: skip

        def median(side: str, key: str) -> float:
            values = sorted(f[key] for f in rounds[side])
            return float(values[len(values) // 2])

        results.update({
            "entries": data.total,
            "ingest": rounds,
            "ingest_ratio_on_vs_off": round(median("on", "entries_per_s")
                                            / median("off", "entries_per_s"), 3),
            # each round's own ratio (its two sides ran back to back), their median: less
            # sensitive to how fast the machine is from one round to the next
            "ingest_ratio_on_vs_off_same_round": round(statistics.median(
                on["entries_per_s"] / off["entries_per_s"]
                for on, off in zip(rounds["on"], rounds["off"], strict=True)), 3),
            "seal_catch_up_s": median("on", "seal_catch_up_s"),
            "seal_lag_p95_s": max(f["seal_lag_s"]["p95"] for f in rounds["on"]),
            "verify": verify,
            "raw_scan": raw,
            "verify_ratio_vs_raw_scan": round(verify["entries_per_s"] / raw["rows_per_s"], 3),
        })  # fmt: skip
        delete_indices(es, prefix)
    finally:
        engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    shown = (
        "ingest_ratio_on_vs_off",
        "ingest_ratio_on_vs_off_same_round",
        "seal_lag_p95_s",
        "seal_catch_up_s",
        "verify",
        "verify_ratio_vs_raw_scan",
    )
    print(json.dumps({k: results[k] for k in shown}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
