"""The page's routes, each wrapped in the security headers, and its static files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from service.config import Settings
from service.page import destination_pages, exports, handlers, session
from service.page.html import BASE_PATH, STATIC_DIR, security_headers
from service.web.security import DefaultHeaders

STATIC_TYPES = {"page.css": "text/css; charset=utf-8", "page.js": "text/javascript; charset=utf-8"}


async def static_file(request: Request) -> Response:
    """One of the page's own static files (a fixed list: nothing else on disk is reachable)."""
    name = request.path_params["name"]
    if name not in STATIC_TYPES:
        return PlainTextResponse("not found", status_code=404)
    body = (STATIC_DIR / name).read_bytes()
    return Response(
        body, media_type=STATIC_TYPES[name], headers={"Cache-Control": "public, max-age=86400"}
    )


def streaming_routes() -> list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]]:
    """Settings → Audit logs → Streaming (:mod:`.destination_pages`)."""
    stream, one = f"{BASE_PATH}/streaming", f"{BASE_PATH}/streaming/{{destination_id}}"
    return [
        (stream, destination_pages.streaming, ["GET"]),
        (f"{stream}/new", destination_pages.new_destination, ["GET"]),
        (f"{stream}/new", destination_pages.create, ["POST"]),
        (f"{one}/pause", destination_pages.pause, ["POST"]),
        (f"{one}/resume", destination_pages.resume, ["POST"]),
        (f"{one}/delete", destination_pages.confirm_delete, ["GET"]),
        (f"{one}/delete", destination_pages.delete, ["POST"]),
    ]


def routes(settings: Settings) -> list[Route]:
    """Every route of the Audit Logs page, to add to the application's routes."""
    secured = [Middleware(DefaultHeaders, headers=security_headers(settings.frame_ancestors))]
    table = [
        (BASE_PATH, handlers.audit_logs, ["GET"]),
        (f"{BASE_PATH}/sign-in", session.sign_in, ["POST"]),
        (f"{BASE_PATH}/sign-out", session.sign_out, ["POST"]),
        (f"{BASE_PATH}/view/{{token}}", session.view_link, ["GET"]),
        (f"{BASE_PATH}/view/{{token}}", session.open_view_link, ["POST"]),
        (f"{BASE_PATH}/export", exports.export, ["POST"]),
        (f"{BASE_PATH}/exports/{{job_id}}", exports.job_page, ["GET"]),
        (f"{BASE_PATH}/exports/{{job_id}}/download", exports.job_download, ["GET"]),
        (f"{BASE_PATH}/exports/{{job_id}}/manifest", exports.manifest_download, ["GET"]),
        (f"{BASE_PATH}/static/{{name}}", static_file, ["GET"]),
        *streaming_routes(),
    ]
    return [
        Route(path, endpoint, methods=methods, middleware=secured, include_in_schema=False)
        for path, endpoint, methods in table
    ]
