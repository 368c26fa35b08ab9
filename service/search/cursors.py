"""Opaque, signed cursors for ``search_after`` paging.

A cursor carries the account, the digest of the filters it was made for, the frozen window, the
sort order, the point in time and the sort values of the last entry. It is signed with HMAC-SHA256,
so it cannot be forged into another account's data or reused with different filters: any change
is a 400. The sort ``(timestamp, id)`` is a total order within an account (ids are unique there),
so paging stays exact even when the point in time has expired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Any

from service.errors import bad_request


@dataclass(frozen=True)
class EntryCursor:
    account_id: str
    fingerprint: str
    order: str
    start: str | None
    end: str
    pit: str | None
    after: list[Any]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(cursor: EntryCursor, secret: bytes) -> str:
    payload = json.dumps(asdict(cursor), separators=(",", ":")).encode()
    signature = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def decode_cursor(text: str, secret: bytes, account_id: str, fingerprint: str) -> EntryCursor:
    """The cursor, if it is genuine and was made for this account and these filters."""
    invalid = bad_request("cursor is invalid or was made for another query", field="cursor")
    try:
        head, _, tail = text.partition(".")
        payload, signature = _unb64(head), _unb64(tail)
    except (binascii.Error, ValueError) as e:
        raise invalid from e
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise invalid
    cursor = EntryCursor(**json.loads(payload))
    if cursor.account_id != account_id or cursor.fingerprint != fingerprint:
        raise invalid
    return cursor
