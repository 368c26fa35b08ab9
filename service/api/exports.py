"""Exports: ``GET /v1/export`` streams the filtered view; ``/v1/exports`` runs it as a job.

Both take the filters of ``/v1/entries`` plus ``format`` (csv, xlsx, ndjson), ``order`` and
``bom`` (``true``: a CSV file starts with a UTF-8 byte-order mark; default ``false``). Every
export is recorded as an ``audit`` entry of the account (who, format, filters, frozen range, rows)
and has a signed manifest at ``/v1/exports/<id>/manifest``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.actions.delivery import job_file_response, start_export_job, stream_export
from service.actions.manifests import stored_manifest
from service.errors import ServiceError, bad_request
from service.export.jobs import public
from service.export.stream import ExportPlan, plan_export
from service.export.writers import WRITERS
from service.runtime import runtime_of
from service.search.jobs import JobStore
from service.web.auth import require
from service.web.bodies import read_json_object
from service.web.query_string import REPEATABLE
from service.web.view_request import EXPORT_PARAMS, order_of, query_params, read_request


def _format_and_order(params: dict[str, list[str]]) -> tuple[str, str]:
    fmt = params.get("format", ["csv"])[-1]
    if fmt not in WRITERS:
        raise bad_request(f"format must be one of {', '.join(WRITERS)}", field="format")
    return fmt, order_of(params)


BOM_VALUES = {"true": True, "false": False}


def _bom(params: dict[str, list[str]]) -> bool:
    value = params.get("bom", ["false"])[-1]
    if value not in BOM_VALUES:
        raise bad_request("bom must be true or false", field="bom")
    return BOM_VALUES[value]


async def _plan(
    request: Request, fmt: str, order: str, filters: Any, params: dict[str, list[str]]
) -> ExportPlan:
    runtime = runtime_of(request)
    return await plan_export(
        runtime.es, runtime.names, filters, fmt, order, runtime.settings.templates_dir,
        sealing=runtime.settings.sealing, bom=_bom(params),
    )  # fmt: skip


async def get_export(request: Request) -> Response:
    principal, filters, params = await read_request(request, "export", EXPORT_PARAMS)
    fmt, order = _format_and_order(params)
    plan = await _plan(request, fmt, order, filters, params)
    return await stream_export(runtime_of(request), principal, plan, "download")


async def _job_params(request: Request) -> dict[str, list[str]]:
    """Query parameters, merged with a JSON object body of the same names (optional)."""
    params = query_params(request, EXPORT_PARAMS)
    body = await read_json_object(request, 64 * 1024)
    if body is not None:
        for name, value in body.items():
            if name not in EXPORT_PARAMS:
                raise bad_request(f"unknown parameter '{name}'", field=name)
            if name == "bom" and isinstance(value, bool):  # JSON's own true and false
                value = "true" if value else "false"
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str) for v in values):
                message = f"{name} must be a string or a non-empty array of strings"
                raise bad_request(message, field=name)
            given = params.setdefault(name, [])
            if name not in REPEATABLE and len(given) + len(values) > 1:  # as in a query string
                raise bad_request(f"{name} is given more than once (in the query and the body, "
                                  "or as an array); it takes one value", field=name)  # fmt: skip
            given.extend(values)
    return params


async def post_export_job(request: Request) -> Response:
    principal = await require(request, "export")
    params = await _job_params(request)
    _, filters, _ = await read_request(request, "export", EXPORT_PARAMS, principal, params)
    fmt, order = _format_and_order(params)
    plan = await _plan(request, fmt, order, filters, params)
    job = await start_export_job(runtime_of(request), principal, plan, "export job")
    return JSONResponse(
        public(job), status_code=202, headers={"Location": f"/v1/exports/{job['id']}"}
    )


async def _own_job(request: Request) -> dict[str, Any]:
    """The job, if it belongs to the caller's account; the same 404 otherwise."""
    principal = await require(request, "export")
    runtime = runtime_of(request)
    job = await JobStore(runtime.es, runtime.names).get(request.path_params["job_id"])
    not_found = ServiceError(404, "not_found", "no such export job")
    if job is None:
        raise not_found
    if principal.account_id is not None and job["account_id"] != principal.account_id:
        raise not_found
    return job


async def get_export_job(request: Request) -> Response:
    return JSONResponse(public(await _own_job(request)))


async def download_export_job(request: Request) -> Response:
    return await job_file_response(runtime_of(request), await _own_job(request))


async def get_export_manifest(request: Request) -> Response:
    """The signed manifest of an export (a download's or a job's): 202 while the export is
    being finished and its rows sealed, 409 if it did not complete."""
    principal = await require(request, "export")
    manifest = await stored_manifest(
        runtime_of(request), request.path_params["export_id"], principal.account_id
    )
    if manifest is None:
        body = {"status": "pending", "message": "the export is being finished and its rows "
                "sealed; ask again in a few seconds"}  # fmt: skip
        return JSONResponse(body, status_code=202, headers={"Retry-After": "2"})
    filename = f"{manifest['filename']}.manifest.json"
    return JSONResponse(
        manifest, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
