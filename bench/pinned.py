"""Ingest again with the engine and the service on separate CPUs: where the service's own CPU goes.

On a machine where the engine's ``_bulk`` alone keeps every CPU busy, any CPU the service spends
is taken from the engine, so the shared-CPU ratio measures the machine as much as the service.
This run pins the engine to every CPU but the last and a second service process (its own index
prefix) to the last CPU, then sends a fifth of the bodies (every fifth one, so every category and
month is in it) raw and through that service, the two taking turns for as many rounds as the
shared-CPU measure (a fresh service process each round). Both prefixes are deleted after each
run and the engine gets all CPUs back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.ingest_bench import IngestData, complete, ingest_fresh_service, ingest_raw
from bench.measure import median_of

PIN_PREFIX = "benchpin"
SHARE = 5


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` (threads started later inherit their creator's CPUs)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def ingest_on_separate_cpus(
    es_url: str, engine_pid: int, data: IngestData, admin_key: str, workdir: Path,
    clear: Callable[[str], None], raw_prefix: str, rounds: int,
) -> dict[str, Any]:  # fmt: skip
    """``rounds`` runs of each side taking turns, raw first, each side's median run reported."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return {"skipped": "one CPU only"}
    engine_cpus, service_cpus = set(cpus[:-1]), {cpus[-1]}
    bodies = data.bodies[::SHARE]
    subset = IngestData(bodies, [], {"all": sum(b.entries for b in bodies)})
    done: dict[str, list[dict[str, Any]]] = {"raw": [], "service": []}
    try:
        pin(engine_pid, engine_cpus)
        for _ in range(rounds):
            done["raw"].append(complete(ingest_raw(es_url, subset, engine_pid), "raw _bulk"))
            clear(raw_prefix)
            done["service"].append(ingest_fresh_service(
                es_url, PIN_PREFIX, admin_key, workdir, subset, engine_pid, clear,
                started=lambda pid: pin(pid, service_cpus)))  # fmt: skip
    finally:
        pin(engine_pid, set(cpus))
    return {"engine_cpus": sorted(engine_cpus), "service_cpus": sorted(service_cpus),
            "rounds": rounds,
            **{side: median_of(figures, "entries") for side, figures in done.items()}}  # fmt: skip
