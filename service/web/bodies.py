"""Reading request bodies: bounded in size, read by the one JSON parser.

Every body goes through :func:`read_body` (413 as soon as it passes its limit; a client that
stops sending is cut off by :class:`service.web.security.BodyDeadline` with 408). JSON bodies are
parsed by :func:`ingest.json_input.loads` — the parser of ingest — so that deep nesting, lone
surrogates, invalid UTF-8 and integers past 64 bits are a 400 naming the body on every endpoint.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ingest import json_input
from service.errors import ServiceError, bad_request


def content_length(request: Request) -> int | None:
    """The declared ``Content-Length`` (ASCII digits only), None when absent or not a number."""
    declared = request.headers.get("content-length", "")
    digits = declared.isascii() and declared.isdigit() and len(declared) <= 18
    return int(declared) if digits else None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it passes ``limit`` bytes."""
    too_large = ServiceError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    declared = content_length(request)
    if declared is not None and declared > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The JSON value of a body; 400 naming ``body`` when it is not JSON we can store."""
    try:
        return json_input.loads(body)
    except ValueError as e:  # not JSON, invalid UTF-8, lone surrogates, nesting, 64-bit overflow
        raise bad_request(f"the body is not valid JSON: {e}", field="body") from e


async def read_json_object(request: Request, limit: int) -> dict[str, Any] | None:
    """A JSON object body of at most ``limit`` bytes; None when the body is empty."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return None
    parsed = parse_json(raw)
    if not isinstance(parsed, dict):
        raise bad_request("the body must be a JSON object", field="body")
    return parsed
