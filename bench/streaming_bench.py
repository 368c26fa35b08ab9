"""What streaming costs, against the same service with no destination, in one run on a throwaway
engine, and how fast a destination delivers.

- **Ingest with and without destinations**: in each round the same entries are ingested once
  per side (:data:`SIDES`; the side that goes first turns from round to round: the engine's
  speed drifts over a run), a fresh service and prefix each: without a destination; with one
  destination of the main account (which holds 95 % of the entries), a webhook (a local
  receiver process, :mod:`bench.webhook_sink`); with one, Debian's ``rsyslog`` over TCP
  (writing what it receives to ``/dev/null``); and with four: every account's webhook and the
  main account's syslog. Ratios are of the sides' medians, and the median of each round's own
  ratio.
  Sealing is on in both.
- **Delivery while ingesting**: entries per second from the first write until every destination
  acknowledged every entry (the sealing lag included), and how long that took after the last
  write was acknowledged.
- **Delivery alone (backfill)**: after each round with four destinations, a new destination of
  the main account started from position 0 once everything is sealed, one kind at a time: its
  log's entries over the seconds until it caught up, against that side's ingest rate.

    python -m bench.streaming_bench --entries 100000 --rounds 2

The syslog receiver is the tests' (``tests/streaming/syslog_receiver.py``), started the same way.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from bench.dataset import ACCOUNTS, MAIN_ACCOUNT
from bench.ingest_bench import IngestData, build_bodies, complete, delete_indices, ingest_service
from bench.measure import machine_info
from bench.service import HttpClient, ServiceProcess, create_account_key, free_port
from service.config import load_settings
from service.local_engine.node import EngineInstance
from service.search.indices import IndexNames
from tests.streaming.syslog_receiver import Rsyslog, make_tls_files

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
HEAP = "2g"
SECRET = "whsec-bench-" + "b" * 24
WAIT_S = 900.0


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class Sink:
    """:mod:`bench.webhook_sink` in a process of its own."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        out = (workdir / "sink.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.webhook_sink", str(self.port)],
                                     stdout=out, stderr=out)  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the webhook sink did not start") from None
                time.sleep(0.1)

    def counts(self) -> dict[str, int]:
        client = HttpClient(self.url)
        try:
            return dict(client.request("GET", "/count").json())
        finally:
            client.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Deployment:
    """One round's service, its accounts' keys and (with streaming) their destinations."""

    def __init__(self, es_url: str, prefix: str, workdir: Path) -> None:
        env = {"AUDITLOG_DESTINATION_KEY": base64.b64encode(os.urandom(32)).decode(),
               "AUDITLOG_DESTINATION_ALLOW": "127.0.0.0/8", "AUDITLOG_SEAL_INTERVAL_S": "2",
               "AUDITLOG_DELIVERY_INTERVAL_S": "0.5"}  # fmt: skip
        self.service = ServiceProcess(es_url, prefix, ADMIN_KEY, workdir, env)
        self.service.start()
        self.keys = {a.id: create_account_key(self.service, a.id, a.name, a.timezone)
                     for a in ACCOUNTS}  # fmt: skip
        admin = self.service.admin()
        try:
            scopes = ["destinations", "read"]
            self.managers = {a.id: str(admin.post_json("/v1/admin/keys", {
                "account_id": a.id, "scopes": scopes, "name": "streaming"})["key"])
                for a in ACCOUNTS}  # fmt: skip
        finally:
            admin.close()

    def _client(self, account_id: str) -> HttpClient:
        headers = {"Authorization": f"Bearer {self.managers[account_id]}"}
        return HttpClient(self.service.url, headers)

    def add(self, account_id: str, body: dict[str, Any]) -> str:
        client = self._client(account_id)
        try:
            return str(client.post_json("/v1/destinations", body)["id"])
        finally:
            client.close()

    def behind(self, account_id: str, only: str | None = None) -> int:
        """Log positions the account's destinations (or ``only``) have not acknowledged yet."""
        client = self._client(account_id)
        try:
            found = client.request("GET", "/v1/destinations").json()["destinations"]
        finally:
            client.close()
        return sum(int(d["lag"]["entries"]) for d in found if only in (None, d["id"]))

    def sealed(self, account_id: str) -> int:
        client = self._client(account_id)
        try:
            reply = client.request("GET", "/v1/integrity/head")
            return int(reply.json()["tree_size"]) if reply.status == 200 else 0
        finally:
            client.close()

    def settle(self) -> dict[str, int]:
        """Wait until sealing is idle (no change for 3 s); each account's sealed size."""
        last: dict[str, int] = {}
        stable_since = time.monotonic()
        while time.monotonic() - stable_since < 3:
            now = {a.id: self.sealed(a.id) for a in ACCOUNTS}
            if now != last:
                last, stable_since = now, time.monotonic()
            time.sleep(0.25)
        return last

    def until(self, done: dict[str, int], only: dict[str, str] | None = None) -> float:
        """Wait until each account's log holds ``done`` entries and its destinations (or the
        one ``only`` names) acknowledged all of them; the monotonic time it happened."""
        deadline = time.monotonic() + WAIT_S
        while True:
            if all(self.sealed(a) >= n and self.behind(a, (only or {}).get(a)) == 0
                   for a, n in done.items() if only is None or a in only):  # fmt: skip
                return time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the destinations did not catch up in {WAIT_S:.0f} s")
            time.sleep(0.25)


