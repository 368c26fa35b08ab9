"""What integrity costs, against the same service with sealing off, in one run on a throwaway
engine: ingest with sealing on and off (alternating rounds, fresh service and prefix each), how
long sealing takes to catch up once the last write is acknowledged, and `auditlog verify` of the
main account against a raw point-in-time scan of the same entries (rate and peak RSS).

    python -m bench.integrity_bench --entries 200000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
from bench.ingest_bench import build_bodies, complete, ingest_service
from bench.measure import RssSampler, machine_info
from bench.service import HttpClient, ServiceProcess, bench_keys, create_account_key
from service.config import load_settings
from service.local_engine.node import EngineInstance
from service.search.indices import IndexNames

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
HEAP = "2g"


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _delete(es: Elasticsearch, prefix: str) -> None:
    found = list(es.indices.get(index=f"{prefix}-*", allow_no_indices=True).body)
    for i in range(0, len(found), 50):
        es.indices.delete(index=",".join(found[i : i + 50]))


def _sealed_size(service: ServiceProcess, key: str) -> int:
    client = HttpClient(service.url, {"Authorization": f"Bearer {key}"})
    try:
        reply = client.request("GET", "/v1/integrity/head")
        return int(reply.json()["tree_size"]) if reply.status == 200 else 0
    finally:
        client.close()


def _round(es_url: str, prefix: str, workdir: Path, data: Any, engine_pid: int, sealing: bool,
           expected: int) -> tuple[dict[str, Any], ServiceProcess, dict[str, str]]:  # fmt: skip
    env = {"AUDITLOG_SEALING": "true" if sealing else "false", "AUDITLOG_SEAL_INTERVAL_S": "2"}
    service = ServiceProcess(es_url, prefix, ADMIN_KEY, workdir, env)
    service.start()
    keys = {a.id: create_account_key(service, a.id, a.name, a.timezone) for a in ACCOUNTS}
    figures = complete(ingest_service(service.url, keys, data, service.pid, engine_pid),
                       f"sealing {'on' if sealing else 'off'}")  # fmt: skip
    if sealing:  # until the main account's log holds every entry (and its two audit entries)
        started = time.monotonic()
        while _sealed_size(service, keys[MAIN_ACCOUNT.id]) < expected:
            if time.monotonic() - started > 600:
                raise RuntimeError("sealing did not catch up in 10 minutes")
            time.sleep(0.2)
        figures["seal_catch_up_s"] = round(time.monotonic() - started, 2)
    return figures, service, keys


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
        expected = data.counts[MAIN_ACCOUNT.id] + 2  # the account's creation and key entries
        rounds: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
        kept: tuple[ServiceProcess, str] | None = None
        for r in range(1, args.rounds + 1):
            for sealing in (False, True):
                prefix = f"ib{r}{'s' if sealing else 'n'}"
                state = "on" if sealing else "off"
                log(f"round {r}: ingest {data.total:,} entries, sealing {state}")
                figures, service, _ = _round(status.url, prefix, workdir, data, status.pid,
                                             sealing, expected)  # fmt: skip
                rounds["on" if sealing else "off"].append(figures)
                log(f"  {figures['entries_per_s']:,.0f} entries/s"
                    + (f", sealed {figures['seal_catch_up_s']} s after the last write"
                       if sealing else ""))  # fmt: skip
                service.stop()
                if sealing and r == args.rounds:
                    kept = (service, prefix)
                else:
                    _delete(es, prefix)
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
            "seal_catch_up_s": median("on", "seal_catch_up_s"),
            "verify": verify,
            "raw_scan": raw,
            "verify_ratio_vs_raw_scan": round(verify["entries_per_s"] / raw["rows_per_s"], 3),
        })  # fmt: skip
        _delete(es, prefix)
    finally:
        engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    shown = ("ingest_ratio_on_vs_off", "seal_catch_up_s", "verify", "verify_ratio_vs_raw_scan")
    print(json.dumps({k: results[k] for k in shown}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
