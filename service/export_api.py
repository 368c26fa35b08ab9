"""Exports: ``GET /v1/export`` streams the filtered view; ``/v1/exports`` runs it as a job.

Both take the filters of ``/v1/entries`` plus ``format`` (csv, xlsx, ndjson) and ``order``. Every
export is recorded as an ``audit`` entry of the account (who, format, filters, frozen range, rows).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, TransportError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from service import audit_trail
from service.auth import Principal, require
from service.bodies import read_json_object
from service.errors import ServiceError, bad_request, engine_unavailable
from service.export.jobs import job_file, new_job, public, run_job
from service.export.stream import ExportPlan, export_bytes, plan_export
from service.export.writers import WRITERS
from service.ingest_api import ingest_context
from service.runtime import Runtime, runtime_of
from service.search.filters import FILTER_PARAMS
from service.search.jobs import JobStore
from service.search_api import query_params, read_request

EXPORT_PARAMS = {*FILTER_PARAMS, "format", "order"}


def _format_and_order(params: dict[str, list[str]]) -> tuple[str, str]:
    fmt = params.get("format", ["csv"])[-1]
    if fmt not in WRITERS:
        raise bad_request(f"format must be one of {', '.join(WRITERS)}", field="format")
    order = params.get("order", ["desc"])[-1]
    if order not in ("asc", "desc"):
        raise bad_request("order must be asc or desc", field="order")
    return fmt, order


async def _plan(request: Request, fmt: str, order: str, filters: Any) -> ExportPlan:
    runtime = runtime_of(request)
    return await plan_export(
        runtime.es, runtime.names, filters, fmt, order, runtime.settings.templates_dir
    )


async def record_export(runtime: Runtime, principal: Principal, plan: ExportPlan, how: str) -> None:
    info = plan.info()
    await audit_trail.record(
        ingest_context(runtime), plan.filters.account_id, audit_trail.key_actor(principal.key_id),
        "export.completed",
        f"Exported {plan.read} entries as {plan.fmt.upper()} ({how}) from {info['from']} to "
        f"{info['to']}",
        {"target_type": "export", "target_name": plan.filename(), "format": plan.fmt,
         "rows": plan.read, "filters": info["filters"], "from": info["from"], "to": info["to"]},
    )  # fmt: skip


def stream_export(runtime: Runtime, principal: Principal, plan: ExportPlan, how: str) -> Response:
    """The file of ``plan`` as an attachment; its last bytes wait for the audit entry (written
    alongside the writing, as soon as every entry is read from the engine)."""

    async def record() -> None:
        await record_export(runtime, principal, plan, how)

    async def body() -> AsyncIterator[bytes]:
        async for chunk in export_bytes(plan, record):
            if chunk:
                yield chunk

    runtime.counters["exports"] += 1
    headers = {"Content-Disposition": f'attachment; filename="{plan.filename()}"',
               "X-Total-Count": str(plan.total)}  # fmt: skip
    return StreamingResponse(body(), media_type=plan.writer.media_type, headers=headers)


async def start_export_job(
    runtime: Runtime, principal: Principal, plan: ExportPlan, how: str
) -> dict[str, Any]:
    """Record an export job of ``plan`` and run it in the background; return the job."""
    store = JobStore(runtime.es, runtime.names)
    job = new_job(plan, principal.key_id, runtime.settings.export_ttl_h)
    try:
        await store.create(job)
    except (ApiError, TransportError) as e:
        await plan.scan.close()
        raise engine_unavailable() from e

    async def record() -> None:
        await record_export(runtime, principal, plan, how)

    async def run() -> None:
        await run_job(store, plan, job, runtime.settings.export_dir, record)

    task = asyncio.create_task(run())
    runtime.tasks.add(task)
    task.add_done_callback(runtime.tasks.discard)
    runtime.counters["export_jobs"] += 1
    return job


async def get_export(request: Request) -> Response:
    principal, filters, params = await read_request(request, "export", EXPORT_PARAMS)
    fmt, order = _format_and_order(params)
    plan = await _plan(request, fmt, order, filters)
    return stream_export(runtime_of(request), principal, plan, "download")


async def _job_params(request: Request) -> dict[str, list[str]]:
    """Query parameters, merged with a JSON object body of the same names (optional)."""
    params = query_params(request, EXPORT_PARAMS)
    body = await read_json_object(request, 64 * 1024)
    if body is not None:
        for name, value in body.items():
            if name not in EXPORT_PARAMS:
                raise bad_request(f"unknown parameter '{name}'", field=name)
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) for v in values):
                raise bad_request(f"{name} must be a string or an array of strings", field=name)
            params.setdefault(name, []).extend(values)
    return params


async def post_export_job(request: Request) -> Response:
    principal = await require(request, "export")
    params = await _job_params(request)
    _, filters, _ = await read_request(request, "export", EXPORT_PARAMS, principal, params)
    fmt, order = _format_and_order(params)
    plan = await _plan(request, fmt, order, filters)
    job = await start_export_job(runtime_of(request), principal, plan, "export job")
    return JSONResponse(
        public(job), status_code=202, headers={"Location": f"/v1/exports/{job['id']}"}
    )


async def _own_job(request: Request) -> dict[str, Any]:
    """The job, if it belongs to the caller's account; the same 404 otherwise."""
    principal = await require(request, "export")
    runtime = runtime_of(request)
    try:
        job = await JobStore(runtime.es, runtime.names).get(request.path_params["job_id"])
    except (ApiError, TransportError) as e:
        raise engine_unavailable() from e
    not_found = ServiceError(404, "not_found", "no such export job")
    if job is None:
        raise not_found
    if principal.account_id is not None and job["account_id"] != principal.account_id:
        raise not_found
    return job


async def get_export_job(request: Request) -> Response:
    return JSONResponse(public(await _own_job(request)))


async def download_export_job(request: Request) -> Response:
    return job_file_response(runtime_of(request).settings.export_dir, await _own_job(request))


def job_file_response(export_dir: Path, stored: dict[str, Any]) -> Response:
    """The finished job's file; 409 while it runs or failed, 410 once it expired."""
    job = public(stored)
    if job["status"] == "expired":
        raise ServiceError(410, "expired", "this export has expired; start a new one")
    if job["status"] != "done":
        raise ServiceError(409, "not_ready", f"the export is {job['status']}")
    path = job_file(export_dir, job)
    if not path.exists():
        raise ServiceError(410, "expired", "this export's file is gone; start a new one")
    return FileResponse(path, media_type=WRITERS[job["format"]].media_type,
                        filename=job["filename"])  # fmt: skip
