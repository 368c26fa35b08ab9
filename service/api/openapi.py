"""The OpenAPI 3.1 document of the public HTTP contract, built from the route table.

Each :class:`Operation` of the table in :mod:`service.api.routes` names its query parameters, its
request body, its success answer (the name of its schema in :mod:`service.api.openapi_schemas`,
and its headers) and its errors; this module turns the table into the document served at
``/openapi.json``. Enums, patterns and limits come from the constants the handlers validate with
(categories, presets, formats, intervals, scopes, id patterns), so the document cannot drift from
what the service accepts. The statuses every request of a kind can get are added here: 429 to
every ``/v1`` request (too many in flight), 408 to every request with a body (one that stops
arriving), and ``Retry-After`` to 503 (sent when the engine cannot be reached).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from service.actions.destinations import DESTINATION_ID
from service.actions.destinations import FORMATS as DESTINATION_FORMATS
from service.actions.destinations import KINDS as DESTINATION_KINDS
from service.actions.feed import DEFAULT_LIMIT as FEED_LIMIT
from service.actions.feed import MAX_LIMIT as FEED_MAX_LIMIT
from service.actions.keys import ACCOUNT_ID, KEY_ID, SCOPES
from service.actions.viewers import PAGE_SCOPES, SESSION_DEFAULT_S, SESSION_MAX_S, SESSION_MIN_S
from service.api.openapi_schemas import (
    ANSWERS,
    DESTINATION_FILTER,
    enum,
    many,
    obj,
    pattern,
    ref,
    text,
    whole,
)
from service.export.writers import WRITERS
from service.search.filters import DEFAULT_RANGE, MAX_VALUE_LENGTH, PRESETS
from service.search.histogram import INTERVALS, SPLITS
from service.search.identifiers import STORED_ID
from service.search.jobs import JOB_ID
from service.search.search_text import MAX_LENGTH as MAX_SEARCH_TEXT
from service.vocabulary import CATEGORIES, PROVIDERS, TYPES
from service.web.query_string import REPEATABLE
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
    schema: str | None = None
    """With a JSON answer: the name of its schema (:data:`~.openapi_schemas.ANSWERS`)."""
    headers: tuple[str, ...] = ()
    """Names of :data:`HEADERS` the success answer carries."""
    pending: bool = False
    """Answers 202 with ``Retry-After`` and a ``Pending`` body while the result is being made."""
    errors: tuple[int, ...] = ()
    """Statuses answered with the JSON error body."""
    unready: bool = False
    """Answers 503 with its own body while the service is not ready."""
    public: bool = False
    """Served without a key (health, the document itself)."""


PARAMETERS: dict[str, tuple[str, dict[str, Any]]] = {
    "account_id": (
        "Required with a platform key; absent or the key's own otherwise",
        text(pattern=pattern(ACCOUNT_ID)),
    ),
    "category": ("Categories (multi-select)", many(enum(CATEGORIES))),
    "type": ("Entry types (multi-select)", many(enum(TYPES))),
    "actor": ("Actor ids (multi-select)", many(text(MAX_VALUE_LENGTH))),
    "provider": ("Integration providers", many(enum(PROVIDERS))),
    "action": ("Actions; a trailing * is a prefix", many(text(MAX_VALUE_LENGTH))),
    "range": ("Preset window in the timezone in effect", enum(PRESETS, default=DEFAULT_RANGE)),
    "from": ("Inclusive start: RFC 3339 instant or YYYY-MM-DD (local midnight)", text()),
    "to": ("Exclusive end: RFC 3339 instant or YYYY-MM-DD (local midnight)", text()),
    "tz": ("IANA timezone of this request (default: the account's)", text()),
    "q": ('Search text: words, "phrases", qualifiers, -negation', text(MAX_SEARCH_TEXT)),
    "size": ("Page size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}),
    "cursor": ("From the previous page", text()),
    "order": ("Sort order", enum(ORDERS)),
    "format": ("File format", enum(WRITERS)),
    "bom": (
        "CSV: start the file with a UTF-8 byte-order mark, so that Excel reads it as UTF-8 "
        "(XLSX and NDJSON files never carry one)",
        {"type": "boolean", "default": False},
    ),
    "interval": ("Bucket size", enum(["auto", *INTERVALS])),
    "split": ("Split buckets by", enum(SPLITS)),
    "keys_of": ("Only this account's keys", text(pattern=pattern(ACCOUNT_ID))),
    "entry_id": ("The entry's id", text(pattern=pattern(STORED_ID))),
    "entry_ids": ("Up to 100 entry ids, comma-separated (instead of id)", text()),
    "tree_size": (
        "The tree size of the checkpoint to prove under (default: the latest)",
        {"type": "integer", "minimum": 1},
    ),
    "from_size": ("The smaller tree size (1 or more)", {"type": "integer", "minimum": 1}),
    "to_size": (
        "The larger tree size (at most the signed head's)",
        {"type": "integer", "minimum": 1},
    ),
    "account": ("Required with a platform key", text(pattern=pattern(ACCOUNT_ID))),
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
EXPORT = (*FILTERS, "format", "order", "bom")
"""The parameters of an export (``GET /v1/export``, ``POST /v1/exports``)."""
PATH_PATTERNS = {
    "account_id": ACCOUNT_ID,
    "key_id": KEY_ID,
    "job_id": JOB_ID,
    "export_id": JOB_ID,
    "destination_id": DESTINATION_ID,
}

ACCOUNT_FIELDS = {"name": text(), "timezone": text()}


def _as_body_field(name: str) -> dict[str, Any]:
    """A query parameter as a field of a JSON object body: a string, or for one that takes
    several values a non-empty array of strings too (``bom`` also JSON's true or false)."""
    schema = PARAMETERS[name][1]
    if name == "bom":
        return {"anyOf": [{"type": "boolean"}, enum(["true", "false"])]}
    if name not in REPEATABLE:  # given once, as in a query string
        return dict(schema)
    item = schema["items"] if schema.get("type") == "array" else schema
    return {"anyOf": [item, {"type": "array", "items": item, "minItems": 1}]}


EXPORT_BODY = obj({SERVED_AS.get(name, name): _as_body_field(name) for name in EXPORT})
"""``POST /v1/exports``: the parameters as a JSON object (merged with those of the query)."""


BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "entries": (
        "application/json",
        {"oneOf": [ref("Entry"), obj({"entries": many(ref("Entry"))}, "entries")]},
    ),
    "ndjson": ("application/x-ndjson", text()),
    "account": (
        "application/json",
        obj({"id": text(), **ACCOUNT_FIELDS, "view_audit": {"type": "boolean"}}, "id"),
    ),
    "account_changes": (
        "application/json",
        obj({**ACCOUNT_FIELDS, "view_audit": {"type": "boolean"}}),
    ),
    "key": (
        "application/json",
        obj(
            {
                "account_id": {
                    "type": ["string", "null"],
                    "description": "Required: the key's account, or null for a platform key",
                },
                "name": text(),
                "scopes": many(enum(SCOPES)),
            },
            "account_id",
            "scopes",
        ),
    ),
    "viewer_session": (
        "application/json",
        obj(
            {
                "viewer": obj(
                    {"id": text(128), "name": text(200), "email": text(254)}, "id", "name"
                ),
                "scopes": many(enum(PAGE_SCOPES)),
                "expires_in_s": {
                    "type": "integer",
                    "minimum": SESSION_MIN_S,
                    "maximum": SESSION_MAX_S,
                    "default": SESSION_DEFAULT_S,
                },
                "return_url": text(2048),
                "account_id": text(pattern=pattern(ACCOUNT_ID)),
            },
            "viewer",
        ),
    ),
    "destination": (
        "application/json",
        obj(
            {
                "account_id": text(pattern=pattern(ACCOUNT_ID)),
                "name": text(2000),
                "kind": enum(list(DESTINATION_KINDS)),
                "url": text(2000),
                "format": enum(list(DESTINATION_FORMATS)),
                "settings": {"type": "object"},
                "secrets": {"type": "object"},
                "filter": DESTINATION_FILTER,
                "start": {"oneOf": [enum(["now"]), {"type": "integer", "minimum": 0}]},
            },
            "name",
            "kind",
            "url",
        ),
    ),
    "destination_changes": (
        "application/json",
        obj(
            {
                "name": text(2000),
                "url": text(2000),
                "settings": {"type": "object"},
                "secrets": {"type": "object"},
                "filter": DESTINATION_FILTER,
                "status": enum(["active", "paused"]),
                "position": {"type": "integer", "minimum": 0},
            }
        ),
    ),
    "export_job": ("application/json", EXPORT_BODY),
}
"""Request bodies: media type and schema."""
OPTIONAL_BODIES = {"export_job"}

