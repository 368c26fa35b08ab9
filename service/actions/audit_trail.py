"""The audit of the audit: the service records its own sensitive actions as ``audit`` entries.

Key creation and revocation, account changes, exports and retention runs become entries of the
account concerned, written through the normal ingest path. An entry the engine did not store
raises :class:`AuditNotRecorded` (and counts ``audit_failures`` in ``/metrics``): an export whose
audit entry is missing is not delivered as complete.
"""

from __future__ import annotations

import logging
from typing import Any

from ingest.pipeline import IngestContext, Item, ingest_items
from service.errors import EngineUnavailable, ServiceError

log = logging.getLogger("auditlog")


class AuditNotRecorded(ServiceError):
    """The action's audit entry was not stored (503: the engine refused or was unavailable)."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(
            503, "audit_not_recorded", f"the audit entry of {action} could not be written: {reason}"
        )


async def record(
    ctx: IngestContext,
    account_id: str,
    actor: dict[str, str],
    action: str,
    message: str,
    metadata: dict[str, Any] | None = None,
    entry_type: str = "notice",
    entry_id: str | None = None,
) -> None:
    """Write one ``audit`` entry; :class:`AuditNotRecorded` (and a log line) when the engine did
    not store it. With ``entry_id``, writing the entry again is a no-op (it is already stored)."""
    raw: dict[str, Any] = {
        "category": "audit",
        "type": entry_type,
        "actor": actor,
        "action": action,
        "message": message,
        "metadata": metadata or {},
    }
    if entry_id is not None:
        raw["id"] = entry_id
    try:
        results = await ingest_items(ctx, [Item(raw)], {0: account_id})
        stored = results[0].status == "created" or results[0].status == "duplicate"
        reason = None if stored else results[0].message
    except EngineUnavailable as e:
        reason = str(e)
    if reason is not None:
        ctx.counters["audit_failures"] += 1
        log.error("could not record %s for %s: %s", action, account_id, reason)
        raise AuditNotRecorded(action, reason)


SYSTEM_RETENTION = {"type": "system", "id": "retention", "name": "Retention sweeper"}
