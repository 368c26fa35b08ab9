"""Identifiers in the search text: where they are indexed and how a term finds them whole.

An entry shows ids that the free-text field ``search_text`` does not hold: the entry id, the actor
id, ``webhook_id``, ``signal_id``, ``agent_id``, ``api_key_id``, ``target_id`` (keyword fields
without ``copy_to``) and IP addresses (``ip`` fields). Each is indexed whole in its own field, in
every index old or new, so a word or phrase of ``q`` also matches an entry whose identifier field
holds exactly that text, in any letter case (an address: the same address in any notation). No
reindexing is needed, and a part of an id is never a match: ``wh_8f3a`` finds nothing of
``wh_8f3a1b2c``.

Ids that *are* copied into ``search_text`` (``run_id``, ``record_id``, ``post_urn``, ``url``,
``path``) are found there already: the standard analyzer keeps ``run_…`` whole and a UUID or URL
matches through all of its words. They are left out here to keep the query small (each field is
one more clause per word, and the engine caps clauses per query).

This module also builds the clauses of the ``id:`` and ``actor:`` qualifiers.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from service.errors import bad_request

IDENTIFIER_FIELDS = (
    "id",
    "actor.id",
    "metadata.webhook_id",
    "metadata.signal_id",
    "metadata.agent_id",
    "metadata.api_key_id",
    "metadata.target_id",
)
"""Keyword fields holding ids that ``search_text`` lacks, matched whole and in any case."""
STORED_ID = re.compile(r"^(?:~[0-9a-f]{32}|[A-Za-z0-9._:-]{1,128})\Z")
"""An entry id as stored: one a client sent (``ingest.validation.ENTRY_ID``) or one the service
generated (``~`` and 32 hex digits)."""
IP_FIELDS = ("metadata.ip",)
"""``ip`` fields; a term that is an IP address matches them."""
_LONGEST_ADDRESS = 45
"""The longest IP address text (an IPv6 address ending in IPv4 notation)."""


def ip_address(text: str) -> str | None:
    """The address ``text`` writes, in the engine's canonical form, or None when it is none.

    A zone (``fe80::1%eth0``) is refused: the engine's ``ip`` fields cannot hold one.
    """
    if len(text) > _LONGEST_ADDRESS or "%" in text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def identifier_clauses(text: str) -> list[dict[str, Any]]:
    """Clauses matching an entry that carries ``text`` whole in an identifier field."""
    value = text.strip()
    if not value:
        return []
    clauses: list[dict[str, Any]] = [
        {"term": {field: {"value": value, "case_insensitive": True}}} for field in IDENTIFIER_FIELDS
    ]
    address = ip_address(value)
    if address is not None:
        clauses += [{"term": {field: address}} for field in IP_FIELDS]
    return clauses


def checked_entry_ids(values: list[str]) -> tuple[str, ...]:
    """The values of an ``id:`` qualifier, or a 400 naming ``q`` for one that is no entry id."""
    for value in values:
        if not STORED_ID.match(value):
            raise bad_request(
                f"invalid value {value!r} for qualifier 'id' (an entry id is 1-128 characters "
                "of A-Z a-z 0-9 . _ : -, or ~ and 32 hex digits when generated)",
                field="q",
            )
    return tuple(dict.fromkeys(values))


def actor_clause(values: tuple[str, ...]) -> dict[str, Any]:
    """Entries whose actor has one of ``values`` as id (exact), name (whole, any case) or email
    (any case: the field is lower-cased when indexed and when queried)."""
    clauses: list[dict[str, Any]] = [
        {"terms": {"actor.id": list(values)}},
        {"terms": {"actor.email": list(values)}},
    ]
    clauses += [
        {"term": {"actor.name": {"value": value, "case_insensitive": True}}} for value in values
    ]
    return {"bool": {"should": clauses, "minimum_should_match": 1}}
