"""Delivering each destination its account's log: at least once, in position order, no gap.

Every ``AUDITLOG_DELIVERY_INTERVAL_S`` each instance looks for destinations to deliver to; one
instance at a time delivers to a destination, the holder of its lease (``destination:<id>``), so
a restart or a failover resumes from the stored position. A round reads the feed after the
destination's position (:mod:`service.actions.feed`), keeps the entries its filter selects (its
categories and types, then those its search text ``q`` matches: one engine search for the page;
``missing`` entries always), makes each an event of the destination's format (the entry, or an
OCSF event: :mod:`service.streaming.ocsf`), adds the log's latest signed checkpoint once the
destination has caught up with it (anchoring: the customer keeps every head; in its own form
whatever the format), sends the batch, and only then stores the new position (past the entries
left out too): a batch is sent again until the receiver acknowledged it, so a receiver may see an
entry twice and drops it by its id. A search text the engine refuses pauses the destination.

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
from datetime import UTC, datetime, timedelta
from typing import Any

from service.actions.destinations import audit, box, filter_query, now_text
from service.actions.feed import FeedPage, read_feed
from service.errors import EngineUnavailable, ServiceError
from service.integrity.checkpoints import public
from service.runtime import Runtime
from service.search.destinations import DestinationStore, Version, node_http_urls
from service.search.entry_matches import entries_matching
from service.search.integrity_log import IntegrityLog
from service.search.leases import HeldLease, LeaseLost, Leases, hold
from service.streaming.guard import AddressGuard, engine_endpoints, parse_networks
from service.streaming.ocsf import to_ocsf
from service.streaming.secrets import SecretsKeyError
from service.streaming.senders.base import DeliveryError, Event, Sender, Target
from service.zones import zone

log = logging.getLogger("auditlog")
BATCH = 2000
"""Positions read per round: a batch of about 2-4 MB for typical entries, few rounds (each
reads the log, renews the lease twice and stores the position) for many entries."""
BACKOFF_MAX_S = 300.0
SYSTEM_ACTOR = {"type": "system", "id": "streaming", "name": "Log streaming"}


async def guard_for(runtime: Runtime) -> AddressGuard:
    """The address guard: allowed networks, and the engine's every node (names and addresses,
    each node's HTTP address as the cluster publishes it) refused."""
    settings = runtime.settings
    urls = [settings.es_url or "", *await node_http_urls(runtime.es)]
    forbidden = set(engine_endpoints(urls))
    loop = asyncio.get_running_loop()
    for host, port in list(forbidden):
        with contextlib.suppress(OSError):
            for info in await loop.getaddrinfo(host, port):
                forbidden.add((str(info[4][0]), port))
    return AddressGuard(parse_networks(settings.destination_allow), frozenset(forbidden))


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


