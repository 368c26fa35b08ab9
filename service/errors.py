"""The one error family of the service and its JSON rendering.

Every failure a client can cause or observe is a :class:`ServiceError` carrying the HTTP
status, a stable machine-readable ``code``, a human message and, where one input is at fault,
the ``field`` or parameter that caused it. Handlers render it as
``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ServiceError(Exception):
    """An error with an HTTP status, a stable code and optionally the field at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def to_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


def bad_request(message: str, field: str | None = None, code: str = "invalid") -> ServiceError:
    """A 400 naming the parameter or field at fault."""
    return ServiceError(400, code, message, field)


class EngineUnavailable(ServiceError):
    """The engine could not be reached or did not do what was asked: a 503 telling the client
    when to retry. ``detail`` (the engine's own words) is for logs, never for the client."""

    def __init__(self, message: str = "the search engine is unavailable", detail: str = "") -> None:
        super().__init__(503, "engine_unavailable", message, headers={"Retry-After": "5"})
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message} ({self.detail})" if self.detail else self.message


def engine_unavailable(
    message: str = "the search engine is unavailable", detail: str = ""
) -> EngineUnavailable:
    """A 503 telling the client when to retry."""
    return EngineUnavailable(message, detail)


async def service_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = {"error": {"code": code, "message": str(exc.detail), "field": None}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


EXCEPTION_HANDLERS = {
    ServiceError: service_error_handler,
    HTTPException: http_error_handler,
}
