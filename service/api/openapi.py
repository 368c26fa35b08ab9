"""The OpenAPI 3.1 document of the public HTTP contract, built from the route table.

Each :class:`Operation` of the table in :mod:`service.api.routes` names its query parameters, its
request body, its success answer and its errors; this module turns the table into the document
served at ``/openapi.json``. Enums, patterns and limits come from the constants the handlers
validate with (categories, presets, formats, intervals, scopes, id patterns), so the document
cannot drift from what the service accepts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from ingest.validation import ENTRY_ID, MAX_MESSAGE
from service.actions.destinations import DESTINATION_ID
from service.actions.destinations import FORMATS as DESTINATION_FORMATS
from service.actions.destinations import KINDS as DESTINATION_KINDS
from service.actions.feed import DEFAULT_LIMIT as FEED_LIMIT
from service.actions.feed import MAX_LIMIT as FEED_MAX_LIMIT
from service.actions.keys import ACCOUNT_ID, KEY_ID, SCOPES
from service.actions.viewers import PAGE_SCOPES, SESSION_DEFAULT_S, SESSION_MAX_S, SESSION_MIN_S
from service.export.writers import WRITERS
from service.search.filters import DEFAULT_RANGE, MAX_VALUE_LENGTH, PRESETS
from service.search.histogram import INTERVALS, SPLITS
from service.search.identifiers import STORED_ID
from service.search.jobs import JOB_ID
from service.search.search_text import MAX_LENGTH as MAX_SEARCH_TEXT
from service.vocabulary import ACTOR_TYPES, CATEGORIES, PROVIDERS, TYPES
from service.web.view_request import MAX_PAGE_SIZE, ORDERS

Endpoint = Callable[[Request], Awaitable[Response]]
Answer = Literal["json", "file", "text", "none"]


@dataclass(frozen=True)
class Operation:
    """One method on one path: its handler, and what the document says of it."""

    method: str
    path: str
    endpoint: Endpoint
    summary: str
    query: tuple[str, ...] = ()
    """Names of :data:`PARAMETERS`."""
    body: str | None = None
    """A key of :data:`BODIES`."""
    status: int = 200
    answer: Answer = "json"
    errors: tuple[int, ...] = ()
    """Statuses answered with the JSON error body."""
    unready: bool = False
    """Answers 503 with its own body while the service is not ready."""
    public: bool = False
    """Served without a key (health, the document itself)."""


def pattern(regex: re.Pattern[str]) -> str:
    """A Python pattern anchored with ``\\Z`` as the ECMA-262 pattern OpenAPI expects."""
    return regex.pattern.removesuffix(r"\Z") + "$"


def _text(max_length: int | None = None, **more: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", **more}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def _enum(values: Iterable[str], **more: Any) -> dict[str, Any]:
    return {"type": "string", "enum": list(values), **more}


def _many(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


PARAMETERS: dict[str, tuple[str, dict[str, Any]]] = {
    "account_id": (
        "Required with a platform key; absent or the key's own otherwise",
        _text(pattern=pattern(ACCOUNT_ID)),
    ),
    "category": ("Categories (multi-select)", _many(_enum(CATEGORIES))),
    "type": ("Entry types (multi-select)", _many(_enum(TYPES))),
    "actor": ("Actor ids (multi-select)", _many(_text(MAX_VALUE_LENGTH))),
    "provider": ("Integration providers", _many(_enum(PROVIDERS))),
    "action": ("Actions; a trailing * is a prefix", _many(_text(MAX_VALUE_LENGTH))),
    "range": ("Preset window in the timezone in effect", _enum(PRESETS, default=DEFAULT_RANGE)),
    "from": ("Inclusive start: RFC 3339 instant or YYYY-MM-DD (local midnight)", _text()),
    "to": ("Exclusive end: RFC 3339 instant or YYYY-MM-DD (local midnight)", _text()),
    "tz": ("IANA timezone of this request (default: the account's)", _text()),
    "q": ('Search text: words, "phrases", qualifiers, -negation', _text(MAX_SEARCH_TEXT)),
    "size": ("Page size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}),
    "cursor": ("From the previous page", _text()),
    "order": ("Sort order", _enum(ORDERS)),
    "format": ("File format", _enum(WRITERS)),
    "bom": (
        "CSV: start the file with a UTF-8 byte-order mark, so that Excel reads it as UTF-8 "
        "(XLSX and NDJSON files never carry one)",
        {"type": "boolean", "default": False},
    ),
    "interval": ("Bucket size", _enum(["auto", *INTERVALS])),
    "split": ("Split buckets by", _enum(SPLITS)),
    "keys_of": ("Only this account's keys", _text(pattern=pattern(ACCOUNT_ID))),
    "entry_id": ("The entry's id", _text(pattern=pattern(STORED_ID))),
    "entry_ids": ("Up to 100 entry ids, comma-separated (instead of id)", _text()),
    "tree_size": (
        "The tree size of the checkpoint to prove under (default: the latest)",
        {"type": "integer", "minimum": 1},
    ),
    "from_size": ("The smaller tree size (1 or more)", {"type": "integer", "minimum": 1}),
    "to_size": (
        "The larger tree size (at most the signed head's)",
        {"type": "integer", "minimum": 1},
    ),
    "account": ("Required with a platform key", _text(pattern=pattern(ACCOUNT_ID))),
    "after": (
        "The last position read: entries of later positions are returned (0: from the first)",
        {"type": "integer", "minimum": 0, "default": 0},
    ),
    "limit": (
        "How many positions to read at most",
        {"type": "integer", "minimum": 1, "maximum": FEED_MAX_LIMIT, "default": FEED_LIMIT},
    ),
}
"""Every query parameter: its description and schema; some are served under another name
(:data:`SERVED_AS`)."""
SERVED_AS = {"keys_of": "account_id", "entry_id": "id", "entry_ids": "ids", "from_size": "from",
             "to_size": "to", "account": "account_id"}  # fmt: skip

FILTERS = ("account_id", "category", "type", "actor", "provider", "action", "range", "from",
           "to", "tz", "q")  # fmt: skip
PATH_PATTERNS = {
    "account_id": ACCOUNT_ID,
    "key_id": KEY_ID,
    "job_id": JOB_ID,
    "export_id": JOB_ID,
    "destination_id": DESTINATION_ID,
}

ENTRY: dict[str, Any] = {
    "type": "object",
    "required": ["category", "actor", "action"],
    "properties": {
        "id": _text(pattern=pattern(ENTRY_ID)),
        "account_id": _text(pattern=pattern(ACCOUNT_ID)),
        "timestamp": _text(format="date-time"),
        "category": _enum(CATEGORIES),
        "type": _enum(TYPES),
        "actor": {
            "type": "object",
            "required": ["type", "id"],
            "properties": {
                "type": _enum(ACTOR_TYPES),
                "id": _text(),
                "name": _text(),
                "email": _text(),
            },
        },
        "action": _text(),
        "message": _text(MAX_MESSAGE),
        "metadata": {"type": "object"},
    },
}
ENTRY_REF = {"$ref": "#/components/schemas/Entry"}
ACCOUNT_FIELDS = {"name": _text(), "timezone": _text()}


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


DESTINATION_FILTER = _object(
    {
        "categories": _many(_enum(CATEGORIES)),
        "types": _many(_enum(TYPES)),
        "q": _text(MAX_SEARCH_TEXT, description="Search text, as q of /v1/entries (dates in UTC)"),
    }
)
"""A destination's filter: entries of these categories and types that the search text matches."""

BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "entries": ("application/json", {"oneOf": [ENTRY_REF, _object({"entries": _many(ENTRY_REF)})]}),
    "ndjson": ("application/x-ndjson", _text()),
    "account": (
        "application/json",
        _object({"id": _text(), **ACCOUNT_FIELDS, "view_audit": {"type": "boolean"}}, "id"),
    ),
    "account_changes": (
        "application/json",
        _object({**ACCOUNT_FIELDS, "view_audit": {"type": "boolean"}}),
    ),
    "key": (
        "application/json",
        _object(
            {
                "account_id": {
                    "type": ["string", "null"],
                    "description": "Required: the key's account, or null for a platform key",
                },
                "name": _text(),
                "scopes": _many(_enum(SCOPES)),
            },
            "account_id",
            "scopes",
        ),
    ),
    "viewer_session": (
        "application/json",
        _object(
            {
                "viewer": _object(
                    {"id": _text(128), "name": _text(200), "email": _text(254)}, "id", "name"
                ),
                "scopes": _many(_enum(PAGE_SCOPES)),
                "expires_in_s": {
                    "type": "integer",
                    "minimum": SESSION_MIN_S,
                    "maximum": SESSION_MAX_S,
                    "default": SESSION_DEFAULT_S,
                },
                "return_url": _text(2048),
                "account_id": _text(pattern=pattern(ACCOUNT_ID)),
            },
            "viewer",
        ),
    ),
    "destination": (
        "application/json",
        _object(
            {
                "account_id": _text(pattern=pattern(ACCOUNT_ID)),
                "name": _text(2000),
                "kind": _enum(list(DESTINATION_KINDS)),
                "url": _text(2000),
                "format": _enum(list(DESTINATION_FORMATS)),
                "settings": {"type": "object"},
                "secrets": {"type": "object"},
                "filter": DESTINATION_FILTER,
                "start": {"oneOf": [_enum(["now"]), {"type": "integer", "minimum": 0}]},
            },
            "name",
            "kind",
            "url",
        ),
    ),
    "destination_changes": (
        "application/json",
        _object(
            {
                "name": _text(2000),
                "url": _text(2000),
                "settings": {"type": "object"},
                "secrets": {"type": "object"},
                "filter": DESTINATION_FILTER,
                "status": _enum(["active", "paused"]),
                "position": {"type": "integer", "minimum": 0},
            }
        ),
    ),
}
"""Request bodies: media type and schema."""

ERROR = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = _object(
    {"error": _object({"code": _text(), "message": _text(), "field": {"type": ["string", "null"]}})}
)


def _query_parameter(name: str) -> dict[str, Any]:
    description, schema = PARAMETERS[name]
    return {
        "name": SERVED_AS.get(name, name),
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        "style": "form",
        "explode": True,
    }


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True,
         "schema": _text(pattern=pattern(PATH_PATTERNS[name]))}
        for name in re.findall(r"\{(\w+)\}", path)
    ]  # fmt: skip


def _answers(op: Operation) -> dict[str, Any]:
    ok: dict[str, Any] = {
        "description": {"json": "OK", "file": "the file", "text": "text", "none": "done"}[op.answer]
    }
    if op.answer == "json":
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    answers = {str(op.status): ok}
    for code in op.errors:
        answers[str(code)] = {
            "description": "error",
            "content": {"application/json": {"schema": ERROR}},
        }
    if op.unready:
        answers["503"] = {"description": "not ready", "content": {"application/json": {}}}
    return answers


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "responses": _answers(op)}
    parameters = _path_parameters(op.path) + [_query_parameter(n) for n in op.query]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        media, schema = BODIES[op.body]
        out["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
    if op.public:
        out["security"] = []
    return out


def document(operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI document of ``operations``."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "auditlog", "version": "1", "description": "Audit log service API"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA, "Entry": ENTRY},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