ERROR = ref("Error")
HEADERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Retry-After": ("Seconds to wait before asking again", whole()),
    "Location": ("The job's address: GET it for its progress", text()),
    "Content-Disposition": (
        'attachment; filename="audit-log_<account>_<from>_<to>.<ext>" (a manifest: the '
        "export file's name and .manifest.json)",
        text(),
    ),
    "Content-Length": ("The file's size in bytes", whole()),
    "X-Total-Count": ("How many entries the file holds", whole()),
    "X-Export-Id": ("The export's id: its manifest is /v1/exports/{id}/manifest",
                    text(pattern=pattern(JOB_ID))),
    "Link": ('</v1/exports/{id}/manifest>; rel="describedby": the export\'s signed manifest',
             text()),
}  # fmt: skip
"""Response headers: description and schema."""
FILE_TYPES = sorted({writer.media_type.split(";")[0] for writer in WRITERS.values()})
"""The media types of export files (CSV, XLSX, NDJSON)."""


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
         "schema": text(pattern=pattern(PATH_PATTERNS[name]))}
        for name in re.findall(r"\{(\w+)\}", path)
    ]  # fmt: skip


def _headers(names: Iterable[str], required: bool = True) -> dict[str, Any]:
    return {
        name: {"description": HEADERS[name][0], "required": required, "schema": HEADERS[name][1]}
        for name in names
    }


