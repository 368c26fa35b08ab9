"""The deployment's background work, done by one process at a time: retention where the engine
has no ILM, the expiry of export jobs and their files, and of viewer links and sessions.

Every instance and worker runs :func:`housekeeping_loop`; only the holder of the
``housekeeping`` lease works. It renews the lease every third of ``AUDITLOG_LEASE_TTL_S`` and
before each index it deletes (the fence: a holder that lost the lease stops before deleting
anything more). When the holder stops cleanly it releases the lease and another process takes
over at its next attempt; when it dies, another takes over once the lease expired, within
``AUDITLOG_LEASE_TTL_S`` plus a third of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

from service.actions.retention import run_retention
from service.errors import EngineUnavailable, ServiceError
from service.export.jobs import sweep_jobs
from service.runtime import Runtime
from service.search.export_files import ExportFiles
from service.search.jobs import JobStore
from service.search.leases import HeldLease, LeaseLost, Leases, hold
from service.search.retention import RetentionReport
from service.search.viewer_sessions import ViewerStore

log = logging.getLogger("auditlog")
LEASE = "housekeeping"


async def run_housekeeping(runtime: Runtime, held: HeldLease) -> None:
    """One round of the work, renewing ``held`` before each step that deletes."""
    if not runtime.ilm:
        await run_retention(runtime, fence=held.renew)
    await held.renew()
    await sweep_jobs(JobStore(runtime.es, runtime.names), ExportFiles(runtime.es, runtime.names))
    a_day_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    await ViewerStore(runtime.es, runtime.names).delete_expired(a_day_ago)
    runtime.counters["housekeeping_runs"] += 1


async def housekeeping_loop(runtime: Runtime) -> None:
    """Hold or wait for the lease; while held, work every ``AUDITLOG_RETENTION_INTERVAL_S``."""
    settings = runtime.settings
    leases = Leases(runtime.es, runtime.names, runtime.holder, settings.lease_ttl_s)
    held: HeldLease | None = None
    last_run = float("-inf")
    try:
        while True:
            if runtime.setup_done:
                try:
                    held = await hold(leases, LEASE, held)
                    if held and time.monotonic() - last_run >= settings.retention_interval_s:
                        await run_housekeeping(runtime, held)
                        last_run = time.monotonic()
                except LeaseLost:
                    log.warning("housekeeping: another process holds the lease now")
                    held = None
                except ServiceError as e:
                    log.warning("housekeeping failed: %s", e)
            await asyncio.sleep(min(settings.lease_ttl_s / 3, settings.retention_interval_s))
    finally:
        if held is not None:
            with contextlib.suppress(EngineUnavailable):
                await asyncio.shield(held.release())


async def retention_now(runtime: Runtime) -> RetentionReport | None:
    """One retention run under the lease (``auditlog retention run``); ``None`` when another
    process holds it (that process sweeps)."""
    leases = Leases(runtime.es, runtime.names, runtime.holder, runtime.settings.lease_ttl_s)
    lease = await leases.acquire(LEASE)
    if lease is None:
        return None
    held = HeldLease(leases, lease)
    try:
        return await run_retention(runtime, fence=held.renew)
    except LeaseLost:
        return None  # paused past the lease: the process that took it over sweeps
    finally:
        await held.release()
