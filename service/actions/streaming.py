"""Delivering each destination its account's log: at least once, in position order, no gap.

Every ``AUDITLOG_DELIVERY_INTERVAL_S`` each instance looks for destinations to deliver to; one
instance at a time delivers to a destination, the holder of its lease (``destination:<id>``), so
a restart or a failover resumes from the stored position. A round reads the feed after the
destination's position (:mod:`service.actions.feed`), keeps the entries its filter selects, adds
the log's latest signed checkpoint once the destination has caught up with it (anchoring: the
customer keeps every head), sends the batch, and only then stores the new position: a batch is
sent again until the receiver acknowledged it, so a receiver may see an entry twice and drops it
by its id.

A failure is retried with exponential backoff and jitter (1 s doubling to 5 minutes). A receiver
refusing for good (a bad token, a 4xx) or failing for longer than
``AUDITLOG_DESTINATION_PAUSE_AFTER_S`` pauses the destination, saying why, with an ``audit``
entry; a destination paused longer than ``AUDITLOG_DESTINATION_DISABLE_AFTER_S`` is disabled
(re-enabled by setting it ``active``, from its position or another). The backlog is the log
itself: bounded by retention, never by memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime
from typing import Any

from service.actions.destinations import audit, box, now_text
from service.actions.feed import read_feed
from service.errors import EngineUnavailable, ServiceError
from service.runtime import Runtime
from service.search.destinations import DestinationStore
from service.search.leases import HeldLease, LeaseLost, Leases, hold
from service.streaming.guard import AddressGuard, engine_endpoints, parse_networks
from service.streaming.secrets import SecretsKeyError
from service.streaming.senders.base import DeliveryError, Event, Sender, Target
from service.zones import zone

log = logging.getLogger("auditlog")
BATCH = 500
"""Positions read per round."""
BACKOFF_MAX_S = 300.0
SYSTEM_ACTOR = {"type": "system", "id": "streaming", "name": "Log streaming"}


def guard_of(runtime: Runtime) -> AddressGuard:
    settings = runtime.settings
    return AddressGuard(parse_networks(settings.destination_allow),
                        engine_endpoints([settings.es_url or ""]))  # fmt: skip


def sender_for(target: Target, guard: AddressGuard) -> Sender:
    """The sender of the target's kind."""
    if target.kind == "webhook":
        from service.streaming.senders.webhook import WebhookSender

        return WebhookSender(target, guard)
    if target.kind == "splunk_hec":
        from service.streaming.senders.splunk import SplunkHecSender

        return SplunkHecSender(target, guard)
    if target.kind == "syslog":
        from service.streaming.senders.syslog import SyslogSender

        return SyslogSender(target, guard)
    from service.streaming.senders.elastic import ElasticBulkSender

    return ElasticBulkSender(target, guard)


def selected(entry: dict[str, Any], wanted: dict[str, list[str]]) -> bool:
    categories, types = wanted.get("categories"), wanted.get("types")
    return (not categories or entry["category"] in categories) and (
        not types or entry["type"] in types
    )


