"""The audit of the audit: the service records its own sensitive actions as ``audit`` entries.

Key creation and revocation, account changes, exports and retention runs become entries of the
account concerned, written through the normal ingest path.
"""

from __future__ import annotations

import logging
from typing import Any

from elasticsearch import ApiError, TransportError

from ingest.pipeline import IngestContext, Item, ingest_items

log = logging.getLogger("auditlog")


async def record(
    ctx: IngestContext,
    account_id: str,
    actor: dict[str, str],
    action: str,
    message: str,
    metadata: dict[str, Any] | None = None,
    entry_type: str = "notice",
) -> bool:
    """Write one ``audit`` entry; False (and a log line) when the engine did not store it."""
    raw = {
        "category": "audit",
        "type": entry_type,
        "actor": actor,
        "action": action,
        "message": message,
        "metadata": metadata or {},
    }
    try:
        results = await ingest_items(ctx, [Item(raw)], {0: account_id})
    except (ApiError, TransportError) as e:
        log.error("could not record %s for %s: %s", action, account_id, e)
        return False
    if results[0].status != "created":
        log.error("could not record %s for %s: %s", action, account_id, results[0].message)
        return False
    return True


def key_actor(key_id: str) -> dict[str, str]:
    return {"type": "api_key", "id": key_id, "name": f"API key {key_id}"}


SYSTEM_RETENTION = {"type": "system", "id": "retention", "name": "Retention sweeper"}
