"""Asynchronous export jobs: run in the service, progress and files in the engine.

A job writes its file into the engine (:mod:`service.search.export_files`), so any instance
serves its download; it reports rows done and rows total every second, and when done its size,
SHA-256 and number of chunks. A file larger than ``AUDITLOG_EXPORT_JOB_MAX_MB``, or one that would
take the account's unexpired files past ``AUDITLOG_EXPORT_ACCOUNT_MAX_MB``, fails the job with
that reason. Files expire after ``AUDITLOG_EXPORT_TTL_H`` hours
(then the job reads ``expired`` and its file is deleted). A running job refreshes
``updated_at`` with every report; one silent for longer than :data:`STALE_AFTER_S` — its service
was restarted or died — reads ``failed``, never stuck as running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from service.errors import EngineUnavailable, ServiceError
from service.export.stream import ExportPlan, export_bytes
from service.search.export_files import CHUNK_BYTES, ExportFiles
from service.search.jobs import JobStore, now_text

log = logging.getLogger("auditlog")
STALE_AFTER_S = 120.0
DOWNLOAD_GRACE_S = 3600.0
"""Chunks of an expired job stay this long past its expiry, for downloads started before it."""
PROGRESS_EVERY_S = 1.0
INTERRUPTED = "interrupted: the service stopped while the export was running; start it again"


def new_job(plan: ExportPlan, principal_key: str, ttl_h: float) -> dict[str, Any]:
    created = datetime.now(UTC)
    return {
        "id": plan.export_id,
        "account_id": plan.filters.account_id,
        "status": "running",
        "format": plan.fmt,
        "filename": plan.filename(),
        "filters": plan.filters.describe(),
        "rows_done": 0,
        "rows_total": plan.total,
        "created_by": principal_key,
        "created_at": now_text(),
        "updated_at": now_text(),
        "expires_at": (created + timedelta(hours=ttl_h)).isoformat().replace("+00:00", "Z"),
    }


@dataclass(frozen=True)
class Limits:
    """How much a job, and all of an account's unexpired files together, may store."""

    job_bytes: int
    account_bytes: int


def _too_large(limits: Limits, used: int) -> ServiceError:
    if used > limits.account_bytes:
        mb = limits.account_bytes // 2**20
        message = (
            f"the account's unexpired export files would exceed {mb} MB "
            "(AUDITLOG_EXPORT_ACCOUNT_MAX_MB); wait for older ones to expire, narrow "
            "the filters, or download with GET /v1/export"
        )
    else:
        mb = limits.job_bytes // 2**20
        message = (
            f"the file would exceed {mb} MB (AUDITLOG_EXPORT_JOB_MAX_MB); narrow the "
            "filters or download with GET /v1/export"
        )
    return ServiceError(413, "too_large", message)


async def run_job(
    store: JobStore,
    files: ExportFiles,
    plan: ExportPlan,
    job: dict[str, Any],
    limits: Limits,
    when_read: Callable[[], Coroutine[Any, Any, None]] | None = None,
    when_written: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Write the job's file into the engine; its outcome is the job's status (``done`` or
    ``failed``). ``when_read`` (the export's audit entry) runs once every entry is read,
    ``when_written`` (its manifest) once the whole file is stored, and the job is done only when
    both succeeded: a failure fails the job."""
    digest, size, stored, pending = hashlib.sha256(), 0, 0, bytearray()
    heartbeat = asyncio.create_task(_heartbeat(store, plan, job["id"]))
    try:
        used = await files.stored_bytes(job["account_id"], now_text())
        async for chunk in export_bytes(plan, when_read):
            digest.update(chunk)
            size += len(chunk)
            if size > limits.job_bytes or used + size > limits.account_bytes:
                raise _too_large(limits, used + size)
            pending += chunk
            while len(pending) >= CHUNK_BYTES:
                # the other jobs of the account store meanwhile too: count them again
                used = (
                    await files.stored_bytes(job["account_id"], now_text()) - stored * CHUNK_BYTES
                )
                if used + size > limits.account_bytes:
                    raise _too_large(limits, used + size)
                await files.put(
                    job["id"],
                    job["account_id"],
                    stored,
                    bytes(pending[:CHUNK_BYTES]),
                    job["expires_at"],
                )
                del pending[:CHUNK_BYTES]
                stored += 1
        if pending or not stored:
            await files.put(job["id"], job["account_id"], stored, bytes(pending), job["expires_at"])
            stored += 1
        if when_written is not None:
            await when_written()
        done = {
            "status": "done",
            "rows_done": plan.rows,
            "size": size,
            "sha256": digest.hexdigest(),
            "chunks": stored,
        }
        await _stopped(heartbeat)  # its last report must not land on the finished job
        if not await store.finish(job["id"], done):  # the sweeper took it for dead meanwhile
            log.error("export job %s finished after it was declared failed", job["id"])
            await files.delete(job["id"])
    except asyncio.CancelledError:
        with contextlib.suppress(EngineUnavailable):
            await files.delete(job["id"])  # first: a job that reads failed holds no file
            await store.update(job["id"], {"status": "failed", "error": INTERRUPTED})
        raise
    except ServiceError as e:
        log.error("export job %s failed: %s", job["id"], e)
        try:
            await files.delete(job["id"])  # first: a job that reads failed holds no file
            await store.update(job["id"], {"status": "failed", "error": _reason(e)})
        except EngineUnavailable:
            log.error("could not record the failure of export job %s", job["id"])
    finally:
        heartbeat.cancel()


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _heartbeat(store: JobStore, plan: ExportPlan, job_id: str) -> None:
    """Report the rows read every second, whether or not bytes are coming out (a job waiting
    for its audit entry is alive: it must not read as interrupted)."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        with contextlib.suppress(EngineUnavailable):
            await store.update(job_id, {"rows_done": plan.rows})


def _reason(error: ServiceError) -> str:
    return error.message


def effective(job: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The job as clients see it: a silent running job is failed, an old finished one expired."""
    now = now or datetime.now(UTC)
    updated = datetime.fromisoformat(job["updated_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(job["expires_at"].replace("Z", "+00:00"))
    if job["status"] in ("queued", "running") and (now - updated).total_seconds() > STALE_AFTER_S:
        return {**job, "status": "failed", "error": INTERRUPTED}
    if job["status"] == "done" and now >= expires:
        return {**job, "status": "expired"}
    return job


async def sweep_jobs(store: JobStore, files: ExportFiles) -> int:
    """Persist interrupted and expired states and delete expired files; return how many changed."""
    changed = 0
    for job in await store.unfinished_or_expired(now_text()):
        seen = effective(job)
        if seen["status"] != job["status"]:
            await store.update(job["id"], {"status": seen["status"], "error": seen.get("error")})
            changed += 1
        if seen["status"] == "failed":
            await files.delete(job["id"])
    grace = datetime.now(UTC) - timedelta(seconds=DOWNLOAD_GRACE_S)  # downloads under way finish
    await files.delete_expired(grace.isoformat().replace("+00:00", "Z"))
    return changed


def public(job: dict[str, Any]) -> dict[str, Any]:
    shown = effective(job)
    keys = (
        "id",
        "account_id",
        "status",
        "format",
        "filename",
        "filters",
        "rows_done",
        "rows_total",
        "size",
        "sha256",
        "error",
        "created_at",
        "updated_at",
        "expires_at",
    )
    out = {k: shown.get(k) for k in keys}
    if shown["status"] == "done":
        out["download"] = f"/v1/exports/{job['id']}/download"
        out["manifest"] = f"/v1/exports/{job['id']}/manifest"
    return out
