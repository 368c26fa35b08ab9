"""Signing in to the page: an account key entered once, kept in a cookie, checked on every request.

The key is posted once from the sign-in form and kept in an ``HttpOnly``, ``SameSite=Strict``
cookie scoped to the page's path (``Secure`` when the request came over HTTPS); it never appears
in a URL. Every request authenticates it again through
:func:`service.actions.keys.authenticate_token`, so a revoked key stops working within the key
cache time. Only account keys with the ``read`` scope may sign in: a platform key sees every
account and is refused here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from service.actions.keys import Principal, authenticate_token, get_account_cached
from service.errors import ServiceError
from service.page.html import BASE_PATH, html_page
from service.page.layout import sign_in_page
from service.runtime import runtime_of
from service.search.accounts import Account

COOKIE = "auditlog_key"
COOKIE_MAX_AGE_S = 12 * 3600
MAX_KEY_LENGTH = 512


@dataclass(frozen=True)
class Session:
    """A signed-in visitor: the key's principal and its account."""

    principal: Principal
    account: Account

    @property
    def can_export(self) -> bool:
        return "export" in self.principal.scopes


class Refused(Exception):
    """The key cannot open the page; ``message`` tells the visitor why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def check_key(request: Request, key: str) -> Session:
    """The session of ``key``, or :class:`Refused`. Engine failures propagate (503)."""
    runtime = runtime_of(request)
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Refused(401, "Enter an account key.")
    try:
        principal = await authenticate_token(runtime, key)
    except ServiceError as e:
        if e.status != 401:
            raise
        raise Refused(401, "This key is unknown or has been revoked.") from e
    if principal.is_platform:
        raise Refused(
            403,
            "This is a platform key. The Audit Logs page shows the log of one account: "
            "sign in with an account key that has the read scope.",
        )
    if "read" not in principal.scopes:
        raise Refused(403, "This key lacks the read scope, which the Audit Logs page needs.")
    assert principal.account_id is not None
    account = await get_account_cached(runtime, principal.account_id)
    if account is None:
        raise Refused(403, "This key's account does not exist any more.")
    return Session(principal, account)


async def read_session(request: Request) -> Session | Refused | None:
    """The visitor's session from the cookie; None without a cookie, Refused when it went bad."""
    key = request.cookies.get(COOKIE)
    if not key:
        return None
    try:
        return await check_key(request, key)
    except Refused as refused:
        return refused


def same_origin(request: Request) -> bool:
    """Whether a form post comes from this site (``Origin``, else ``Referer``, when sent).

    Only the host and port are compared: behind a proxy that terminates TLS the service may see
    ``http`` while the browser says ``https``, and another site always has another host.
    """
    sent = request.headers.get("origin") or request.headers.get("referer")
    if sent is None:
        return True
    return urlsplit(sent).netloc == request.url.netloc


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a URL of the page itself, never elsewhere."""
    if target and target.startswith(BASE_PATH) and target[len(BASE_PATH) :][:1] in ("", "?", "/"):
        return target
    return BASE_PATH


def sign_in_response(request: Request, refused: Refused | None = None) -> Response:
    """The sign-in form (and the reason, when a key was refused); clears a bad cookie."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method == "POST":
        target = BASE_PATH
    message, code = (refused.message, refused.status) if refused else (None, 200)
    response = html_page(sign_in_page(safe_next(target), message), code)
    if refused is not None and request.cookies.get(COOKIE):
        clear_cookie(response, request)
    return response


def set_cookie(response: Response, request: Request, key: str) -> None:
    response.set_cookie(
        COOKIE,
        key,
        max_age=COOKIE_MAX_AGE_S,
        path=BASE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE,
        path=BASE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def sign_in(request: Request) -> Response:
    if not same_origin(request):
        return sign_in_response(request, Refused(403, "Sign in from the page itself."))
    form = await request.form(max_files=0, max_fields=10)
    key = str(form.get("key", "")).strip()
    target = safe_next(str(form.get("next", "")) or None)
    try:
        await check_key(request, key)
    except Refused as refused:
        response = html_page(sign_in_page(target, refused.message), refused.status)
        clear_cookie(response, request)
        return response
    redirect = RedirectResponse(target, status_code=303)
    set_cookie(redirect, request, key)
    return redirect


async def sign_out(request: Request) -> Response:
    response = RedirectResponse(BASE_PATH, status_code=303)
    if same_origin(request):
        clear_cookie(response, request)
    return response
