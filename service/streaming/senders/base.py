"""What every sender does: deliver a batch of events, in order, or say why not.

An **event** is a JSON object: an entry of the account's log (``{"event_type": "entry",
"position": n, "entry": {...}}``, or the entry mapped to OCSF), or a signed checkpoint of the
log (``{"event_type": "checkpoint", "checkpoint": {...}}``). A sender receives the events of a
batch in position order and either delivers all of them (returns: the receiver acknowledged
them) or raises :class:`DeliveryError`; the caller then sends the whole batch again later, so a
receiver may see an event twice and drops it by its ``id`` (the idempotency key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Event = dict[str, Any]


class DeliveryError(Exception):
    """The batch was not (or not surely) delivered. ``retry`` False: the receiver refused it
    for good (a 4xx other than 408/429, a bad token) and sending it again will not help until
    the destination is changed; the message says why, for the account to read (no secret)."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.message, self.retry = message, retry


@dataclass(frozen=True)
class Target:
    """Where and how to send: the destination's settings, secrets decrypted."""

    kind: str
    url: str
    """``https://…`` for HTTP kinds; ``tcp://host:port`` or ``tls://host:port`` for syslog."""
    settings: dict[str, Any]
    """Kind-specific, non-secret: ``index``, ``sourcetype``, ``source``, ``host``, ``ack``,
    ``ca_pem`` (a PEM bundle to trust instead of the system's), ``app_name``…"""
    secrets: dict[str, str]
    """Kind-specific secrets: ``token``, ``api_key``, ``username``/``password``, ``secret`` and
    ``previous_secret`` (webhook signing during a rotation)."""


class Sender(Protocol):
    async def send(self, events: list[Event]) -> None:
        """Deliver ``events`` in order; :class:`DeliveryError` when not all were acknowledged."""

    async def close(self) -> None:
        """Release connections."""
