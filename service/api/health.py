"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from service.errors import EngineUnavailable
from service.runtime import runtime_of
from service.search.client import cluster_status


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
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