def _webhook(url: str, start: str | int = "now") -> dict[str, Any]:
    return {"name": "bench webhook", "kind": "webhook", "url": f"{url}/hook",
            "secrets": {"secret": SECRET}, "start": start}  # fmt: skip


def _syslog(port: int, start: str | int = "now") -> dict[str, Any]:
    return {"name": "bench syslog", "kind": "syslog", "url": f"tcp://127.0.0.1:{port}",
            "start": start}  # fmt: skip


SIDES = {
    "without": "without destinations",
    "webhook": "with one destination: the main account's webhook",
    "syslog": "with one destination: the main account's syslog",
    "all": "with four destinations: every account's webhook and the main account's syslog",
}
"""Each round ingests the same entries once per side (the issue's target is about one
destination of each kind; four is the heavier case, with the backfills)."""


def _round(es_url: str, prefix: str, workdir: Path, data: IngestData, engine_pid: int,
           side: str, receivers: tuple[Sink, Rsyslog]) -> dict[str, Any]:  # fmt: skip
    deployment = Deployment(es_url, prefix, workdir)
    try:
        sink, rsyslog = receivers
        streamed = [a.id for a in ACCOUNTS] if side == "all" else [MAIN_ACCOUNT.id]
        if side in ("webhook", "all"):
            for account_id in streamed:
                deployment.add(account_id, _webhook(sink.url))
        if side in ("syslog", "all"):
            deployment.add(MAIN_ACCOUNT.id, _syslog(rsyslog.tcp_port))
        before = deployment.settle()
        started = time.monotonic()
        figures = complete(ingest_service(deployment.service.url, deployment.keys, data,
                                          deployment.service.pid, engine_pid),
                           SIDES[side])  # fmt: skip
        last_ack = time.monotonic()
        if side == "without":
            return figures
        done = {a: before[a] + data.counts.get(a, 0) for a in streamed}
        caught_up = deployment.until(done)
        figures["delivered_all_after_last_write_s"] = round(caught_up - last_ack, 2)
        figures["delivery_entries_per_s"] = round(
            sum(data.counts.get(a, 0) for a in streamed) / (caught_up - started), 1
        )
        if side == "all":
            figures["backfill"] = _backfills(deployment, receivers, done)
        return figures
    finally:
        deployment.service.stop()


