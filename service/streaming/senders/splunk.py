"""Splunk's HTTP Event Collector (HEC): a batch is one POST to ``/services/collector/event``.

The body is the events' HEC envelopes one after another (not a JSON array), each
``{"time", "host", "source", "sourcetype", ["index",] "event"}``: ``time`` is the entry's
timestamp (a checkpoint's ``sealed_at``) in epoch seconds with three decimals; ``host``,
``source``, ``sourcetype`` and ``index`` come from the destination's settings, defaulting to
this machine's name, ``auditlog`` and ``auditlog:entry`` (``auditlog:checkpoint`` for
checkpoints; the token's default index when ``index`` is unset). ``Authorization: Splunk
<token>``.

HEC's 200 means *received*, not indexed. With ``ack`` set (indexer acknowledgment, a setting of
the token in Splunk Enterprise), requests carry ``X-Splunk-Request-Channel: <a UUID of this
sender>``, the answer carries an ``ackId``, and the batch is delivered only once
``POST /services/collector/ack?channel=<uuid>`` with ``{"acks": [id]}`` answers
``{"acks": {"<id>": true}}``; not within ``ack_timeout_s`` (default 60): retried. Splunk's
``{"text", "code"}`` of an error goes into the message.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import orjson

from service.streaming.guard import AddressGuard
from service.streaming.senders.base import DeliveryError, Event, Target
from service.streaming.senders.event_fields import epoch_ms, is_checkpoint, seconds_text
from service.streaming.senders.guarded_http import Answer, GuardedHttp, status_error

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
DEFAULT_SOURCE = "auditlog"
ENTRY_SOURCETYPE = "auditlog:entry"
CHECKPOINT_SOURCETYPE = "auditlog:checkpoint"
DEFAULT_ACK_TIMEOUT_S = 60.0
FIRST_ACK_POLL_S = 0.2
LONGEST_ACK_POLL_S = 5.0


def collector_base(url: str) -> str:
    """The HEC base URL: ``url`` without a trailing ``/`` or ``/services/collector[/event]``."""
    base = url.rstrip("/")
    for suffix in (EVENT_PATH, "/services/collector"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def splunk_detail(answer: Answer) -> str:
    """``Invalid data format (code 6)`` from HEC's JSON error body, else the body's start."""
    said = answer.json()
    if isinstance(said, dict) and "text" in said:
        code = said.get("code")
        return f"{said['text']} (code {code})" if code is not None else str(said["text"])
    return answer.excerpt()


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "yes"))


class SplunkHecSender:
    def __init__(self, target: Target, guard: AddressGuard, *, host_name: str | None = None):
        settings = target.settings
        self.base = collector_base(target.url)
        self.token = target.secrets.get("token", "")
        self.host = str(settings.get("host") or host_name or socket.gethostname())
        self.source = str(settings.get("source") or DEFAULT_SOURCE)
        self.sourcetype = str(settings.get("sourcetype") or ENTRY_SOURCETYPE)
        self.index = str(settings["index"]) if settings.get("index") else None
        self.ack = _flag(settings.get("ack"))
        self.ack_timeout_s = float(settings.get("ack_timeout_s") or DEFAULT_ACK_TIMEOUT_S)
        self.channel = str(uuid.uuid4())
        self.http = GuardedHttp(target, guard)

    def envelope(self, event: Event) -> bytes:
        """One event's HEC JSON, ``time`` first, with exactly three decimals."""
        sourcetype = CHECKPOINT_SOURCETYPE if is_checkpoint(event) else self.sourcetype
        rest: dict[str, Any] = {"host": self.host, "source": self.source, "sourcetype": sourcetype}
        if self.index is not None:
            rest["index"] = self.index
        rest["event"] = event
        ms = epoch_ms(event)
        if ms is None:  # HEC dates it on arrival
            return orjson.dumps(rest)
        return b'{"time":' + seconds_text(ms).encode() + b"," + orjson.dumps(rest)[1:]

    def _headers(self) -> dict[str, str]:
        if not self.token:
            raise DeliveryError("the destination has no HEC token", retry=False)
        headers = {"Authorization": f"Splunk {self.token}", "Content-Type": "application/json"}
        if self.ack:
            headers["X-Splunk-Request-Channel"] = self.channel
        return headers

    async def send(self, events: list[Event]) -> None:
        if not events:
            return
        body = b"\n".join(self.envelope(e) for e in events)
        answer = await self.http.post(self.base + EVENT_PATH, body=body, headers=self._headers())
        if answer.status != 200:
            raise status_error(answer.status, where=self.http.where, detail=splunk_detail(answer))
        if not self.ack:
            return
        said = answer.json()
        ack_id = said.get("ackId") if isinstance(said, dict) else None
        if not isinstance(ack_id, int) or isinstance(ack_id, bool):
            raise DeliveryError(
                f"{self.http.where} returned no ackId: turn on indexer acknowledgment for the "
                "token in Splunk, or turn off ack for this destination",
                retry=False,
            )
        await self._wait_until_indexed(ack_id)

    async def _indexed(self, ack_id: int) -> bool:
        answer = await self.http.post(
            self.base + ACK_PATH,
            body=orjson.dumps({"acks": [ack_id]}),
            headers=self._headers(),
            params={"channel": self.channel},
        )
        if answer.status != 200:
            raise status_error(answer.status, where=self.http.where, detail=splunk_detail(answer))
        said = answer.json()
        acks = said.get("acks") if isinstance(said, dict) else None
        return isinstance(acks, dict) and acks.get(str(ack_id)) is True

    async def _wait_until_indexed(self, ack_id: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout_s
        pause = FIRST_ACK_POLL_S
        while not await self._indexed(ack_id):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeliveryError(
                    f"{self.http.where} did not confirm indexing (ackId {ack_id}) within "
                    f"{self.ack_timeout_s:g} s",
                    retry=True,
                )
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, LONGEST_ACK_POLL_S)

    async def close(self) -> None:
        await self.http.close()
