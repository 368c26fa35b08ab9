"""A retention run: sweep expired indices and record it in each account it touched."""

from __future__ import annotations

from datetime import datetime

from service.actions import audit_trail
from service.runtime import Runtime
from service.search.retention import RetentionReport, sweep_expired


async def run_retention(runtime: Runtime, now: datetime | None = None) -> RetentionReport:
    """Delete expired daily indices; write one ``audit`` entry per affected account and index."""
    report = await sweep_expired(runtime.es, runtime.settings, now)
    ctx = runtime.ingest
    for deleted in report.deleted:
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
                )
            except audit_trail.AuditNotRecorded:
                continue  # logged and counted; the other accounts' entries are still written
    runtime.counters["retention_deleted_indices"] += len(report.deleted)
    return report
