"""The OpenAPI 3.1 document of the public HTTP contract, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.vocabulary import CATEGORIES, PROVIDERS, TYPES

ERROR = {"$ref": "#/components/schemas/Error"}


def _param(
    name: str, description: str, schema: dict[str, Any], repeat: bool = False
) -> dict[str, Any]:
    if repeat:
        schema = {"type": "array", "items": schema}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        "style": "form",
        "explode": True,
    }


FILTERS = [
    _param(
        "account_id",
        "Required with a platform key; absent or the key's own otherwise",
        {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
    ),
    _param(
        "category", "Categories (multi-select)", {"type": "string", "enum": list(CATEGORIES)}, True
    ),
    _param("type", "Entry types (multi-select)", {"type": "string", "enum": list(TYPES)}, True),
    _param("actor", "Actor ids (multi-select)", {"type": "string", "maxLength": 256}, True),
    _param("provider", "Integration providers", {"type": "string", "enum": list(PROVIDERS)}, True),
    _param(
        "action", "Actions; a trailing * is a prefix", {"type": "string", "maxLength": 256}, True
    ),
    _param(
        "range",
        "Preset window in the timezone in effect",
        {"type": "string", "enum": ["1h", "24h", "7d", "30d", "90d", "all"], "default": "7d"},
    ),
    _param(
        "from",
        "Inclusive start: RFC 3339 instant or YYYY-MM-DD (local midnight)",
        {"type": "string"},
    ),
    _param(
        "to", "Exclusive end: RFC 3339 instant or YYYY-MM-DD (local midnight)", {"type": "string"}
    ),
    _param("tz", "IANA timezone of this request (default: the account's)", {"type": "string"}),
    _param(
        "q",
        'Search text: words, "phrases", qualifiers, -negation',
        {"type": "string", "maxLength": 1000},
    ),
]

EXPORT_PARAMETERS = [
    *FILTERS,
    _param("format", "File format", {"type": "string", "enum": ["csv", "xlsx", "ndjson"]}),
    _param("order", "Sort order", {"type": "string", "enum": ["desc", "asc"]}),
]


def _responses(ok: dict[str, Any], *codes: int, status: str = "200") -> dict[str, Any]:
    """The success answer and a JSON error for each of ``codes``."""
    out: dict[str, Any] = {status: ok}
    for code in codes:
        out[str(code)] = {
            "description": "error",
            "content": {"application/json": {"schema": ERROR}},
        }
    return out


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["category", "actor", "action"],
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
        "account_id": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "type": {"type": "string", "enum": list(TYPES)},
        "actor": {
            "type": "object",
            "required": ["type", "id"],
            "properties": {
                "type": {"type": "string", "enum": ["user", "system", "api_key"]},
                "id": {"type": "string"},
                "name": {"type": "string"},
                "email": {"type": "string"},
            },
        },
        "action": {"type": "string"},
        "message": {"type": "string", "maxLength": 10000},
        "metadata": {"type": "object"},
    },
}


def document() -> dict[str, Any]:
    read_errors = (400, 401, 403, 404, 503)
    return {
        "openapi": "3.1.0",
        "info": {"title": "auditlog", "version": "1", "description": "Audit log service API"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "field": {"type": ["string", "null"]},
                            },
                        }
                    },
                },
                "Entry": ENTRY_SCHEMA,
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/entries": {
                "get": {
                    "summary": "Search entries: entries, exact total, facets, cursor",
                    "parameters": [
                        *FILTERS,
                        _param(
                            "size", "Page size", {"type": "integer", "minimum": 1, "maximum": 200}
                        ),
                        _param("cursor", "From the previous page", {"type": "string"}),
                        _param("order", "Sort order", {"type": "string", "enum": ["desc", "asc"]}),
                    ],
                    "responses": _responses(_json({"type": "object"}), *read_errors),
                },
                "post": {
                    "summary": "Ingest one entry or {entries: [...]}",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        ENTRY_SCHEMA,
                                        {
                                            "type": "object",
                                            "properties": {
                                                "entries": {"type": "array", "items": ENTRY_SCHEMA}
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": _responses(
                        _json({"type": "object"}), 400, 401, 403, 413, 415, 503
                    ),
                },
            },
            "/v1/entries/_bulk": {
                "post": {
                    "summary": "Ingest NDJSON, one entry a line",
                    "requestBody": {
                        "required": True,
                        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                    },
                    "responses": _responses(
                        _json({"type": "object"}), 400, 401, 403, 413, 415, 503
                    ),
                }
            },
            "/v1/histogram": {
                "get": {
                    "summary": "Date histogram of the filtered view",
                    "parameters": [
                        *FILTERS,
                        _param(
                            "interval",
                            "Bucket size",
                            {
                                "type": "string",
                                "enum": ["auto", "minute", "hour", "day", "week", "month"],
                            },
                        ),
                        _param(
                            "split",
                            "Split buckets by",
                            {"type": "string", "enum": ["category", "type", "none"]},
                        ),
                    ],
                    "responses": _responses(_json({"type": "object"}), *read_errors),
                }
            },
            "/v1/export": {
                "get": {
                    "summary": "Stream the filtered view as a file",
                    "parameters": EXPORT_PARAMETERS,
                    "responses": _responses({"description": "the file"}, *read_errors),
                }
            },
            "/v1/exports": {
                "post": {
                    "summary": "Start an export job (same parameters as /v1/export)",
                    "parameters": EXPORT_PARAMETERS,
                    "responses": _responses(
                        _json({"type": "object"}, "the job"), *read_errors, status="202"
                    ),
                }
            },
            "/v1/exports/{job_id}": {
                "get": {
                    "summary": "An export job's progress",
                    "parameters": [
                        {
                            "name": "job_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": _responses(_json({"type": "object"}), 401, 403, 404),
                }
            },
            "/v1/exports/{job_id}/download": {
                "get": {
                    "summary": "An export job's file",
                    "parameters": [
                        {
                            "name": "job_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": _responses({"description": "the file"}, 401, 403, 404, 409, 410),
                }
            },
            "/v1/admin/accounts": {
                "get": {
                    "summary": "List accounts",
                    "responses": _responses(_json({"type": "object"}), 401, 403),
                },
                "post": {
                    "summary": "Create an account",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["id"],
                                    "properties": {
                                        "id": {"type": "string"},
                                        "name": {"type": "string"},
                                        "timezone": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": _responses(
                        _json({"type": "object"}, "created"), 400, 401, 403, 409, status="201"
                    ),
                },
            },
            "/v1/admin/keys": {
                "get": {
                    "summary": "List keys (never their secrets)",
                    "parameters": [
                        _param("account_id", "Only this account's keys", {"type": "string"})
                    ],
                    "responses": _responses(_json({"type": "object"}), 401, 403),
                },
                "post": {
                    "summary": "Create a key (the secret is shown once)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["scopes"],
                                    "properties": {
                                        "account_id": {"type": ["string", "null"]},
                                        "name": {"type": "string"},
                                        "scopes": {
                                            "type": "array",
                                            "items": {
                                                "type": "string",
                                                "enum": ["ingest", "read", "export", "admin"],
                                            },
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": _responses(
                        _json({"type": "object"}, "created"), 400, 401, 403, 404, status="201"
                    ),
                },
            },
            "/v1/admin/accounts/{account_id}": {
                "patch": {
                    "summary": "Change an account's name or timezone",
                    "parameters": [
                        {
                            "name": "account_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "name": {"type": "string"},
                                        "timezone": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": _responses(_json({"type": "object"}), 400, 401, 403, 404),
                }
            },
            "/v1/admin/keys/{key_id}": {
                "delete": {
                    "summary": "Revoke a key",
                    "parameters": [
                        {
                            "name": "key_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": _responses(
                        {"description": "revoked"}, 401, 403, 404, status="204"
                    ),
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {"200": {"description": "alive"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness",
                    "security": [],
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(document())
