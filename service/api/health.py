"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from service.actions.destination_lag import instant, metrics_figures, seconds_waiting
from service.errors import EngineUnavailable, ServiceError
from service.runtime import Runtime, runtime_of
from service.search.client import cluster_status
from service.web.auth import authenticate


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 when the engine answers and setup is current; 503 otherwise, saying why."""
    runtime = runtime_of(request)
    try:
        status = await cluster_status(runtime.es)
    except EngineUnavailable as e:
        body = {
            "status": "unavailable",
            "engine": "unreachable",
            "detail": type(e.__cause__).__name__,
        }
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    if not runtime.setup_done:
        body = {"status": "unavailable", "engine": status, "setup": "pending"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready", "engine": status, "setup": "current"})


async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    lines = [
        "# HELP auditlog_events_total Counted service events by kind.",
        "# TYPE auditlog_events_total counter",
    ]
    for name, value in sorted(runtime.counters.items()):
        lines.append(f'auditlog_events_total{{kind="{name}"}} {value}')
    lines.append("# TYPE auditlog_ready gauge")
    lines.append(f"auditlog_ready {1 if runtime.setup_done else 0}")
    streaming = runtime.setup_done and runtime.settings.destination_key is not None
    if streaming and await _platform_admin(request):  # they name accounts: not for anyone
        lines += await _streaming_lines(runtime)
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


FIGURES_TIMEOUT_S = 2.0
"""How long a scrape waits for the streaming figures (the engine's) before it goes without."""
STREAMING_HELP = (
    ("auditlog_destinations", "gauge", "Destinations of the deployment by status."),
    ("auditlog_destination_lag_entries", "gauge",
     "Log positions past a destination's acknowledged one (destinations this process delivers)."),
    ("auditlog_destination_lag_seconds", "gauge",
     "How long the oldest entry a destination has not acknowledged has waited."),
    ("auditlog_destination_delivered_entries_total", "counter",
     "Entries a destination acknowledged (all instances' deliveries)."),
    ("auditlog_destination_failed_batches_total", "counter",
     "Batches a destination failed to acknowledge."),
    ("auditlog_destination_last_success_timestamp_seconds", "gauge",
     "When a destination last acknowledged a batch."),
)  # fmt: skip


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def _platform_admin(request: Request) -> bool:
    """Whether the request carries a platform key with the ``admin`` scope (the streaming
    figures name accounts and destinations); without a key, or with another one, it gets the
    counters only (never a 401: a scraper without a key keeps working)."""
    if not request.headers.get("authorization"):
        return False
    try:
        principal = await authenticate(request)
    except ServiceError:
        return False
    return principal.is_platform and "admin" in principal.scopes


async def _streaming_lines(runtime: Runtime) -> list[str]:
    """Per destination this process delivers to (``destination``, ``account``, ``kind``
    labels); a paused or disabled destination is delivered by none: see its status count."""
    try:
        figures = await asyncio.wait_for(metrics_figures(runtime), FIGURES_TIMEOUT_S)
    except (ServiceError, TimeoutError):  # the engine: the other figures still go out
        return ["# the streaming figures are missing: the engine did not answer in time"]
    lines: list[str] = []
    for name, kind, text in STREAMING_HELP:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
    for status, count in sorted(figures.statuses.items()):
        lines.append(f'auditlog_destinations{{status="{_label(status)}"}} {count}')
    now = datetime.now(UTC)
    for destination, lag in figures.delivering:
        labels = (f'destination="{_label(destination["id"])}",'
                  f'account="{_label(destination["account_id"])}",'
                  f'kind="{_label(destination["kind"])}"')  # fmt: skip
        health = destination.get("health") or {}
        lines.append(f"auditlog_destination_lag_entries{{{labels}}} {lag.entries}")
        seconds = seconds_waiting(lag, now)
        if seconds is not None:
            lines.append(f"auditlog_destination_lag_seconds{{{labels}}} {seconds:.1f}")
        lines.append(f"auditlog_destination_delivered_entries_total{{{labels}}} "
                     f"{int(health.get('delivered') or 0)}")  # fmt: skip
        lines.append(f"auditlog_destination_failed_batches_total{{{labels}}} "
                     f"{int(health.get('failed') or 0)}")  # fmt: skip
        success = instant(health.get("last_success_at"))
        if success is not None:
            lines.append(f"auditlog_destination_last_success_timestamp_seconds{{{labels}}} "
                         f"{success.timestamp():.3f}")  # fmt: skip
    return lines
