"""Measuring: resident memory sampled from ``/proc``, percentiles, and the machine we ran on."""

from __future__ import annotations

import os
import platform
import threading
import time
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

SAMPLE_INTERVAL_S = 0.05


def family(pid: int) -> list[int]:
    """``pid`` and every process below it (a service run with ``--workers`` is a supervisor and
    its worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
            children.setdefault(parent, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, ()))
    return out


def rss_bytes(pid: int) -> int:
    """``VmRSS`` of ``pid`` in bytes (0 once the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples a process's RSS (with ``tree``, the sum over the processes below it as they are
    when the block starts: a service's workers) every 50 ms in a thread; ``peak`` is the largest
    sample seen."""

    def __init__(self, pid: int, interval_s: float = SAMPLE_INTERVAL_S, tree: bool = False) -> None:
        self.pid, self.interval_s, self.tree = pid, interval_s, tree
        self.members = [pid]
        self.before = self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self.samples += 1
            self._stop.wait(self.interval_s)

    def _rss(self) -> int:
        return sum(rss_bytes(member) for member in self.members)

    def __enter__(self) -> RssSampler:
        if self.tree:
            self.members = family(self.pid)  # once: listing /proc every sample costs CPU
        self.before = self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def peak_mb(self) -> float:
        return self.peak / 1e6

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.before) / 1e6


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """User + system CPU seconds of ``pid`` so far, all its threads (0 once it is gone); with
    ``tree``, of the processes below it too."""
    if tree:
        return sum(cpu_seconds(member) for member in family(pid))
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each of some processes spent during a ``with`` block."""

    def __init__(self, pids: dict[str, int], trees: frozenset[str] = frozenset()) -> None:
        self.pids, self.trees = pids, trees
        """``trees``: the names whose processes below them count too."""
        self.seconds: dict[str, float] = {}
        self._start: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._start = {name: self._cpu(name) for name in self.pids}
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = {name: round(self._cpu(name) - self._start[name], 2) for name in self.pids}

    def _cpu(self, name: str) -> float:
        return cpu_seconds(self.pids[name], name in self.trees)


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Stopwatch:
    """Wall-clock seconds of a ``with`` block."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _packages() -> dict[str, str | None]:
    """Versions of what sets the service's speed; None when not installed."""
    out: dict[str, str | None] = {}
    for name in ("uvicorn", "starlette", "elasticsearch", "pandas", "openpyxl", "uvloop",
                 "httptools", "lxml", "orjson"):  # fmt: skip
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info(engine_version: str | None) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "memory_gb": _mem_total_gb(),
        "cpu_model": _cpu_model(),
        "engine_version": engine_version,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": _packages(),
    }


def median_of(figures: list[dict[str, Any]], count: str = "rows") -> dict[str, Any]:
    """The figures of the median run (by seconds; the slower middle one of an even number), with
    every run's seconds in the order they ran, the sums over every run (seconds, ``count``, CPU)
    and the highest memory figures of them all; every run must have produced the same ``count``."""
    in_order = [f["seconds"] for f in figures]
    figures = sorted(figures, key=lambda f: float(f["seconds"]))
    counts = {(f[count], f.get("header_total")) for f in figures}
    if len(counts) > 1:
        raise RuntimeError(f"runs of the same measure produced different {count}: {counts}")
    chosen = dict(figures[len(figures) // 2])
    if "cpu_s" in chosen:  # CPU per run is a few clock ticks: the sums over every run say more
        chosen["all_runs"] = {
            "seconds": round(sum(float(f["seconds"]) for f in figures), 3),
            count: sum(int(f[count]) for f in figures),
            "cpu_s": {name: round(sum(f["cpu_s"][name] for f in figures), 2)
                      for name in chosen["cpu_s"]},
        }  # fmt: skip
    if len(figures) > 1:
        chosen["runs_s"] = in_order  # in the order they ran
        for memory in ("peak_rss_mb", "rss_delta_mb", "service_peak_rss_mb"):
            if memory in chosen:
                chosen[memory] = max(f[memory] for f in figures)
    return chosen
