"""Delivering an export: streamed as a download, or run as a job whose file is fetched later.

The API and the page both deliver exports here. Every export is recorded as an
``export.completed`` audit entry of the account before it is delivered as complete: a download's
last bytes and a job's ``done`` wait for it, and its failure cuts the download or fails the job.

Every export has a signed manifest (:mod:`service.actions.manifests`) at
``/v1/exports/<id>/manifest``: a download's is signed in the background once its last byte is
out (the response names it in ``Link`` and ``X-Export-Id``); a job is ``done`` only once its
manifest is signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response, StreamingResponse

from service.actions import audit_trail
from service.actions.keys import Principal
from service.actions.manifests import keep_pending, sign_export
from service.errors import EngineUnavailable, ServiceError
from service.export.in_words import filters_in_words, shortened, window_in_words
from service.export.jobs import Limits, new_job, public, run_job
from service.export.stream import ExportPlan, export_bytes, new_export_id
from service.export.writers import WRITERS
from service.runtime import Runtime
from service.search.export_files import ExportFiles, file_gone
from service.search.jobs import JobStore
from service.search.manifests import ManifestStore

log = logging.getLogger("auditlog")


async def record_export(runtime: Runtime, principal: Principal, plan: ExportPlan, how: str) -> None:
    """The export's ``export.completed`` entry: a message a person reads (:func:`export_message`),
    and the export's facts as metadata for programs (filters as given, UTC window, rows)."""
    info = plan.info()
    actor = principal.actor()
    await audit_trail.record(
        runtime.ingest,
        plan.filters.account_id,
        actor,
        "export.completed",
        export_message(actor["name"], plan, how),
        {
            "target_type": "export",
            "target_name": plan.filename(),
            "format": plan.fmt,
            "rows": plan.read,
            "filters": info["filters"],
            "from": info["from"],
            "to": info["to"],
            "export_id": plan.export_id,
            **({"minted_by_key": principal.key_id} if principal.viewer else {}),
        },
    )


MESSAGE_FILTERS_MAX = 2000
"""The most characters of filters in words an export's message holds (an entry's message is
at most 10,000; the metadata keeps every filter)."""


def export_message(who: str, plan: ExportPlan, how: str) -> str:
    """``Jane Doe exported 1,234 entries as CSV (download) from Nov 1, 2026 00:00 to Nov 8,
    2026 00:00 (Europe/Paris). Filters: Source: Webhook; Type: Error; Search: "timeout"``."""
    count = f"{plan.read:,} {'entry' if plan.read == 1 else 'entries'}"
    window = window_in_words(plan.filters.window, plan.filters.tz)
    filters = shortened(filters_in_words(plan.filters), MESSAGE_FILTERS_MAX)
    return f"{who} exported {count} as {plan.fmt.upper()} ({how}) from {window}. Filters: {filters}"


def manifest_path(export_id: str) -> str:
    return f"/v1/exports/{export_id}/manifest"


async def stream_export(
    runtime: Runtime, principal: Principal, plan: ExportPlan, how: str
) -> Response:
    """The file of ``plan`` as an attachment; its last bytes wait for the audit entry (written
    alongside the writing, as soon as every entry is read from the engine). Its manifest is
    pending until the last byte is out, then signed in the background."""
    account_id = plan.filters.account_id
    store = ManifestStore(runtime.es, runtime.names)
    try:
        while not await store.pending(plan.export_id, account_id):
            plan.export_id = new_export_id()  # a page's proposed id, used already
    except EngineUnavailable:
        await plan.scan.close()
        raise

    async def record() -> None:
        await record_export(runtime, principal, plan, how)

    async def finish(complete: bool) -> None:
        alive = asyncio.create_task(keep_pending(runtime, plan.export_id))
        try:
            if complete:
                await sign_export(runtime, plan)
            else:
                await store.incomplete(plan.export_id, account_id, "the download did not complete")
        except ServiceError as e:
            log.error("the manifest of export %s was not signed: %s", plan.export_id, e)
            with contextlib.suppress(ServiceError):
                await store.incomplete(plan.export_id, account_id, f"not signed: {e.message}")
        finally:
            alive.cancel()

    async def body() -> AsyncIterator[bytes]:
        complete = False
        alive = asyncio.create_task(keep_pending(runtime, plan.export_id))
        try:
            async for chunk in export_bytes(plan, record):
                if chunk:
                    yield chunk
            complete = True
        finally:
            alive.cancel()
            runtime.spawn(finish(complete))

    runtime.counters["exports"] += 1
    headers = {
        "Content-Disposition": f'attachment; filename="{plan.filename()}"',
        "X-Total-Count": str(plan.total),
        "X-Export-Id": plan.export_id,
        "Link": f'<{manifest_path(plan.export_id)}>; rel="describedby"',
    }
    return StreamingResponse(body(), media_type=plan.writer.media_type, headers=headers)


def export_limits(runtime: Runtime) -> Limits:
    settings = runtime.settings
    return Limits(settings.export_job_max_mb * 2**20, settings.export_account_max_mb * 2**20)


async def start_export_job(
    runtime: Runtime, principal: Principal, plan: ExportPlan, how: str
) -> dict[str, Any]:
    """Record an export job of ``plan`` and run it in the background; return the job."""
    store = JobStore(runtime.es, runtime.names)
    manifests = ManifestStore(runtime.es, runtime.names)
    try:
        while True:
            if await manifests.pending(plan.export_id, plan.filters.account_id):
                job = new_job(plan, principal.key_id, runtime.settings.export_ttl_h)
                if await store.create(job):
                    break
            plan.export_id = new_export_id()  # a page's proposed id, used already
    except EngineUnavailable:
        await plan.scan.close()
        raise

    async def record() -> None:
        await record_export(runtime, principal, plan, how)

    async def sign() -> None:
        await sign_export(runtime, plan)

    async def run() -> None:
        files = ExportFiles(runtime.es, runtime.names)
        alive = asyncio.create_task(keep_pending(runtime, job["id"]))
        try:
            await run_job(store, files, plan, job, export_limits(runtime), record, sign)
        finally:
            alive.cancel()
        stored = await store.get(job["id"])
        if stored is None or stored["status"] != "done":
            with contextlib.suppress(ServiceError):
                await manifests.incomplete(job["id"], job["account_id"], "the export job failed")

    runtime.spawn(run())
    runtime.counters["export_jobs"] += 1
    return job


async def job_file_response(runtime: Runtime, stored: dict[str, Any]) -> Response:
    """The finished job's file, from the engine (any instance serves any job); 409 while it runs
    or failed, 410 once it expired."""
    job = public(stored)
    if job["status"] == "expired":
        raise ServiceError(410, "expired", "this export has expired; start a new one")
    if job["status"] != "done":
        raise ServiceError(409, "not_ready", f"the export is {job['status']}")
    chunks = ExportFiles(runtime.es, runtime.names).read(job["id"], int(stored.get("chunks", 0)))
    first = await anext(chunks, None)  # a file already gone is a 410, not a cut download
    if first is None:
        raise file_gone()

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    headers = {
        "Content-Disposition": f'attachment; filename="{job["filename"]}"',
        "Content-Length": str(job["size"]),
    }
    return StreamingResponse(body(), media_type=WRITERS[job["format"]].media_type, headers=headers)
