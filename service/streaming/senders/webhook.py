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

import orjson

from service.streaming.guard import AddressGuard
from service.streaming.senders.base import Event, Target
from service.streaming.senders.guarded_http import GuardedHttp, status_error

REPLAY_WINDOW_S = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signatures(secrets: dict[str, str], timestamp: str, body: bytes) -> str:
    keys = [secrets[name] for name in ("secret", "previous_secret") if secrets.get(name)]
    return ",".join(signature(key, timestamp, body) for key in keys)


class WebhookSender:
    def __init__(self, target: Target, guard: AddressGuard) -> None:
        self.target = target
        self.http = GuardedHttp(target, guard)

    async def send(self, events: list[Event]) -> None:
        body = orjson.dumps({"events": events})
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Auditlog-Timestamp": stamp,
            "Auditlog-Signature": signatures(self.target.secrets, stamp, body),
        }
        answer = await self.http.post(self.target.url, body=body, headers=headers)
        if not 200 <= answer.status < 300:
            raise status_error(answer.status, where=self.http.where, detail=answer.excerpt())

    async def close(self) -> None:
        await self.http.close()
