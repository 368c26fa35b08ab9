"""The JSON Schemas of the OpenAPI document: entries as sent, and every success answer's shape.

:mod:`service.api.openapi` names these as ``components/schemas`` and each operation of the route
table names its answer's schema (:data:`ANSWERS`). Enums and patterns come from the constants the
service builds its answers with (categories, scopes, id patterns, statuses); objects stay open
(``additionalProperties`` unset): later versions add fields, never remove them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ingest.validation import ENTRY_ID, MAX_MESSAGE
from service.actions.destinations import DESTINATION_ID, STATUSES
from service.actions.destinations import FORMATS as DESTINATION_FORMATS
from service.actions.destinations import KINDS as DESTINATION_KINDS
from service.actions.keys import ACCOUNT_ID, KEY_ID, SCOPES
from service.actions.viewers import PAGE_SCOPES, SESSION_MAX_S, SESSION_MIN_S
from service.export.writers import WRITERS
from service.search.histogram import INTERVALS
from service.search.identifiers import STORED_ID
from service.search.jobs import JOB_ID
from service.search.queries import FACET_FIELDS
from service.search.search_text import MAX_LENGTH as MAX_SEARCH_TEXT
from service.vocabulary import ACTOR_TYPES, CATEGORIES, TYPES
from service.web.view_request import ORDERS


def pattern(regex: re.Pattern[str]) -> str:
    """A Python pattern anchored with ``\\Z`` as the ECMA-262 pattern OpenAPI expects."""
    return regex.pattern.removesuffix(r"\Z") + "$"


def text(max_length: int | None = None, **more: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", **more}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def enum(values: Iterable[str], **more: Any) -> dict[str, Any]:
    return {"type": "string", "enum": list(values), **more}


def many(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def obj(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def whole(minimum: int = 0) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def fields(schema: dict[str, Any], **more: Any) -> dict[str, Any]:
    """Every field of an object ``schema``, plus ``more``; all required."""
    properties = {**schema["properties"], **more}
    return obj(properties, *properties)


INSTANT = text(format="date-time")
HEX_DIGEST = text(pattern="^[0-9a-f]{64}$")
ACCOUNT = text(pattern=pattern(ACCOUNT_ID))
ACTOR = obj(
    {"type": enum(ACTOR_TYPES), "id": text(), "name": text(), "email": text()}, "type", "id"
)

ENTRY: dict[str, Any] = obj(
    {
        "id": text(pattern=pattern(ENTRY_ID)),
        "account_id": ACCOUNT,
        "timestamp": INSTANT,
        "category": enum(CATEGORIES),
        "type": enum(TYPES),
        "actor": ACTOR,
        "action": text(),
        "message": text(MAX_MESSAGE),
        "metadata": {"type": "object"},
    },
    "category",
    "actor",
    "action",
)
"""An entry as a client sends it."""

STORED_ENTRY = fields(
    ENTRY,
    id=text(pattern=pattern(STORED_ID), description="Sent, or generated: ~ and 32 hex digits"),
    local_time=text(format="date-time", description="timestamp with the offset of the view's tz"),
)
"""An entry as reads return it: every field, and ``local_time``."""

FEED_ENTRY = {
    "allOf": [
        ref("StoredEntry"),
        obj(
            {
                "position": whole(1),
                "entry_digest": HEX_DIGEST,
                "missing": {
                    "const": True,
                    "description": "In the log, no longer stored (deleted behind the service)",
                },
            },
            "position",
            "entry_digest",
        ),
    ]
}

ERROR = obj({"error": obj({"code": text(), "message": text(), "field": nullable(text())},
                          "code", "message", "field")}, "error")  # fmt: skip

FACET_BUCKET = obj(
    {"value": text(), "count": whole(), "selected": {"type": "boolean"},
     "label": text(description="actor facet: the actor's name")},
    "value", "count", "selected",
)  # fmt: skip
ENTRIES_PAGE = obj(
    {
        "entries": many(ref("StoredEntry")),
        "total": whole(),
        "total_relation": enum(["eq", "gte"]),
        "facets": fields(obj({facet: many(FACET_BUCKET) for facet in FACET_FIELDS})),
        "facets_timed_out": many(enum(FACET_FIELDS)),
        "next_cursor": nullable(text()),
    },
    "entries",
    "total",
    "total_relation",
    "facets",
    "next_cursor",
)
HISTOGRAM = obj(
    {
        "interval": enum(INTERVALS),
        "tz": text(),
        "total": whole(),
        "buckets": many(
            obj(
                {
                    "start": INSTANT,
                    "count": whole(),
                    "split": {"type": "object", "additionalProperties": whole()},
                },
                "start",
                "count",
            )
        ),
    },
    "interval",
    "tz",
    "total",
    "buckets",
)
FEED = obj(
    {"entries": many(ref("FeedEntry")), "next_after": whole(), "head": whole(),
     "more": {"type": "boolean"}},
    "entries", "next_after", "head", "more",
)  # fmt: skip
INGEST_RESULTS = fields(
    obj(
        {
            "results": many(
                obj(
                    {
                        "id": nullable(text()),
                        "status": enum(["created", "duplicate", "rejected", "failed"]),
                        "line": whole(1),
                        "error": obj({"field": nullable(text()), "message": text()}, "message"),
                    },
                    "id",
                    "status",
                )
            ),
            "created": whole(),
            "duplicates": whole(),
            "rejected": whole(),
            "failed": whole(),
        }
    )
)

CHECKPOINT = fields(
    obj(
        {
            "account_id": ACCOUNT,
            "genesis": {"type": "boolean"},
            "key_id": text(pattern="^[0-9a-f]{16}$"),
            "previous": text(pattern="^([0-9a-f]{64})?$"),
            "root": HEX_DIGEST,
            "sealed_at": INSTANT,
            "seq": whole(1),
            "tree_size": whole(1),
            "signature": text(description="Ed25519, base64"),
        }
    )
)
LEAF = fields(obj({"id": text(), "category": enum(CATEGORIES), "timestamp": INSTANT,
                   "digest": HEX_DIGEST}))  # fmt: skip
SEALED = obj(
    {"id": text(), "position": whole(), "leaf": LEAF, "leaf_hash": HEX_DIGEST,
     "proof": many(HEX_DIGEST)},
    "id", "position", "leaf", "leaf_hash", "proof",
)  # fmt: skip
PROOF = {
    "oneOf": [
        {"allOf": [SEALED, obj({"checkpoint": ref("Checkpoint")}, "checkpoint")]},
        obj(
            {
                "checkpoint": ref("Checkpoint"),
                "proofs": many(
                    {"oneOf": [SEALED, obj({"id": text(), "error": text()}, "id", "error")]}
                ),
            },
            "checkpoint",
            "proofs",
        ),
    ],
    "description": "With id: the entry's proof. With ids: {checkpoint, proofs}, in order.",
}
CONSISTENCY = fields(
    obj(
        {
            "from": whole(1),
            "to": whole(1),
            "proof": many(HEX_DIGEST),
            "checkpoints": {
                "type": "object",
                "description": "By tree size: the checkpoint signed at it, or null",
                "additionalProperties": nullable(ref("Checkpoint")),
            },
        }
    )
)
PUBLIC_KEYS = fields(
    obj(
        {
            "current": text(),
            "keys": many(fields(obj({"key_id": text(), "algorithm": enum(["Ed25519"]),
                                     "public_key_pem": text()}))),
        }
    )
)  # fmt: skip


def _problems(item: str) -> dict[str, Any]:
    """A kind of problem of the verification: how many, and up to 100 of them."""
    listed = {
        "entries": obj({"id": nullable(text()), "position": whole()}),
        "checkpoints": obj({"seq": nullable(whole(1)), "reason": text()}, "reason"),
    }
    return fields(obj({"count": whole(), item: many(listed[item])}))  # fmt: skip


VERIFY_REPORT = obj(
    {
        "account_id": ACCOUNT,
        "ok": {"type": "boolean"},
        "tree_size": whole(),
        "checkpoints": whole(),
        "entries_checked": whole(),
        "altered": _problems("entries"),
        "missing": _problems("entries"),
        "unsealed": _problems("entries"),
        "broken": _problems("checkpoints"),
        "lawfully_deleted": whole(),
        "pending": whole(),
    },
    "account_id", "ok", "tree_size", "checkpoints", "entries_checked", "altered", "missing",
    "unsealed", "broken", "lawfully_deleted", "pending",
)  # fmt: skip

ACCOUNT_ANSWER = fields(
    obj({"id": ACCOUNT, "name": text(), "timezone": text(), "view_audit": {"type": "boolean"}})
)
KEY = fields(
    obj(
        {
            "id": text(pattern=pattern(KEY_ID)),
            "name": text(),
            "account_id": nullable(ACCOUNT),
            "scopes": many(enum(SCOPES)),
            "created_at": INSTANT,
            "revoked_at": nullable(INSTANT),
        }
    )
)
NEW_KEY = {
    "allOf": [
        ref("Key"),
        obj({"key": text(pattern="^alk_", description="The secret, shown this once")}, "key"),
    ]
}
VIEWER_LINK = fields(
    obj(
        {
            "url": text(format="uri"),
            "account_id": ACCOUNT,
            "expires_at": INSTANT,
            "session_expires_in_s": {
                "type": "integer",
                "minimum": SESSION_MIN_S,
                "maximum": SESSION_MAX_S,
            },
            "scopes": many(enum(PAGE_SCOPES)),
        }
    )
)

EXPORT_JOB = obj(
    {
        "id": text(pattern=pattern(JOB_ID)),
        "account_id": ACCOUNT,
        "status": enum(["queued", "running", "done", "failed", "expired"]),
        "format": enum(WRITERS),
        "filename": text(),
        "filters": {"type": "object", "description": "The filters, the frozen window and tz"},
        "rows_done": whole(),
        "rows_total": whole(),
        "size": nullable(whole()),
        "sha256": nullable(HEX_DIGEST),
        "error": nullable(text()),
        "created_at": INSTANT,
        "updated_at": INSTANT,
        "expires_at": INSTANT,
        "download": text(description="When done"),
        "manifest": text(description="When done"),
    },
    "id", "account_id", "status", "format", "filename", "filters", "rows_done", "rows_total",
    "size", "sha256", "error", "created_at", "updated_at", "expires_at",
)  # fmt: skip
MANIFEST = fields(
    obj(
        {
            "version": {"type": "integer", "const": 1},
            "export_id": text(pattern=pattern(JOB_ID)),
            "account_id": ACCOUNT,
            "format": enum(WRITERS),
            "filename": text(),
            "filters": {"type": "object"},
            "from": text(description='An RFC 3339 instant, or "beginning"'),
            "to": INSTANT,
            "timezone": text(),
            "order": enum(ORDERS),
            "rows": whole(),
            "rows_sha256": HEX_DIGEST,
            "file_sha256": HEX_DIGEST,
            "file_bytes": whole(),
            "head": nullable(ref("Checkpoint")),
            "rows_unsealed": whole(),
            "created_at": INSTANT,
            "key_id": text(),
            "signature": text(description="Ed25519 over the canonical JSON of the other fields"),
        }
    )
)
PENDING = fields(obj({"status": enum(["pending"]), "message": text()}))

DESTINATION_FILTER = obj(
    {
        "categories": many(enum(CATEGORIES)),
        "types": many(enum(TYPES)),
        "q": text(MAX_SEARCH_TEXT, description="Search text, as q of /v1/entries (dates in UTC)"),
    }
)
"""A destination's filter: entries of these categories and types that the search text matches."""
DESTINATION = obj(
    {
        "id": text(pattern=pattern(DESTINATION_ID)),
        "account_id": ACCOUNT,
        "name": text(),
        "kind": enum(DESTINATION_KINDS),
        "url": text(),
        "format": enum(DESTINATION_FORMATS),
        "settings": {"type": "object"},
        "filter": DESTINATION_FILTER,
        "secrets_set": many(text()),
        "status": enum(STATUSES),
        "status_reason": nullable(text()),
        "position": whole(),
        "created_at": INSTANT,
        "updated_at": INSTANT,
        "paused_at": nullable(INSTANT),
        "health": obj(
            {
                "delivered": whole(),
                "failed": whole(),
                "last_success_at": nullable(INSTANT),
                "last_error": nullable(text()),
                "last_error_at": nullable(INSTANT),
                "failing_since": nullable(INSTANT),
                "lag_entries": whole(),
                "checkpoint_seq": whole(),
            },
            "delivered",
            "failed",
        ),
        "lag": nullable(
            fields(obj({"entries": whole(), "seconds": nullable({"type": "number", "minimum": 0})}))
        ),
    },
    "id", "account_id", "name", "kind", "url", "format", "settings", "filter", "secrets_set",
    "status", "status_reason", "position", "created_at", "updated_at", "health",
)  # fmt: skip
"""A destination (never its secrets); reads add ``lag``, read live (null: the log cannot tell)."""
DESTINATION_READ = {"allOf": [ref("Destination"), {"required": ["lag"]}]}

