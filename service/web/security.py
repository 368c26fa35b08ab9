"""Response headers every answer carries, and CORS only where configured.

API responses get ``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store`` (audit data
must not sit in shared caches). CORS is off unless ``AUDITLOG_CORS_ORIGINS`` lists origins. More
than ``AUDITLOG_MAX_INFLIGHT`` concurrent API requests are answered 429 with ``Retry-After``. A
request whose body stops arriving (no byte for ``AUDITLOG_BODY_IDLE_TIMEOUT_S``) or is not whole
within ``AUDITLOG_BODY_TIMEOUT_S`` of its start ends with 408, freeing its slot. A query string
that is not UTF-8 or repeats a single-valued parameter is a 400 naming it
(:mod:`service.web.query_string`). Access log lines show a viewer link as ``/view/[token]``: its
token is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings
from service.errors import ServiceError
from service.web.query_string import QueryStringRule

EXPOSED_HEADERS = ["Content-Disposition", "X-Total-Count", "Retry-After", "X-Export-Id", "Link",
                   "Location"]  # fmt: skip
"""Answer headers a browser's script may read (an export's id and manifest link, a job's URL)."""


class DefaultHeaders:
    """Adds ``headers`` to every response that did not set them itself.

    ``api_headers`` are added only under ``/v1/``.
    """

    def __init__(
        self,
        app: ASGIApp,
        headers: Mapping[str, str],
        api_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.api_headers = [
            (k.lower().encode(), v.encode()) for k, v in (api_headers or {}).items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = self.headers + (self.api_headers if scope["path"].startswith("/v1/") else [])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in wanted if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


BASELINE = {"X-Content-Type-Options": "nosniff"}
API_ONLY = {"Cache-Control": "no-store"}


class InflightLimit:
    """At most ``limit`` API requests at once; beyond that 429 with ``Retry-After``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:
            body = {
                "error": {
                    "code": "overloaded",
                    "message": "too many requests in flight; retry",
                    "field": None,
                }
            }
            response = JSONResponse(body, status_code=429, headers={"Retry-After": "1"})
            await response(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


class BodyDeadline:
    """Cuts off a request whose body comes too slowly: each wait for the next part of the body
    ends after ``idle_s``, and the whole body must be in within ``total_s`` of the request's start.
    Past either, reading the body raises a 408 (the handler reading it answers it). Once the body
    is whole, ``receive`` is passed through untouched (a streaming response waits on it for the
    client to leave)."""

    def __init__(self, app: ASGIApp, idle_s: float, total_s: float) -> None:
        self.app = app
        self.idle_s = idle_s
        self.total_s = total_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_s
        whole = False

        async def receive_in_time() -> Message:
            nonlocal whole
            if whole:
                return await receive()
            wait = min(self.idle_s, deadline - loop.time())
            try:
                async with asyncio.timeout(max(wait, 0)):
                    message = await receive()
            except TimeoutError:
                raise _too_slow(self.idle_s, self.total_s) from None
            whole = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)


def _too_slow(idle_s: float, total_s: float) -> ServiceError:
    return ServiceError(
        408,
        "request_timeout",
        f"the request body did not arrive in time (no byte for {idle_s:g} s, or not whole "
        f"within {total_s:g} s); send it again",
        field="body",
    )


def middleware(settings: Settings) -> list[Middleware]:
    stack = [
        Middleware(DefaultHeaders, headers=BASELINE, api_headers=API_ONLY),
        Middleware(InflightLimit, limit=settings.max_inflight),
        Middleware(
            BodyDeadline, idle_s=settings.body_idle_timeout_s, total_s=settings.body_timeout_s
        ),
    ]
    if settings.cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
                expose_headers=EXPOSED_HEADERS,
            )
        )
    stack.append(Middleware(QueryStringRule))  # inside CORS: a browser may read its 400
    return stack


_LINK_TOKEN = re.compile(r"/view/[A-Za-z0-9_-]+")


class RedactLinkTokens(logging.Filter):
    """Access log lines never carry a viewer link's token (``/view/[token]`` instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and "/view/" in a for a in record.args
        ):
            record.args = tuple(
                _LINK_TOKEN.sub("/view/[token]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def redact_access_log() -> None:
    """Install :class:`RedactLinkTokens` on uvicorn's access log (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactLinkTokens) for f in access.filters):
        access.addFilter(RedactLinkTokens())