def _seconds_since(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (datetime.now(UTC) - moment).total_seconds()


class Delivery:
    """One destination's delivery, by the holder of its lease."""

    def __init__(self, runtime: Runtime, destination_id: str) -> None:
        self.runtime, self.id = runtime, destination_id
        self.store = DestinationStore(runtime.es, runtime.names)
        self.sender: Sender | None = None
        self.target: Target | None = None
        self.failures = 0

    async def _sender(self, destination: dict[str, Any]) -> Sender:
        try:
            secrets = box(self.runtime).open(self.id, destination["secrets"])
        except SecretsKeyError as e:
            raise ServiceError(503, "not_configured", str(e)) from e
        target = Target(destination["kind"], destination["url"], destination["settings"], secrets)
        if self.sender is None or target != self.target:
            await self.close()
            self.sender, self.target = sender_for(target, guard_of(self.runtime)), target
        return self.sender

    async def close(self) -> None:
        if self.sender is not None:
            with contextlib.suppress(Exception):
                await self.sender.close()
            self.sender = None

    async def round(self) -> float | None:
        """Deliver what is there; the seconds to wait before the next round, ``None`` when the
        destination is no longer to be delivered to."""
        destination = await self.store.get(self.id)
        if destination is None or destination["status"] not in ("active", "failing"):
            return None
        account_id, position = destination["account_id"], int(destination["position"])
        health = dict(destination.get("health") or {})
        page = await read_feed(self.runtime, account_id, after=position, limit=BATCH,
                               tz=zone("UTC", "tz"))  # fmt: skip
        events: list[Event] = [
            {"event_type": "entry", "position": e["position"], "account_id": account_id,
             "entry": e}
            for e in page.entries if selected(e, destination.get("filter") or {})
        ]  # fmt: skip
        checkpoint = page.checkpoint
        anchored = int(health.get("checkpoint_seq") or 0)
        if checkpoint and page.next_after >= page.head and int(checkpoint["seq"]) > anchored:
            events.append({"event_type": "checkpoint", "account_id": account_id,
                           "checkpoint": checkpoint})  # fmt: skip
        if not events and page.next_after == position:
            return self.runtime.settings.delivery_interval_s
        try:
            if events:
                await (await self._sender(destination)).send(events)
        except DeliveryError as e:
            return await self._failed(destination, e)
        self.failures = 0
        entries = sum(1 for e in events if e["event_type"] == "entry")
        health.update(last_success_at=now_text(), last_error=None, failing_since=None,
                      delivered=int(health.get("delivered") or 0) + entries,
                      lag_entries=page.head - page.next_after)  # fmt: skip
        if checkpoint and events and events[-1]["event_type"] == "checkpoint":
            health["checkpoint_seq"] = int(checkpoint["seq"])
        self.runtime.counters["delivered_entries"] += entries
        await self.store.update(self.id, {"position": page.next_after, "health": health,
                                          "status": "active", "status_reason": None})  # fmt: skip
        return 0.0 if page.more else self.runtime.settings.delivery_interval_s

    async def _failed(self, destination: dict[str, Any], error: DeliveryError) -> float:
        settings = self.runtime.settings
        self.failures += 1
        self.runtime.counters["delivery_failures"] += 1
        health = dict(destination.get("health") or {})
        since = health.get("failing_since") or now_text()
        health.update(last_error=error.message, last_error_at=now_text(), failing_since=since,
                      failed=int(health.get("failed") or 0) + 1)  # fmt: skip
        changes: dict[str, Any] = {"health": health, "status": "failing",
                                   "status_reason": error.message}  # fmt: skip
        too_long = _seconds_since(since) >= settings.destination_pause_after_s
        if not error.retry or too_long:
            why = error.message if not error.retry else f"failing since {since}: {error.message}"
            changes.update(status="paused", status_reason=why, paused_at=now_text())
            await audit(self.runtime, SYSTEM_ACTOR, destination["account_id"],
                        "destination.paused", {**destination, **changes},
                        f"Paused the destination '{destination['name']}': {why}")  # fmt: skip
        await self.store.update(self.id, changes)
        delay = min(BACKOFF_MAX_S, 2.0 ** min(self.failures - 1, 9))
        return delay * random.uniform(0.5, 1.0)


async def deliver(runtime: Runtime, destination_id: str) -> None:
    """Deliver to one destination while this process holds its lease and it is active."""
    leases = Leases(runtime.es, runtime.names, runtime.holder, runtime.settings.lease_ttl_s)
    held: HeldLease | None = None
    delivery = Delivery(runtime, destination_id)
    try:
        while True:
            held = await hold(leases, f"destination:{destination_id}", held)
            if held is None:
                return  # another instance delivers it
            wait = await delivery.round()
            if wait is None:
                return
            await asyncio.sleep(wait)
    except LeaseLost:
        log.warning("destination %s: another instance delivers it now", destination_id)
    except ServiceError as e:  # the engine, or the secrets key: the loop starts it again
        log.warning("destination %s: %s", destination_id, e)
    finally:
        await delivery.close()
        if held is not None:
            with contextlib.suppress(EngineUnavailable):
                await asyncio.shield(held.release())


async def disable_long_paused(runtime: Runtime) -> None:
    """Destinations paused longer than the maximum become ``disabled``."""
    store = DestinationStore(runtime.es, runtime.names)
    limit = runtime.settings.destination_disable_after_s
    for account_destination in await store.paused():
        if _seconds_since(account_destination.get("paused_at")) >= limit:
            changes = {"status": "disabled", "status_reason": "paused for too long"}
            await store.update(account_destination["id"], changes)
            await audit(runtime, SYSTEM_ACTOR, account_destination["account_id"],
                        "destination.disabled", {**account_destination, **changes},
                        f"Disabled the destination '{account_destination['name']}': paused "
                        "for too long")  # fmt: skip


async def delivery_loop(runtime: Runtime) -> None:
    """Start a delivery for each destination to deliver to that has none in this process."""
    running: dict[str, asyncio.Task[None]] = {}
    store = DestinationStore(runtime.es, runtime.names)
    try:
        while True:
            if runtime.setup_done and runtime.settings.destination_key is not None:
                try:
                    for destination_id in await store.delivering():
                        task = running.get(destination_id)
                        if task is None or task.done():
                            running[destination_id] = asyncio.create_task(
                                deliver(runtime, destination_id)
                            )
                    await disable_long_paused(runtime)
                except ServiceError as e:
                    log.warning("streaming: %s", e)
                except Exception:  # a bug must not stop streaming for good: log it, go on
                    log.exception("streaming: unexpected failure")
            await asyncio.sleep(runtime.settings.delivery_interval_s)
    finally:
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