def _backfills(deployment: Deployment, receivers: tuple[Sink, Rsyslog],
               done: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    sink, rsyslog = receivers
    main = MAIN_ACCOUNT.id
    size = deployment.settle()[main]
    found: dict[str, Any] = {}
    for kind, body in (
        ("webhook", _webhook(sink.url, 0)),
        ("syslog", _syslog(rsyslog.tcp_port, 0)),
    ):
        started = time.monotonic()
        destination = deployment.add(main, {**body, "name": f"bench backfill {kind}"})
        finished = deployment.until({main: size}, {main: destination})
        seconds = finished - started
        found[kind] = {"entries": size, "seconds": round(seconds, 2),
                       "entries_per_s": round(size / seconds, 1)}  # fmt: skip
        log(f"  backfill {kind}: {size:,} entries in {seconds:.1f} s")
    return found


def _median(values: list[float]) -> float:
    ordered, middle = sorted(values), len(values) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.streaming_bench", description=__doc__)
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench/results/streaming.json"))
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="auditlog-streaming-bench-"))
    engine = EngineInstance(workdir / "engine")
    results: dict[str, Any] = {"command": " ".join(["python -m bench.streaming_bench",
                                                     *sys.argv[1:]])}  # fmt: skip
    (workdir / "rsyslog").mkdir()
    # what rsyslog receives goes nowhere: writing it (hundreds of MB a round) to the disk the
    # engine syncs its writes to would be the receiver's cost, not the service's
    rsyslog = Rsyslog(workdir / "rsyslog", make_tls_files(workdir / "rsyslog"), Path(os.devnull))
    sink: Sink | None = None
    try:
        status = engine.start(heap=HEAP)
        assert status.url is not None and status.pid is not None
        results["machine"] = machine_info(status.version)
        rsyslog.start()
        sink = Sink(workdir)
        es = Elasticsearch(status.url, request_timeout=300)
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        templates = load_settings(env_file=None).templates_dir
        data = build_bodies(args.entries, end, IndexNames("sbench"), templates)
        warm = IngestData(data.bodies[::5], [], {})
        for body in warm.bodies:
            warm.counts[body.account_id] = warm.counts.get(body.account_id, 0) + body.entries
        rounds: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        order = list(SIDES)
        for r in range(0, args.rounds + 1):  # round 0 warms the engine and the service up
            turn = order[r % len(order) :] + order[: r % len(order)]  # cancels a drift
            for side in turn if r else ("all", "without"):
                prefix = f"sb{r}{side[0]}"
                batch = warm if r == 0 else data
                log(f"round {r or 'warm-up'}: ingest {batch.total:,} entries {SIDES[side]}")
                figures = _round(status.url, prefix, workdir, batch, status.pid, side,
                                 (sink, rsyslog))  # fmt: skip
                log(f"  {figures['entries_per_s']:,.0f} entries/s"
                    + (f", all delivered {figures['delivered_all_after_last_write_s']} s after"
                       " the last write" if side != "without" else ""))  # fmt: skip
                if r:
                    rounds[side].append(figures)
                delete_indices(es, prefix)
        rate = {side: _median([f["entries_per_s"] for f in rounds[side]]) for side in SIDES}
        backfill = {kind: _median([f["backfill"][kind]["entries_per_s"] for f in rounds["all"]])
                    for kind in ("webhook", "syslog")}  # fmt: skip
        paired = {side: _median([w["entries_per_s"] / o["entries_per_s"]
                                 for w, o in zip(rounds[side], rounds["without"], strict=True)])
                  for side in SIDES if side != "without"}  # fmt: skip
        results.update({
            "entries": data.total,
            "ingest": rounds,
            "ingest_entries_per_s": rate,
            "ingest_ratio_vs_without": {side: round(rate[side] / rate["without"], 3)
                                        for side in SIDES if side != "without"},
            "ingest_ratio_vs_without_same_round": {k: round(v, 3) for k, v in paired.items()},
            "backfill_entries_per_s": backfill,
            "backfill_ratio_vs_ingest": {k: round(v / rate["all"], 3)
                                         for k, v in backfill.items()},
            "delivered_all_after_last_write_s": {
                side: _median([f["delivered_all_after_last_write_s"] for f in rounds[side]])
                for side in SIDES if side != "without"},
            "receivers": sink.counts(),
        })  # fmt: skip
    finally:
        if sink is not None:
            sink.stop()
        rsyslog.stop()
        engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    shown = ("ingest_entries_per_s", "ingest_ratio_vs_without",
             "ingest_ratio_vs_without_same_round", "backfill_entries_per_s",
             "backfill_ratio_vs_ingest", "delivered_all_after_last_write_s")  # fmt: skip
    print(json.dumps({k: results[k] for k in shown}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