ANSWERS: dict[str, dict[str, Any]] = {
    "Entry": ENTRY,
    "Error": ERROR,
    "StoredEntry": STORED_ENTRY,
    "FeedEntry": FEED_ENTRY,
    "EntriesPage": ENTRIES_PAGE,
    "Histogram": HISTOGRAM,
    "Feed": FEED,
    "IngestResults": INGEST_RESULTS,
    "Checkpoint": CHECKPOINT,
    "Proof": PROOF,
    "Consistency": CONSISTENCY,
    "PublicKeys": PUBLIC_KEYS,
    "VerifyReport": VERIFY_REPORT,
    "Account": ACCOUNT_ANSWER,
    "Accounts": fields(obj({"accounts": many(ref("Account"))})),
    "Key": KEY,
    "NewKey": NEW_KEY,
    "Keys": fields(obj({"keys": many(ref("Key"))})),
    "ViewerLink": VIEWER_LINK,
    "ExportJob": EXPORT_JOB,
    "Manifest": MANIFEST,
    "Pending": PENDING,
    "Destination": DESTINATION,
    "DestinationRead": DESTINATION_READ,
    "Destinations": fields(obj({"destinations": many(ref("DestinationRead"))})),
    "Live": fields(obj({"status": enum(["ok"])})),
    "Ready": fields(obj({"status": enum(["ready"]), "engine": enum(["green", "yellow", "red"]),
                         "setup": enum(["current"])})),
    "Unready": obj({"status": enum(["unavailable"]), "engine": text(), "setup": enum(["pending"]),
                    "detail": text()}, "status", "engine"),
}  # fmt: skip
"""``components/schemas``: request and answer shapes, by name (operations name their answer's)."""
