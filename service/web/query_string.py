"""The query string as the client wrote it: each parameter once, in UTF-8, or a 400 naming it.

Starlette decodes a query string leniently: a byte sequence that is not UTF-8 becomes U+FFFD,
and a parameter given twice keeps both values, of which a handler reads one. Either way a request
would be answered for something other than what it asked (a search term dropped, a filter
replaced). :class:`QueryStringRule` checks every request's raw query string before any handler
runs, so every endpoint (the API, the page, whatever reads ``request.query_params``) refuses the
same ones: a parameter whose name or value is not percent-encoded UTF-8, and a parameter given
more than once unless it is one of :data:`REPEATABLE`.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ServiceError, bad_request

REPEATABLE = frozenset({"category", "type", "actor", "action", "provider", "ids"})
"""The parameters that take several values (the view's facets and actions, the ids of
``/v1/integrity/proof``); every other one is given at most once."""


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
"""A ``%`` not followed by two hex digits: not percent-encoding (read literally otherwise)."""


def _utf8(text: str) -> str | None:
    """``text`` of a query string percent-decoded as UTF-8; None when it is not (an encoded
    byte sequence that is not UTF-8, a surrogate, a byte sent unencoded, a ``%`` that encodes
    nothing)."""
    if not text.isascii() or ("%" in text and _BAD_ESCAPE.search(text)):
        return None
    try:
        return unquote(text.replace("+", " "), encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return None


def _name(pair: str) -> str:
    """The name of one ``name=value`` of the query string (read as ``parse_qsl`` reads it); a
    400 naming the parameter when its name or value is not UTF-8."""
    raw_name, _, raw_value = pair.partition("=")
    name = _utf8(raw_name)
    if name is None:  # the name itself is bad: named as it was sent
        message = f"the parameter name '{raw_name}' is not percent-encoded UTF-8"
        raise bad_request(message, field=raw_name)
    if _utf8(raw_value) is None:
        raise bad_request(f"{name} is not percent-encoded UTF-8", field=name)
    return name


def check_query_string(query_string: bytes) -> None:
    """Refuse, with a 400 naming the parameter, a query string that is not UTF-8 or that gives
    a single-valued parameter more than once."""
    seen: set[str] = set()
    for pair in query_string.decode("latin-1").split("&"):
        if not pair:
            continue
        name = _name(pair)
        if name in seen and name not in REPEATABLE:
            raise bad_request(f"{name} is given more than once; it takes one value", field=name)
        seen.add(name)


FORM_MAX_BYTES = 1 << 20
"""The largest form the page takes (its forms hold a view's filters and a few fields)."""


class QueryStringRule:
    """Answers 400 to a request whose query string :func:`check_query_string` refuses: the
    error as JSON under ``/v1/``, as plain text elsewhere (the page, read by a person). The
    page's forms (``application/x-www-form-urlencoded`` bodies, written like a query string)
    are held to the same rule, sent as is (415 for a ``Content-Encoding``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                check_query_string(scope.get("query_string", b""))
                if _page_form(scope):
                    body = await _form_body(scope, receive)
                    if body is None:
                        return  # the client left: nobody reads an answer
                    check_query_string(body)
                    receive = _replay(body, receive)
            except ServiceError as e:
                await _refusal(scope, e)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _page_form(scope: Scope) -> bool:
    if scope["method"] != "POST" or scope["path"].startswith("/v1/"):
        return False
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    return bytes(content_type).startswith(b"application/x-www-form-urlencoded")


async def _form_body(scope: Scope, receive: Receive) -> bytes | None:
    """The form's bytes, whole; None when the client left first."""
    encodings = [v.strip().lower() for k, v in scope["headers"] if k == b"content-encoding"]
    if any(e not in (b"", b"identity") for e in encodings):
        raise ServiceError(415, "unsupported_media_type", "a form is sent as is, without "
                           "Content-Encoding", "Content-Encoding")  # fmt: skip
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > FORM_MAX_BYTES:
            raise ServiceError(413, "payload_too_large", "the form is too large", "body")
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` whole, then what the client sends next."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _refusal(scope: Scope, error: ServiceError) -> Response:
    if scope["path"].startswith("/v1/"):
        return JSONResponse(error.to_dict(), status_code=error.status)
    return PlainTextResponse(f"Bad request: {error.message}", status_code=error.status)
