"""Reading request bodies: bounded in size, read by the one JSON parser.

Every body goes through :func:`read_body` (413 as soon as it passes its limit; a client that
stops sending is cut off by :class:`service.web.security.BodyDeadline` with 408). A body sent with
``Content-Encoding: gzip`` is decompressed as it arrives, its limit counted on what it holds (a
small body that inflates past it is a 413); any other encoding is a 415. JSON bodies are
parsed by :func:`ingest.json_input.loads` — the parser of ingest — so that deep nesting, lone
surrogates, invalid UTF-8 and integers past 64 bits are a 400 naming the body on every endpoint.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from starlette.requests import ClientDisconnect, Request

from ingest import json_input
from service.errors import ServiceError, bad_request


def content_length(request: Request) -> int | None:
    """The declared ``Content-Length`` (ASCII digits only), None when absent or not a number."""
    declared = request.headers.get("content-length", "")
    digits = declared.isascii() and declared.isdigit() and len(declared) <= 18
    return int(declared) if digits else None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body (inflated when it is gzip), or 413 as soon as it passes ``limit``
    bytes."""
    too_large = ServiceError(413, "payload_too_large", f"the body is larger than {limit} bytes",
                             "body")  # fmt: skip
    gzip = _Gunzip() if _gzipped(request) else None
    declared = content_length(request)
    if gzip is None and declared is not None and declared > limit:  # gzip: what it holds counts
        raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            if gzip is not None:
                chunk = gzip.inflate(chunk, limit - size)
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect as e:  # nobody reads the answer; nothing was stored
        raise bad_request("the client closed the connection before the body was whole",
                          field="body") from e  # fmt: skip
    if gzip is not None and not gzip.whole():
        raise bad_request("the gzip body is cut short", field="body")
    return b"".join(chunks)


def _gzipped(request: Request) -> bool:
    """Whether the body is gzip (else sent as is); 415 for another encoding."""
    given = [e.strip().lower() for e in request.headers.getlist("content-encoding")]
    encoding = ", ".join(e for e in given if e) if given else "identity"  # every header line
    if encoding in ("gzip", "x-gzip"):
        return True
    if encoding != "identity":
        message = f"Content-Encoding {encoding!r} is not supported: send the body as is or gzip"
        raise ServiceError(415, "unsupported_media_type", message, "Content-Encoding")
    return False


class _Gunzip:
    """A gzip body inflated as it arrives: one member or several (RFC 1952), each after the
    other, as ``gzip -d`` reads them."""

    def __init__(self) -> None:
        self.member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self.started = False

    def inflate(self, chunk: bytes, room: int) -> bytes:
        """What ``chunk`` inflates to, at most ``room + 1`` bytes (enough to know it is too
        much)."""
        out = bytearray()
        try:
            while chunk and len(out) <= room:
                if self.member.eof:  # the next member starts
                    self.member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                self.started = True
                before = len(out), len(chunk)
                out += self.member.decompress(chunk, room + 1 - len(out))
                chunk = self.member.unconsumed_tail or self.member.unused_data
                if (len(out), len(chunk)) == before and not self.member.eof:
                    break  # nothing taken (cannot happen with room left): never loop on it
        except zlib.error as e:
            raise bad_request(f"the body is not valid gzip: {e}", field="body") from e
        return bytes(out)

    def whole(self) -> bool:
        """Every member ended (an empty body is whole too)."""
        return self.member.eof or not self.started


def parse_json(body: bytes) -> Any:
    """The JSON value of a body; 400 naming ``body`` when it is not JSON we can store."""
    try:
        return json_input.loads(body)
    except ValueError as e:  # not JSON, invalid UTF-8, lone surrogates, nesting, 64-bit overflow
        raise bad_request(f"the body is not valid JSON: {e}", field="body") from e


async def read_json_object(request: Request, limit: int) -> dict[str, Any] | None:
    """A JSON object body of at most ``limit`` bytes (a settings body: accounts, keys,
    destinations, viewer links, export jobs); None when the body is empty. A member named twice
    in one object is a 400 naming it: which value was meant cannot be told."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return None
    parsed = parse_json(raw)
    if not isinstance(parsed, dict):
        raise bad_request("the body must be a JSON object", field="body")
    _members_once(raw)
    return parsed


def names_twice(raw: bytes) -> list[str | None] | None:
    """For each object of ``raw`` (valid JSON), in the order the decoder builds them (the
    outermost last), the first member it names twice, or None; None for the whole body when it
    nests deeper than the standard library reads (orjson reads deeper). A second, slower read."""
    found: list[str | None] = []

    def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in members]
        found.append(next((n for i, n in enumerate(names) if n in names[:i]), None)
                     if len(set(names)) < len(names) else None)  # fmt: skip
        return dict(members)

    try:
        json.loads(raw.removeprefix(b"\xef\xbb\xbf"), object_pairs_hook=pairs)
    except RecursionError:
        return None
    return found


def _members_once(raw: bytes) -> None:
    """400 naming a member that an object of ``raw`` (valid JSON) names twice."""
    found = names_twice(raw)
    if found is None:
        raise bad_request("the body is not valid JSON: nested too deeply", field="body")
    twice = next((name for name in found if name is not None), None)
    if twice is not None:
        raise bad_request(f"{twice} is given more than once", field=twice)
