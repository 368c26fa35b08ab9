"""Signing an export's manifest once its file is complete, and serving it.

The manifest's head must cover every exported row. A row that was still in the seal queue when the
export's point in time was opened is waited for (at most :func:`seal_wait_s`) unless a checkpoint
covers it already (a resent entry stays queued until the write deadline); every other row
visible to the export was under a checkpoint already. The head is then the account's latest
signed checkpoint. Rows still unsealed when the wait ends (sealing stopped, or off) are counted in
``rows_unsealed``, and with no head at all every row is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from service.errors import ServiceError
from service.export.stream import ExportPlan
from service.integrity.checkpoints import public
from service.integrity.manifests import VERSION, sign_manifest
from service.runtime import Runtime
from service.search.integrity_log import IntegrityLog
from service.search.jobs import now_text
from service.search.manifests import ManifestStore
from service.search.seal_queue import SealQueue

TOUCH_EVERY_S = 60.0
"""A running export marks its pending manifest alive this often."""
ABANDONED_AFTER = timedelta(minutes=5)
"""A pending manifest not marked alive for this long was abandoned (its service stopped)."""
PROOF_PAGE = 1000
"""Entry ids looked up in the log per search."""


def seal_wait_s(runtime: Runtime) -> float:
    """How long a manifest waits for its rows to be sealed: a minute, or ten seal intervals."""
    return max(60.0, 10 * runtime.settings.seal_interval_s)


async def _head_covering(runtime: Runtime, plan: ExportPlan) -> tuple[dict[str, Any] | None, int]:
    """The signed head under which the rows are sealed, and how many rows it does not cover."""
    if plan.queued is None:
        return None, plan.rows
    queue = SealQueue(runtime.es, runtime.names)
    log = IntegrityLog(runtime.es, runtime.names)
    account_id = plan.filters.account_id
    awaiting, deadline = dict(plan.awaiting), time.monotonic() + seal_wait_s(runtime)
    while awaiting:
        pending = await queue.pending_ids()
        awaiting = {d: digest for d, digest in awaiting.items() if d in pending}
        for doc_id in await _under_checkpoints(log, account_id, awaiting):
            del awaiting[doc_id]
        if not awaiting or time.monotonic() > deadline:
            break
        await asyncio.sleep(runtime.settings.seal_interval_s / 2)
    latest = await log.latest_checkpoint(account_id)
    if latest is None:
        return None, plan.rows
    return public(latest), len(awaiting)


async def _under_checkpoints(log: IntegrityLog, account_id: str, rows: dict[str, str]) -> set[str]:
    """Those of ``rows`` (``account/id`` → the exported entry's digest) whose leaf, with that
    digest, is under a checkpoint already: a resent entry's batch lists it in the queue until
    the write deadline, though its first write was sealed (and any later checkpoint covers it
    too); a second copy of an id, stored with other content, is not its first write's leaf."""
    wanted = {doc_id.split("/", 1)[1]: (doc_id, digest) for doc_id, digest in rows.items()}
    ids = sorted(wanted)
    sealed: set[str] = set()
    for start in range(0, len(ids), PROOF_PAGE):
        leaves = await log.checkpointed_leaves(account_id, ids[start : start + PROOF_PAGE])
        sealed |= {wanted[i][0] for i, digest in leaves if wanted[i][1] == digest}
    return sealed


async def sign_export(runtime: Runtime, plan: ExportPlan) -> dict[str, Any]:
    """The export's signed manifest, stored (the file is complete: every byte is hashed)."""
    keys = runtime.ingest.keys
    if keys is None:
        raise ServiceError(503, "not_configured", "this service has no integrity keys")
    head, unsealed = await _head_covering(runtime, plan)
    info = plan.info()
    body = {
        "version": VERSION,
        "export_id": plan.export_id,
        "account_id": plan.filters.account_id,
        "format": plan.fmt,
        "filename": plan.filename(),
        "filters": info["filters"],
        "from": info["from"],
        "to": info["to"],
        "timezone": info["timezone"],
        "order": plan.order,
        "rows": plan.rows,
        "rows_sha256": plan.row_digests.hexdigest(),
        "file_sha256": plan.file_hash.hexdigest(),
        "file_bytes": plan.file_bytes,
        "head": head,
        "rows_unsealed": unsealed,
        "created_at": now_text(),
    }
    manifest = sign_manifest(keys, body)
    await ManifestStore(runtime.es, runtime.names).ready(plan.export_id, manifest)
    return manifest


async def keep_pending(runtime: Runtime, export_id: str) -> None:
    """Mark the export's pending manifest alive until cancelled (when the export ends)."""
    store = ManifestStore(runtime.es, runtime.names)
    while True:
        await asyncio.sleep(TOUCH_EVERY_S)
        with contextlib.suppress(ServiceError):
            await store.touch(export_id)


async def stored_manifest(
    runtime: Runtime, export_id: str, account_id: str | None
) -> dict[str, Any] | None:
    """The export's manifest, ``None`` while it is pending; 404 for another account's or an
    unknown export, 409 when the export did not complete."""
    record = await ManifestStore(runtime.es, runtime.names).get(export_id)
    if record is None or (account_id is not None and record["account_id"] != account_id):
        raise ServiceError(404, "not_found", "no such export")
    status = record["status"]
    if status == "pending":
        alive = record.get("touched_at") or record["created_at"]
        if datetime.now(UTC) - datetime.fromisoformat(alive.replace("Z", "+00:00")) > (
            ABANDONED_AFTER
        ):
            status, record["reason"] = "incomplete", "the service stopped before it was signed"
    if status == "pending":
        return None
    if status == "incomplete":
        reason = record.get("reason") or "the export did not complete"
        raise ServiceError(409, "incomplete", f"this export has no manifest: {reason}")
    return dict(record["manifest"])
