"""HTTPS webhook: JSON batches, signed so the receiver knows they come from this service.

``POST <url>`` with ``{"events": [...]}`` and two headers:

* ``Auditlog-Timestamp``: the time of sending, Unix seconds;
* ``Auditlog-Signature``: ``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``, once per valid
  secret: during a rotation (``previous_secret`` set) both signatures are sent, comma-separated,
  and a receiver accepts the batch if one matches a secret it knows.

A receiver checks the signature over the raw body, and refuses a timestamp more than five
minutes from its clock (the replay window). A 2xx acknowledges the batch; 408, 429 and 5xx are
retried; any other status is refused for good until the destination is changed. Redirects are
not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import aiohttp
import orjson

from service.streaming.guard import AddressGuard, GuardedResolver
from service.streaming.senders.base import DeliveryError, Event, Target

TIMEOUT_S = 30
REPLAY_WINDOW_S = 300
RETRIED = {408, 429}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signatures(secrets: dict[str, str], timestamp: str, body: bytes) -> str:
    keys = [secrets[name] for name in ("secret", "previous_secret") if secrets.get(name)]
    return ",".join(signature(key, timestamp, body) for key in keys)


class WebhookSender:
    def __init__(self, target: Target, guard: AddressGuard) -> None:
        self.target, self.guard = target, guard
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(guard)),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
        )

    async def send(self, events: list[Event]) -> None:
        self.guard.check_url(self.target.url)
        body = orjson.dumps({"events": events})
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "auditlog",
            "Auditlog-Timestamp": stamp,
            "Auditlog-Signature": signatures(self.target.secrets, stamp, body),
        }
        try:
            async with self.session.post(
                self.target.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                text = (await response.text(errors="replace"))[:200]
        except (aiohttp.ClientError, TimeoutError) as e:
            raise DeliveryError(f"could not reach the webhook: {e.__class__.__name__} {e}") from e
        if 200 <= status < 300:
            return
        retry = status in RETRIED or status >= 500
        raise DeliveryError(f"the webhook answered {status}: {text}", retry=retry)

    async def close(self) -> None:
        await self.session.close()
