"""Signing in to the page: a viewer link for one person, or an account key for operators.

**Viewer links** (:mod:`service.actions.viewers`): ``GET /settings/audit-logs/view/<token>``
greets the person and asks them to continue (``Cache-Control: no-store``, no referrer); the
``POST`` spends the link, sets the ``auditlog_viewer`` cookie (the session's token, never the
key) for the session's lifetime and answers 303 to the page, so the token leaves the address bar.

**Account keys**: the key is posted once from the sign-in form and kept in an ``HttpOnly``,
``SameSite=Strict`` cookie scoped to the page's path (``Secure`` when the request came over
HTTPS); it never appears in a URL. Every request authenticates it again through
:func:`service.actions.keys.authenticate_token`, so a revoked key stops working within the key
cache time. Only account keys with the ``read`` scope may sign in: a platform key sees every
account and is refused here. Its actions are recorded as the key's.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from service.actions.keys import Principal, authenticate_token, get_account_cached
from service.actions.viewers import LinkRefused, end_session, link_viewer, open_link, viewer_session
from service.errors import ServiceError
from service.page.html import BASE_PATH, esc, html_page
from service.page.layout import alert, plain_page, sign_in_page
from service.runtime import runtime_of
from service.search.accounts import Account

COOKIE = "auditlog_key"
VIEWER_COOKIE = "auditlog_viewer"
COOKIE_MAX_AGE_S = 12 * 3600
MAX_KEY_LENGTH = 512


@dataclass(frozen=True)
class Session:
    """A signed-in visitor: the key's principal (with the person, for a viewer link) and its
    account."""

    principal: Principal
    account: Account
    return_url: str | None = None
    csrf: str | None = None
    """A viewer session's form token: every form that changes something carries it (its cookie
    may be sent cross-site when the page is embedded)."""

    @property
    def can_export(self) -> bool:
        return "export" in self.principal.scopes

    @property
    def person(self) -> str | None:
        return self.principal.viewer.name if self.principal.viewer else None


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
    token = request.cookies.get(VIEWER_COOKIE)
    if token:
        runtime = runtime_of(request)
        opened = await viewer_session(runtime, token)
        if opened is None:
            return Refused(401, "Your session has ended. Open the audit log again from the "
                           "application.")  # fmt: skip
        assert opened.principal.account_id is not None
        account = await get_account_cached(runtime, opened.principal.account_id)
        if account is None:
            return Refused(403, "This account does not exist any more.")
        return Session(opened.principal, account, opened.return_url, csrf_token(token))
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
    if refused is not None and (request.cookies.get(COOKIE) or request.cookies.get(VIEWER_COOKIE)):
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


def csrf_token(session_token: str) -> str:
    return hashlib.sha256(f"csrf:{session_token}".encode()).hexdigest()[:32]


def csrf_ok(session: Session, form_value: object) -> bool:
    """A form of a viewer session carries its token (key sessions need none)."""
    if session.csrf is None:
        return True
    return isinstance(form_value, str) and hmac.compare_digest(form_value, session.csrf)


def _embeddable(request: Request) -> bool:
    return bool(runtime_of(request).settings.frame_ancestors)


def _viewer_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    """``SameSite=Strict`` unless the page may be embedded (``AUDITLOG_FRAME_ANCESTORS``): a
    cross-site frame never sends such a cookie, so it is then ``SameSite=None; Secure;
    Partitioned`` (kept per embedding site), and forms carry the session's token. (The header
    is written here: the standard library writes ``Partitioned`` from Python 3.14 only.)"""
    if _embeddable(request):
        response.headers.append(
            "set-cookie",
            f"{VIEWER_COOKIE}={token}; HttpOnly; Max-Age={max_age}; Path={BASE_PATH}; "
            "SameSite=None; Secure; Partitioned",
        )
    else:
        public = runtime_of(request).settings.public_url or ""
        secure = request.url.scheme == "https" or public.startswith("https://")
        response.set_cookie(VIEWER_COOKIE, token, max_age=max_age, path=BASE_PATH,
                            httponly=True, samesite="strict", secure=secure)  # fmt: skip


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path=BASE_PATH, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")  # fmt: skip
    _viewer_cookie(response, request, "", 0)


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
    token = request.cookies.get(VIEWER_COOKIE)
    if token:  # the operator's key replaces a viewer's session in this browser
        await end_session(runtime_of(request), token)
        _viewer_cookie(redirect, request, "", 0)
    return redirect


async def sign_out(request: Request) -> Response:
    response = RedirectResponse(BASE_PATH, status_code=303)
    if same_origin(request):
        token = request.cookies.get(VIEWER_COOKIE)
        if token:  # with the session's form token, the session ends; without, this browser's
            form = await request.form(max_files=0, max_fields=10)
            sent = form.get("csrf")
            if isinstance(sent, str) and hmac.compare_digest(sent, csrf_token(token)):
                await end_session(runtime_of(request), token)
        clear_cookie(response, request)
    return response


NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "strict-origin"}
"""A link's pages: never cached, and what they lead to learns the origin only, never the token
(``no-referrer`` would also make the Continue post's ``Origin`` ``null``)."""


async def view_link(request: Request) -> Response:
    """A viewer link, opened: who it is for and a Continue button (nothing is spent yet)."""
    token = request.path_params["token"]
    try:
        person = await link_viewer(runtime_of(request), token)
    except LinkRefused as refused:
        return _link_refused(refused)
    content = (
        f"<p>This link opens the audit log for <strong>{esc(person.name)}</strong>. It works "
        "once.</p>"
        f'<form method="post" action="{BASE_PATH}/view/{esc(token)}">'
        '<button type="submit" class="button button-primary" id="continue">Continue</button>'
        "</form>"
    )
    return html_page(plain_page(None, "Open the audit log", content), headers=NO_STORE)


async def open_view_link(request: Request) -> Response:
    """Spend the link and start the person's session; 303 to the page. The post must say where
    it comes from (a browser always does): a forged post cannot start a session."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if sent is None or not same_origin(request):
        return _link_refused(LinkRefused(403, "Continue from the link's own page."))
    try:
        token, opened = await open_link(runtime_of(request), request.path_params["token"])
    except LinkRefused as refused:
        return _link_refused(refused)
    redirect = RedirectResponse(BASE_PATH, status_code=303, headers=NO_STORE)
    lifetime = int(opened.expires_in_s)
    _viewer_cookie(redirect, request, token, lifetime)
    redirect.delete_cookie(COOKIE, path=BASE_PATH, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")  # fmt: skip
    return redirect


def _link_refused(refused: LinkRefused) -> Response:
    page = plain_page(None, "This link cannot be used", alert(refused.message))
    return html_page(page, refused.status, headers=NO_STORE)
