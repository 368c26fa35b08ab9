"""The customer's own Elasticsearch or OpenSearch cluster: a batch is one ``POST {url}/_bulk``.

Plain HTTP(S) rather than the ``elasticsearch`` client, which refuses OpenSearch (and servers of
another major version). The body is NDJSON (``Content-Type: application/x-ndjson``): for each
event ``{"create": {"_index": <settings.index>, "_id": <id>}}`` then the event, with an
``@timestamp`` (the entry's timestamp, a checkpoint's ``sealed_at``) added when it has none, so
that the index may be a data stream and Kibana or Dashboards have a time field.

The ``_id`` is ``<account>/<entry id>`` (entry ids are unique within an account only, and one
index may receive several accounts) or ``checkpoint-<account>-<seq>``. ``create`` never
overwrites: an item answered 409 (version conflict) was delivered before, which is success, so
sending a batch again makes no duplicates. Any other failed item fails the batch, naming the
first: retried for 429 and 5xx, not for a mapping error (400) or another 4xx. Credentials:
``Authorization: ApiKey <api_key>``, else basic with ``username``/``password``, else none.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from service.streaming.guard import AddressGuard
from service.streaming.senders.base import DeliveryError, Event, Target
from service.streaming.senders.event_fields import document_id, utc_text
from service.streaming.senders.guarded_http import Answer, GuardedHttp, status_error

BULK_FILTER = "errors,items.*._id,items.*.status,items.*.error"
"""Only what the sender reads of the bulk answer (``filter_path``)."""


def authorization(target: Target) -> dict[str, str]:
    secrets = target.secrets
    if secrets.get("api_key"):
        return {"Authorization": f"ApiKey {secrets['api_key']}"}
    if secrets.get("username"):
        pair = f"{secrets['username']}:{secrets.get('password', '')}".encode()
        return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
    return {}


def bulk_body(events: list[Event], index: str) -> bytes:
    lines: list[bytes] = []
    for event in events:
        source = event
        stamp = utc_text(event)
        if "@timestamp" not in event and stamp is not None:
            source = {"@timestamp": stamp, **event}
        action = {"create": {"_index": index, "_id": document_id(event)}}
        lines += [orjson.dumps(action), orjson.dumps(source)]
    return b"\n".join(lines) + b"\n"


def _reason(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    said = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
    cause = error.get("caused_by")
    if isinstance(cause, dict) and cause.get("reason"):
        said += f" (caused by {cause.get('type', 'error')}: {cause['reason']})"
    return said


def bulk_failure(items: list[Any], *, where: str) -> DeliveryError | None:
    """``None`` when every item was created or was there already (409); else the error of
    the batch, naming its first failed item and retried when every failure is 429 or 5xx."""
    failed: list[tuple[int, str, Any]] = []
    for item in items:
        result: Any = next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
        status = result.get("status") if isinstance(result, dict) else None
        if status in (200, 201, 409):
            continue
        code = status if isinstance(status, int) else 0
        failed.append((code, str(result.get("_id", "?")), result.get("error")))
    if not failed:
        return None
    code, doc_id, error = failed[0]
    retry = all(c == 429 or c >= 500 for c, _, _ in failed)
    more = f" ({len(failed)} of {len(items)} failed)" if len(failed) > 1 else ""
    return DeliveryError(
        f"{where} refused {doc_id} (HTTP {code}): {_reason(error)}{more}", retry=retry
    )


class ElasticBulkSender:
    def __init__(self, target: Target, guard: AddressGuard) -> None:
        self.url = target.url.rstrip("/") + "/_bulk"
        self.index = str(target.settings.get("index") or "")
        self.headers = {"Content-Type": "application/x-ndjson", **authorization(target)}
        self.http = GuardedHttp(target, guard)

    async def send(self, events: list[Event]) -> None:
        if not events:
            return
        if not self.index:
            raise DeliveryError("the destination has no index to write to", retry=False)
        body = bulk_body(events, self.index)
        answer = await self.http.post(
            self.url, body=body, headers=self.headers, params={"filter_path": BULK_FILTER}
        )
        if answer.status != 200:
            raise status_error(answer.status, where=self.http.where, detail=_detail(answer))
        said = answer.json()
        items = said.get("items") if isinstance(said, dict) else None
        if not isinstance(items, list) or len(items) != len(events):
            raise DeliveryError(
                f"{self.http.where} did not answer as an Elasticsearch _bulk endpoint does: "
                f"{answer.excerpt()}",
                retry=False,
            )
        failure = bulk_failure(items, where=self.http.where)
        if failure is not None:
            raise failure

    async def close(self) -> None:
        await self.http.close()


def _detail(answer: Answer) -> str:
    said = answer.json()
    if isinstance(said, dict) and "error" in said:
        return _reason(said["error"])
    return answer.excerpt()