def selected(entry: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the entry is of the filter's categories and types (its search text aside)."""
    categories, types = wanted.get("categories"), wanted.get("types")
    return (not categories or entry["category"] in categories) and (
        not types or entry["type"] in types
    )


def event_of(entry: dict[str, Any], account_id: str, fmt: str) -> Event:
    """The event of one entry in the destination's format."""
    if fmt == "ocsf":
        return to_ocsf(entry)
    return {"event_type": "entry", "position": entry["position"], "account_id": account_id,
            "entry": entry}  # fmt: skip


def _stamp_in(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds_since(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (datetime.now(UTC) - moment).total_seconds()


class Delivery:
    """One destination's delivery, by the holder of its lease. A batch is sent only right
    after the lease was renewed, within half its term, and its position stored only if the lease
    still holds and nobody changed the destination meanwhile."""

    def __init__(self, runtime: Runtime, destination_id: str, held: HeldLease) -> None:
        self.runtime, self.id, self.held = runtime, destination_id, held
        self.store = DestinationStore(runtime.es, runtime.names)
        self.sender: Sender | None = None
        self.target: Target | None = None
        self.written: tuple[dict[str, Any], Version] | None = None
        """The destination as this delivery last wrote it (see :meth:`_read`)."""

    async def _read(self) -> tuple[dict[str, Any], Version] | None:
        """The destination as it is now. Every write but this delivery's position refreshes
        the index at once, and nobody else writes a position while the lease holds (renewed in
        place: lost, the delivery ends); so what the index shows is current unless it is older
        than this delivery's own last write, which is then the current one. Read that way, a
        round makes the engine refresh nothing (a real-time get of the position written in the
        last round would)."""
        if self.written is None:
            return await self.store.get_versioned(self.id)
        seen = await self.store.get_versioned(self.id, realtime=False)
        if seen is None:
            return None  # deleted (a deletion is refreshed at once)
        (seq_no, term), (own_seq_no, own_term) = seen[1], self.written[1]
        if term != own_term:  # another primary since: read as written
            return await self.store.get_versioned(self.id)
        return seen if seq_no >= own_seq_no else self.written

    async def _update(
        self, destination: dict[str, Any], version: Version, changes: dict[str, Any],
        refresh: bool = True,
    ) -> bool:  # fmt: skip
        """Write ``changes`` if the destination is still as read (False: read it again)."""
        written = await self.store.update_if(self.id, changes, version, refresh=refresh)
        self.written = None if written is None else ({**destination, **changes}, written)
        return written is not None

    async def _sender(self, destination: dict[str, Any]) -> Sender:
        try:
            secrets = box(self.runtime).open(self.id, destination["secrets"])
        except SecretsKeyError as e:
            raise DeliveryError(f"{e}: give the destination's secrets again", retry=False) from e
        target = Target(destination["kind"], destination["url"], destination["settings"], secrets)
        if self.sender is None or target != self.target:
            await self.close()
            guard = await guard_for(self.runtime)
            self.sender, self.target = sender_for(target, guard), target
        return self.sender

    async def close(self) -> None:
        if self.sender is not None:
            with contextlib.suppress(Exception):
                await self.sender.close()
            self.sender = None

    async def _send(self, destination: dict[str, Any], events: list[Event]) -> None:
        """Send ``events``; any failure, whatever raised it, is a :class:`DeliveryError`."""
        budget = max(1.0, self.runtime.settings.lease_ttl_s / 2)
        try:
            sender = await self._sender(destination)
            await self.held.renew()  # the fence: only the holder sends
            await asyncio.wait_for(sender.send(events), timeout=budget)
        except (DeliveryError, LeaseLost, ServiceError):
            raise
        except TimeoutError as e:
            await self.close()  # its connection may still carry the batch: never reuse it
            raise DeliveryError(f"the receiver took longer than {budget:g} s") from e
        except Exception as e:  # a setting the sender cannot use: say so, do not crash
            raise DeliveryError(f"{e.__class__.__name__}: {e}", retry=False) from e

    async def round(self) -> float | None:
        """Deliver what is there; the seconds to wait before the next round, ``None`` when the
        destination is no longer to be delivered to."""
        read = await self._read()
        if read is None or read[0]["status"] not in ("active", "failing"):
            return None
        destination, version = read
        self.runtime.delivering[self.id] = destination["account_id"]
        health = dict(destination.get("health") or {})
        wait = -_seconds_since(health.get("retry_at"))
        if wait > 0:  # backing off, whichever instance failed last
            return min(wait, self.runtime.settings.lease_ttl_s / 2)
        account_id, position = destination["account_id"], int(destination["position"])
        page = await read_feed(self.runtime, account_id, after=position, limit=BATCH,
                               tz=zone("UTC", "tz"))  # fmt: skip
        try:
            kept = await self._selected(account_id, page.entries, destination.get("filter") or {})
        except DeliveryError as e:
            return await self._failed(destination, version, e)
        events = [event_of(e, account_id, destination.get("format", "entry")) for e in kept]
        anchor = await self._anchor(account_id, page, health)
        if anchor is not None:
            events.append({"event_type": "checkpoint", "account_id": account_id,
                           "checkpoint": anchor})  # fmt: skip
        if not events and page.next_after == position:
            return self.runtime.settings.delivery_interval_s
        try:
            if events:
                await self._send(destination, events)
        except DeliveryError as e:
            return await self._failed(destination, version, e)
        entries = len(kept)
        health.update(last_success_at=now_text(), last_error=None, failing_since=None,
                      failures=0, retry_at=None,
                      delivered=int(health.get("delivered") or 0) + entries,
                      lag_entries=page.head - page.next_after)  # fmt: skip
        if anchor is not None:
            health["checkpoint_seq"] = int(anchor["seq"])
        self.runtime.counters["delivered_entries"] += entries
        changes = {"position": page.next_after, "health": health, "status": "active",
                   "status_reason": None}  # fmt: skip
        await self.held.renew()  # the fence: only the holder moves the position
        # no refresh of the index per round: the next round takes this write as the current
        # one (see _read), and listings refresh first
        if not await self._update(destination, version, changes, refresh=False):
            return 0.0  # a person paused, rewound or changed it meanwhile: read it again
        return 0.0 if page.more else self.runtime.settings.delivery_interval_s

    async def _selected(
        self, account_id: str, entries: list[dict[str, Any]], wanted: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The entries of a page the filter keeps, in order: those of its categories and types
        that its search text matches (one search for the page), and every ``missing`` one."""
        kept = [e for e in entries if e.get("missing") or selected(e, wanted)]
        text = wanted.get("q")
        stored = [e for e in kept if not e.get("missing")]
        if not text or not stored:
            return kept
        try:
            query = filter_query(str(text))
        except ServiceError as e:  # stored by an older version that took it: fix the filter
            raise DeliveryError(f"{e.message}: change the filter", retry=False) from e
        try:
            matching = await entries_matching(self.runtime.es, self.runtime.names,
                                              account_id=account_id, entries=stored,
                                              query=query)  # fmt: skip
        except ServiceError as e:
            if e.status != 400:
                raise
            # a limit or an index of the moment, not the filter's fault: retried with backoff
            log.warning("destination %s: the engine refused the search of filter.q: %s",
                        self.id, e.message)  # fmt: skip
            raise DeliveryError("the engine refused the search of filter.q for now") from e
        return [e for e in kept if e.get("missing") or e["id"] in matching]

    async def _anchor(
        self, account_id: str, page: FeedPage, health: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The latest signed checkpoint the delivered positions reach, if not sent yet (the
        feed's own when the destination caught up with it: no search then)."""
        latest, sent = page.checkpoint, int(health.get("checkpoint_seq") or 0)
        if latest is None or int(latest["seq"]) <= sent:
            return None
        if int(latest["tree_size"]) <= page.next_after:
            return latest
        log = IntegrityLog(self.runtime.es, self.runtime.names)
        checkpoint = await log.checkpoint_within(account_id, page.next_after)
        if checkpoint is None or int(checkpoint["seq"]) <= sent:
            return None
        return public(checkpoint)

    async def _failed(
        self, destination: dict[str, Any], version: Version, error: DeliveryError
    ) -> float:
        settings = self.runtime.settings
        self.runtime.counters["delivery_failures"] += 1
        health = dict(destination.get("health") or {})
        failures = int(health.get("failures") or 0) + 1
        delay = min(BACKOFF_MAX_S, 2.0 ** min(failures - 1, 9)) * random.uniform(0.5, 1.0)
        since = health.get("failing_since") or now_text()
        health.update(last_error=error.message, last_error_at=now_text(), failing_since=since,
                      failed=int(health.get("failed") or 0) + 1, failures=failures,
                      retry_at=_stamp_in(delay))  # fmt: skip
        changes: dict[str, Any] = {"health": health, "status": "failing",
                                   "status_reason": error.message}  # fmt: skip
        too_long = _seconds_since(since) >= settings.destination_pause_after_s
        pausing = not error.retry or too_long
        if pausing:
            why = error.message if not error.retry else f"failing since {since}: {error.message}"
            changes.update(status="paused", status_reason=why, paused_at=now_text())
        if not await self._update(destination, version, changes):
            return 0.0  # a person changed it meanwhile: their change wins, read it again
        if pausing:
            await audit(self.runtime, SYSTEM_ACTOR, destination["account_id"],
                        "destination.paused", {**destination, **changes},
                        f"Paused the destination '{destination['name']}': "
                        f"{changes['status_reason']}")  # fmt: skip
        return min(delay, settings.lease_ttl_s / 2)


async def deliver(runtime: Runtime, destination_id: str) -> None:
    """Deliver to one destination while this process holds its lease and it is active."""
    leases = Leases(runtime.es, runtime.names, runtime.holder, runtime.settings.lease_ttl_s)
    held: HeldLease | None = None
    delivery: Delivery | None = None
    try:
        while True:
            held = await hold(leases, f"destination:{destination_id}", held)
            if held is None:
                return  # another instance delivers it
            delivery = delivery or Delivery(runtime, destination_id, held)
            wait = await delivery.round()
            if wait is None:
                return
            await asyncio.sleep(wait)
    except LeaseLost:
        log.warning("destination %s: another instance delivers it now", destination_id)
    except ServiceError as e:  # the engine: the loop starts it again
        log.warning("destination %s: %s", destination_id, e)
    finally:
        runtime.delivering.pop(destination_id, None)
        if delivery is not None:
            await delivery.close()
        if held is not None:
            with contextlib.suppress(EngineUnavailable, LeaseLost):
                await asyncio.shield(held.release())


async def disable_long_paused(runtime: Runtime) -> None:
    """Destinations paused longer than the maximum become ``disabled`` (a resume made meanwhile
    wins: the write is conditional)."""
    store = DestinationStore(runtime.es, runtime.names)
    limit = runtime.settings.destination_disable_after_s
    for paused in await store.paused():
        if _seconds_since(paused.get("paused_at")) < limit:
            continue
        read = await store.get_versioned(paused["id"])
        if read is None or read[0]["status"] != "paused":
            continue
        changes = {"status": "disabled", "status_reason": "paused for too long"}
        if await store.update_if(paused["id"], changes, read[1]):
            said = f"Disabled the destination '{paused['name']}': paused for too long"
            await audit(runtime, SYSTEM_ACTOR, paused["account_id"], "destination.disabled",
                        {**read[0], **changes}, said)  # fmt: skip


async def delivery_loop(runtime: Runtime) -> None:
    """Start a delivery for each destination to deliver to that has none in this process."""
    running: dict[str, asyncio.Task[None]] = {}
    store = DestinationStore(runtime.es, runtime.names)
    try:
        while True:
            if runtime.setup_done and runtime.settings.destination_key is not None:
                try:
                    running = {k: t for k, t in running.items() if not t.done()}
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
