"""The deployment's background work, done by one process at a time: retention where the engine
has no ILM, the expiry of export jobs and their files, and of viewer links and sessions.

Every instance and worker runs :func:`housekeeping_loop`; only the holder of the
``housekeeping`` lease works. It renews the lease every third of ``AUDITLOG_LEASE_TTL_S`` and
before each index it deletes (the fence: a holder that lost the lease stops before deleting
anything more). When the holder stops cleanly it releases the lease and another process takes
over at its next attempt; when it dies, another takes over once the lease expired, within
``AUDITLOG_LEASE_TTL_S`` plus a third of it.

``auditlog retention run`` takes the lease when no process holds it; otherwise it asks the holder
(:mod:`service.search.run_requests`), which runs retention at its next check of the lease (within
a third of ``AUDITLOG_LEASE_TTL_S``, or once the work it is doing ends) and answers with the run's
report, or why it failed. A holder of an earlier version does not take requests: the command
says so instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from service.actions.retention import run_retention
from service.errors import EngineUnavailable, ServiceError
from service.export.jobs import sweep_jobs
from service.runtime import Runtime
from service.search.export_files import ExportFiles
from service.search.jobs import JobStore
from service.search.leases import HeldLease, LeaseLost, Leases, hold
from service.search.retention import RetentionReport
from service.search.run_requests import RunRequests
from service.search.viewer_sessions import ViewerStore

log = logging.getLogger("auditlog")
LEASE = "housekeeping"
ANSWER_WAIT_S = 600.0
"""How long ``auditlog retention run`` waits for the lease holder to start the run, at most (it
then waits for the run to end, however long it takes)."""


class RetentionNotRun(Exception):
    """The lease holder did not run retention when asked: the reason."""


ILM_NOTE = {"ilm": True, "note": "the engine's ILM enforces retention; nothing to do"}


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
    requests = RunRequests(runtime.es, runtime.names, "retention")
    try:
        while True:
            if runtime.setup_done:
                try:
                    taken = held is None
                    held = await hold(leases, LEASE, held)
                    if held and taken:
                        await requests.serve(runtime.holder)
                    if held:
                        await _answer_request(runtime, held, requests)
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


async def _answer_request(runtime: Runtime, held: HeldLease, requests: RunRequests) -> None:
    """Run retention now if a command asked for it since the last answer; answer with the report,
    or with why it failed (the other work goes on either way)."""
    pending = await requests.pending()
    if pending is None:
        return
    number, options = pending
    if runtime.ilm and not options.get("force"):
        await requests.answer(number, "done", ILM_NOTE)
        return
    await requests.answer(number, "running", {})  # left so if this process stops: run again
    try:
        report = await run_retention(runtime, fence=held.renew)
    except LeaseLost:
        raise  # the next holder runs it
    except ServiceError as e:
        log.warning("retention asked for by a command failed: %s", e)
        await requests.answer(number, "failed", {"error": e.message})
        return
    await requests.answer(number, "done", _plain(report))


def _plain(report: RetentionReport) -> dict[str, Any]:
    """The report as JSON values (days and instants as ISO 8601 text)."""
    return dict(json.loads(json.dumps(asdict(report), default=str)))


async def retention_now(
    runtime: Runtime, force: bool = False, waiting: Callable[[str], None] = lambda note: None
) -> dict[str, Any]:
    """One retention run (``auditlog retention run``): under the lease when no process holds
    it, else by the holder, asked to run it now (``waiting`` is told while it runs);
    :class:`RetentionNotRun` when the holder cannot take the request, did not start the run
    within :data:`ANSWER_WAIT_S`, or the run failed."""
    leases = Leases(runtime.es, runtime.names, runtime.holder, runtime.settings.lease_ttl_s)
    requests = RunRequests(runtime.es, runtime.names, "retention")
    number: int | None = None
    since, told = time.monotonic(), False
    while True:
        lease = await leases.acquire(LEASE)
        if lease is not None:  # no holder (or it stopped meanwhile): run it here
            held = HeldLease(leases, lease)
            try:
                return _plain(await run_retention(runtime, fence=held.renew))
            except LeaseLost:
                pass  # paused past the lease: ask the process that took it over
            finally:
                await held.release()
        elif number is None:
            holder = str((await leases.holder_of(LEASE) or {}).get("holder"))
            if await requests.served_by() == holder:
                number, since = await requests.ask(force=force), time.monotonic()
            elif time.monotonic() - since > runtime.settings.lease_ttl_s:
                raise RetentionNotRun(f"the instance holding the housekeeping lease ({holder}) "
                                      "runs an earlier version, which does not take requests: "
                                      "upgrade it, or run this once it stopped")  # fmt: skip
        elif (answer := await requests.answer_to(number)) is None:
            if time.monotonic() - since > ANSWER_WAIT_S:
                raise RetentionNotRun("the instance holding the housekeeping lease did not start "
                                      f"retention within {ANSWER_WAIT_S:.0f} s")  # fmt: skip
        elif answer.status == "done":
            return answer.result
        elif answer.status == "failed":
            raise RetentionNotRun(f"the run failed: {answer.result.get('error')}")
        elif not told:
            waiting("the instance holding the housekeeping lease is running retention")
            told = True
        await asyncio.sleep(0.5)
