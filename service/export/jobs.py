"""Asynchronous export jobs: run in the service, progress in the engine, files on disk.

A job writes ``<AUDITLOG_EXPORT_DIR>/<job id>.<ext>``, reports rows done and rows total every
second, and when done its size and SHA-256. Files expire after ``AUDITLOG_EXPORT_TTL_H`` hours
(then the job reads ``expired`` and its file is deleted). A running job refreshes
``updated_at`` with every report; one silent for longer than :data:`STALE_AFTER_S` — its service
was restarted or died — reads ``failed``, never stuck as running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from service.errors import EngineUnavailable, ServiceError
from service.export.stream import ExportPlan, export_bytes
from service.search.jobs import JobStore, now_text

log = logging.getLogger("auditlog")
STALE_AFTER_S = 120.0
PROGRESS_EVERY_S = 1.0
INTERRUPTED = "interrupted: the service stopped while the export was running; start it again"


def new_job(plan: ExportPlan, principal_key: str, ttl_h: float) -> dict[str, Any]:
    created = datetime.now(UTC)
    return {
        "id": f"exp_{secrets.token_hex(12)}",
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


def job_file(export_dir: Path, job: dict[str, Any]) -> Path:
    return export_dir / f"{job['id']}.{job['format']}"


async def run_job(
    store: JobStore,
    plan: ExportPlan,
    job: dict[str, Any],
    export_dir: Path,
    when_read: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Write the job's file; its outcome is the job's status (``done`` or ``failed``).
    ``when_read`` (the export's audit entry) runs once every entry is read, and the job is done
    only when it succeeded: its failure fails the job."""
    export_dir.mkdir(parents=True, exist_ok=True)
    target = job_file(export_dir, job)
    partial = target.with_suffix(target.suffix + ".part")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as out:
            reported = time.monotonic()
            async for chunk in export_bytes(plan, when_read):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if time.monotonic() - reported >= PROGRESS_EVERY_S:
                    reported = time.monotonic()
                    await store.update(job["id"], {"rows_done": plan.rows})
        partial.replace(target)
        await store.update(
            job["id"],
            {"status": "done", "rows_done": plan.rows, "size": size, "sha256": digest.hexdigest()},
        )
    except asyncio.CancelledError:
        partial.unlink(missing_ok=True)
        with contextlib.suppress(EngineUnavailable):
            await store.update(job["id"], {"status": "failed", "error": INTERRUPTED})
        raise
    except (OSError, ServiceError) as e:
        partial.unlink(missing_ok=True)
        log.error("export job %s failed: %s", job["id"], e)
        try:
            await store.update(job["id"], {"status": "failed", "error": _reason(e)})
        except EngineUnavailable:
            log.error("could not record the failure of export job %s", job["id"])


def _reason(error: Exception) -> str:
    if isinstance(error, ServiceError):
        return error.message
    return f"{type(error).__name__}: {error}"


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


async def sweep_jobs(store: JobStore, export_dir: Path) -> int:
    """Persist interrupted and expired states and delete expired files; return how many changed."""
    changed = 0
    for job in await store.unfinished_or_expired(now_text()):
        seen = effective(job)
        if seen["status"] != job["status"]:
            await store.update(job["id"], {"status": seen["status"], "error": seen.get("error")})
            changed += 1
        if seen["status"] == "expired":
            job_file(export_dir, job).unlink(missing_ok=True)
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
    return out
