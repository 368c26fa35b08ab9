"""What a receiver keys and dates an event by: its idempotency key and its time.

* an entry event (``{"event_type": "entry", "entry": {...}}``): the entry's ``id`` and
  ``timestamp`` (RFC 3339);
* a checkpoint event (``{"event_type": "checkpoint", "checkpoint": {...}}``): the account and
  ``seq`` of the checkpoint, and its ``sealed_at``;
* an OCSF event at the top level: ``metadata.uid`` and ``time`` (milliseconds since the epoch).

Entry ids are unique within an account only, so a key that must be unique in a receiver shared
by several accounts (an Elasticsearch ``_id``) is :func:`document_id`: ``<account>/<entry id>``,
the service's own document id; account ids never contain ``/``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from service.streaming.senders.base import DeliveryError, Event
from service.vocabulary import STORED_TIMESTAMP

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


def _unkeyed(event: Event) -> DeliveryError:
    kind = event.get("event_type", "unknown")
    return DeliveryError(f"an event of type {kind!r} has no id to deliver it by", retry=False)


def is_checkpoint(event: Event) -> bool:
    return event.get("event_type") == "checkpoint" and isinstance(event.get("checkpoint"), dict)


def _entry(event: Event) -> dict[str, Any] | None:
    entry = event.get("entry")
    return entry if isinstance(entry, dict) else None


def _ocsf_metadata(event: Event) -> dict[str, Any]:
    metadata = event.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def entry_id(event: Event) -> str:
    """The event's idempotency key within its account: the entry id, ``checkpoint-<account>-
    <seq>`` or the OCSF ``metadata.uid``; :class:`DeliveryError` (not retried) when it has none."""
    if is_checkpoint(event):
        checkpoint = event["checkpoint"]
        account, seq = checkpoint.get("account_id"), checkpoint.get("seq")
        if isinstance(account, str) and isinstance(seq, int):
            return f"checkpoint-{account}-{seq}"
        raise _unkeyed(event)
    entry = _entry(event)
    found = entry.get("id") if entry is not None else _ocsf_metadata(event).get("uid")
    if isinstance(found, str) and found:
        return found
    raise _unkeyed(event)


def document_id(event: Event) -> str:
    """A key unique across accounts: ``<account>/<entry id>`` for an entry that names its
    account (an OCSF event: ``metadata.tenant_uid``), else :func:`entry_id` (checkpoint keys name
    their account already)."""
    key = entry_id(event)
    if is_checkpoint(event):
        return key
    entry = _entry(event)
    found = entry if entry is not None else _ocsf_metadata(event)
    account = found.get("account_id" if entry is not None else "tenant_uid")
    return f"{account}/{key}" if isinstance(account, str) and account else key


def _parse_ms(text: object) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // ONE_MS


def epoch_ms(event: Event) -> int | None:
    """When the event happened, in whole milliseconds since the epoch; ``None`` when it does not
    say (the receiver then dates it at arrival)."""
    if is_checkpoint(event):
        return _parse_ms(event["checkpoint"].get("sealed_at"))
    entry = _entry(event)
    if entry is not None:
        return _parse_ms(entry.get("timestamp"))
    ocsf_time = event.get("time")
    return ocsf_time if isinstance(ocsf_time, int) and not isinstance(ocsf_time, bool) else None


def utc_text(event: Event) -> str | None:
    """When the event happened as ``2025-11-26T10:15:00.120Z`` (:func:`rfc3339_ms`); ``None``
    when it does not say. An entry's timestamp is stored in that form: it is taken as it is."""
    entry = _entry(event)
    stamp = entry.get("timestamp") if entry is not None else None
    if isinstance(stamp, str) and STORED_TIMESTAMP.fullmatch(stamp):
        return stamp
    ms = epoch_ms(event)
    return rfc3339_ms(ms) if ms is not None else None


def seconds_text(ms: int) -> str:
    """``1764152100.120``: seconds with exactly three decimals, as Splunk's ``time`` takes."""
    sign, whole = ("-" if ms < 0 else ""), abs(ms)
    return f"{sign}{whole // 1000}.{whole % 1000:03d}"


def rfc3339_ms(ms: int) -> str:
    """``2025-11-26T10:15:00.120Z``."""
    return (EPOCH + ms * ONE_MS).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
