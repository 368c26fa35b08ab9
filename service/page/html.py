"""HTML building blocks of the page: escaping, the document shell and the security headers.

Everything dynamic goes through :func:`esc`. No inline script and no inline style anywhere: the
Content-Security-Policy allows only the page's own static files, so styling is by class names
(SVG presentation attributes such as ``x`` or ``height`` are attributes, not styles).
"""

from __future__ import annotations

import functools
import hashlib
import html
from collections.abc import Mapping
from pathlib import Path

from starlette.responses import HTMLResponse

from service.vocabulary import PAGE_PATH

BASE_PATH = PAGE_PATH
STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
FAVICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E"
    "%3Crect width='32' height='32' rx='8' fill='%232d5be3'/%3E%3Cpath d='M9 11h14M9 16h10M9 "
    "21h12' stroke='%23fff' stroke-width='2.5' stroke-linecap='round'/%3E%3C/svg%3E"
)
"""An inline icon (``img-src data:`` allows it), so browsers do not ask for /favicon.ico."""
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
"""The page's headers when it is never framed (the default)."""


def security_headers(frame_ancestors: tuple[str, ...]) -> dict[str, str]:
    """The page's headers: with ``frame_ancestors`` (``AUDITLOG_FRAME_ANCESTORS``), CSP
    ``frame-ancestors`` names the origins that may embed it and ``X-Frame-Options`` (which cannot
    name origins) is left out."""
    if not frame_ancestors:
        return SECURITY_HEADERS
    policy = CONTENT_SECURITY_POLICY.replace(
        "frame-ancestors 'none'", "frame-ancestors " + " ".join(frame_ancestors)
    )
    headers = {k: v for k, v in SECURITY_HEADERS.items() if k != "X-Frame-Options"}
    return {**headers, "Content-Security-Policy": policy}


def esc(value: object) -> str:
    """``value`` as text safe in element content and in double- or single-quoted attributes."""
    return html.escape(str(value), quote=True)


def attrs(values: Mapping[str, object | None]) -> str:
    """`` name="value"`` pairs; None leaves an attribute out, True writes it bare."""
    out = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        out.append(f" {name}" if value is True else f' {name}="{esc(value)}"')
    return "".join(out)


@functools.cache
def static_url(name: str) -> str:
    """The URL of a static file, versioned by its content (so it may be cached)."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"{BASE_PATH}/static/{name}?v={digest}"


def document(title: str, body: str, *, refresh_s: int | None = None, body_class: str = "") -> str:
    """A whole HTML document around ``body`` (already escaped HTML)."""
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="same-origin">{refresh}'
        f"<title>{esc(title)}</title>"
        f'<link rel="icon" type="image/svg+xml" href="{esc(FAVICON)}">'
        f'<link rel="stylesheet" href="{esc(static_url("page.css"))}">'
        f'<script src="{esc(static_url("page.js"))}" defer></script>'
        f"</head><body{attrs({'class': body_class or None})}>{body}</body></html>\n"
    )


def html_page(
    text: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    base = {"Cache-Control": "no-store"}
    return HTMLResponse(text, status_code=status, headers={**base, **(headers or {})})