def _json(
    schema: dict[str, Any], description: str, retry_after: bool | None = None
) -> dict[str, Any]:
    """A JSON answer; with ``Retry-After`` always (``True``) or sometimes (``False``)."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if retry_after is not None:
        answer["headers"] = _headers(["Retry-After"], required=retry_after)
    return answer


def _success(op: Operation) -> dict[str, Any]:
    ok: dict[str, Any] = {
        "description": {"json": "OK", "file": "the file", "text": "text", "none": "done"}[op.answer]
    }
    if op.answer == "json":
        if op.schema not in ANSWERS:
            raise ValueError(f"{op.method} {op.path}: a JSON answer names its schema")
        ok["content"] = {"application/json": {"schema": ref(op.schema)}}
    elif op.answer == "file":
        binary = {"schema": {"type": "string", "format": "binary"}}
        ok["content"] = {media: binary for media in FILE_TYPES}
    elif op.answer == "text":
        ok["content"] = {"text/plain": {"schema": text()}}
    if op.headers:
        ok["headers"] = _headers(op.headers)
    return ok


def _answers(op: Operation) -> dict[str, Any]:
    answers = {str(op.status): _success(op)}
    if op.pending:
        answers["202"] = _json(ref("Pending"), "not ready yet: ask again after Retry-After",
                               retry_after=True)  # fmt: skip
    errors = set(op.errors)
    if op.body is not None:
        errors.add(408)  # service.web.security.BodyDeadline: a body that stops arriving
    if op.path.startswith("/v1/"):
        errors.add(429)  # service.web.security.InflightLimit: too many requests in flight
    for code in sorted(errors):
        # 503: Retry-After when the engine is unavailable (not when a setting is missing)
        answers[str(code)] = _json(ERROR, "error", {429: True, 503: False}.get(code))
    if op.unready:
        answers["503"] = _json(ref("Unready"), "not ready", retry_after=True)
    return answers


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "responses": _answers(op)}
    parameters = _path_parameters(op.path) + [_query_parameter(n) for n in op.query]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        media, schema = BODIES[op.body]
        out["requestBody"] = {"required": op.body not in OPTIONAL_BODIES,
                              "content": {media: {"schema": schema}}}  # fmt: skip
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
            "schemas": ANSWERS,
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
