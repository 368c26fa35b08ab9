"""A retention run: sweep expired indices and record it in each account it touched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from service.actions import audit_trail
from service.runtime import Runtime
from service.search.retention import RetentionReport, mark_reported, sweep_expired


async def run_retention(
    runtime: Runtime,
    now: datetime | None = None,
    fence: Callable[[], Awaitable[None]] | None = None,
) -> RetentionReport:
    """Delete expired daily indices; write one ``audit`` entry per affected account and index,
    under an id of its own (``retention:<index>:<deletion>:<account>``, the index without the
    prefix), so
    a deletion is never reported twice, even by a run that finishes a stopped one's work."""
    report = await sweep_expired(runtime.es, runtime.settings, now, fence)
    ctx = runtime.ingest
    for deleted in report.deleted:
        reported = True
        index = deleted.index.removeprefix(f"{runtime.settings.index_prefix}-")
        for account_id, count in sorted(deleted.entries_by_account.items()):
            try:
                await audit_trail.record(
                    ctx,
                    account_id,
                    audit_trail.SYSTEM_RETENTION,
                    "retention.deleted",
                    f"Retention deleted {count} integration entries of {deleted.day.isoformat()} "
                    "(kept 30 days)",
                    {
                        "target_type": "index",
                        "target_name": deleted.index,
                        "deleted": count,
                        "day": deleted.day.isoformat(),
                    },
                    entry_id=f"retention:{index}:{deleted.deletion}:{account_id}",
                )
            except audit_trail.AuditNotRecorded:
                reported = False  # logged and counted; the next run writes it
        if reported:
            await mark_reported(runtime.es, runtime.names, deleted.index)
    runtime.counters["retention_deleted_indices"] += report.deleted_now
    return report
