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

from urllib.parse import unquote

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ServiceError, bad_request

REPEATABLE = frozenset({"category", "type", "actor", "action", "provider", "ids"})
"""The parameters that take several values (the view's facets and actions, the ids of
``/v1/integrity/proof``); every other one is given at most once."""


def _utf8(text: str) -> str | None:
    """``text`` of a query string percent-decoded as UTF-8; None when it is not (an encoded
    byte sequence that is not UTF-8, a surrogate, a byte sent unencoded)."""
    if not text.isascii():
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


class QueryStringRule:
    """Answers 400 to a request whose query string :func:`check_query_string` refuses: the
    error as JSON under ``/v1/``, as plain text elsewhere (the page, read by a person)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                check_query_string(scope.get("query_string", b""))
            except ServiceError as e:
                await _refusal(scope, e)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(scope: Scope, error: ServiceError) -> Response:
    if scope["path"].startswith("/v1/"):
        return JSONResponse(error.to_dict(), status_code=error.status)
    return PlainTextResponse(f"Bad request: {error.message}", status_code=error.status)
