"""Settings → Audit logs → Streaming: the account's destinations on the page.

``/settings/audit-logs/streaming`` lists the destinations with their health and offers their
actions; ``…/streaming/new?kind=`` adds one. Only a signed-in account key with the
``destinations`` scope may see or use any of it, as for ``/v1/destinations``: a viewer link's
session never may (whatever its key), a key without the scope gets a 403 and no tab to it.

Every change goes through the functions ``/v1/destinations`` calls
(:mod:`service.actions.destinations`): the same validation, the same ``destination.*`` audit
entries recorded as the key's. A form must come from the page itself (``Origin``, else
``Referer``) and carry the session's form token; a change is answered with a redirect to the
list (``?done=``), a mistake with the form again, its 4xx status and the field named.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from service.actions import destinations
from service.actions.destination_lag import lags_if_known
from service.errors import ServiceError, bad_request
from service.page.destination_forms import (
    STREAM_PATH,
    Draft,
    create_body,
    create_form,
    field_label,
    kind_label,
    read_draft,
    resume_body,
)
from service.page.destination_table import destinations_table
from service.page.html import document, esc, html_page
from service.page.layout import PRODUCT, alert, plain_page, section_tabs, top_bar
from service.page.session import (
    COOKIE,
    Refused,
    Session,
    csrf_token,
    read_session,
    same_origin,
    sign_in_response,
)
from service.runtime import runtime_of

DONE = {
    "created": "Destination added. Its secrets are stored encrypted and never shown again.",
    "paused": "Destination paused: nothing is sent until it is resumed.",
    "resumed": "Destination resumed.",
    "deleted": "Destination deleted.",
}
"""What the list says after a change (``?done=``): fixed sentences, nothing from the URL."""
MAX_FIELDS = 200


def may_manage_destinations(session: Session) -> bool:
    """An account key with the ``destinations`` scope; never a viewer link's session."""
    return session.principal.viewer is None and "destinations" in session.principal.scopes


def form_token(request: Request, session: Session) -> str:
    """The token the session's forms carry (a key session's is derived from its key)."""
    return session.csrf or csrf_token(request.cookies.get(COOKIE, ""))


def _refused(session: Session, status: int, message: str) -> Response:
    page = plain_page(session.account, "Streaming", alert(message, title="Not allowed."))
    return html_page(page, status)


async def _allowed(request: Request) -> Session | Response:
    session = await read_session(request)
    if not isinstance(session, Session):
        if session is None and request.method == "POST":
            session = Refused(401, "Sign in to continue.")
        return sign_in_response(request, session)
    if not may_manage_destinations(session):
        why = ("Destinations are managed with an account key that has the destinations scope: "
               "sign in with one.")  # fmt: skip
        return _refused(session, 403, why)
    return session


async def _posted(request: Request) -> tuple[Session, FormData] | Response:
    """The session and the form of a change, once the post is known to come from the page."""
    session = await _allowed(request)
    if not isinstance(session, Session):
        return session
    if not same_origin(request):
        return _refused(session, 403, "Change destinations from the page itself.")
    form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, form_token(request, session)):
        return _refused(session, 403, "This form has expired: reload the page and try again.")
    return session, form


def _frame(session: Session, title: str, content: str) -> str:
    account = session.account
    body = (
        top_bar(account, session.person, session.return_url, session.csrf)
        + f'<main class="container" id="main">{section_tabs("streaming")}'
        f'<div class="page-head"><h1>{esc(title)}</h1><p class="lead">Send the audit log of '
        f"{esc(account.name)} to your own systems (a SIEM, a webhook, syslog, Elasticsearch), "
        "in order and at least once, with its signed checkpoints.</p></div>"
        f"{content}</main>"
    )
    return document(f"{title} · {PRODUCT} · {account.name}", body, body_class="page-streaming")


def _add_links() -> str:
    links = "".join(
        f'<li><a class="button" href="{STREAM_PATH}/new?kind={esc(kind)}">'
        f"{esc(kind_label(kind))}</a></li>"
        for kind in destinations.KINDS
    )
    return (
        '<section class="add-destination" aria-labelledby="add-title">'
        '<h2 id="add-title">Add a destination</h2><ul class="kinds">'
        f"{links}</ul></section>"
    )


async def _list_screen(
    request: Request, session: Session, error: ServiceError | None = None
) -> Response:
    """The list (with the error of a change that failed, its status and headers)."""
    runtime, account = runtime_of(request), session.account
    parts: list[str] = []
    done = DONE.get(request.query_params.get("done", "")) if error is None else None
    if done:
        parts.append(alert(done, kind="info"))
    if error is not None:
        title = f"{field_label(error.field)}: not done." if error.field else "Not done."
        parts.append(alert(error.message, title=title).replace("<div", '<div id="error"', 1))
    if runtime.settings.destination_key is None:
        parts.append(alert("This service has no AUDITLOG_DESTINATION_KEY to encrypt secrets "
                           "with: destinations cannot be added.", kind="info"))  # fmt: skip
    try:
        found = await destinations.list_destinations(runtime, account.id)
    except ServiceError as e:
        parts.append(alert(e.message, title="The destinations cannot be shown."))
        return html_page(_frame(session, "Streaming", "".join(parts)), e.status, e.headers)
    lags = await lags_if_known(runtime, account.id, found)  # without: shown as unknown
    table = destinations_table(found, lags, ZoneInfo(account.timezone), now=datetime.now(UTC),
                               csrf=form_token(request, session))  # fmt: skip
    parts.append(f'<section class="destination-list" aria-label="Destinations">{table}</section>')
    parts.append(_add_links())
    status, headers = (error.status, error.headers) if error else (200, None)
    return html_page(_frame(session, "Streaming", "".join(parts)), status, headers)


async def streaming(request: Request) -> Response:
    session = await _allowed(request)
    if not isinstance(session, Session):
        return session
    return await _list_screen(request, session)


def _form_screen(
    request: Request, session: Session, draft: Draft, error: ServiceError | None = None
) -> Response:
    form = create_form(draft, form_token(request, session), error)
    title = f"Add a {kind_label(draft.kind)} destination"
    content = f'<p class="back"><a href="{STREAM_PATH}">← Back to the destinations</a></p>{form}'
    status, headers = (error.status, error.headers) if error else (200, None)
    return html_page(_frame(session, title, content), status, headers)


async def new_destination(request: Request) -> Response:
    session = await _allowed(request)
    if not isinstance(session, Session):
        return session
    kind = request.query_params.get("kind", "")
    if kind not in destinations.KINDS:
        error = bad_request(f"kind must be one of {', '.join(destinations.KINDS)}", "kind")
        return await _list_screen(request, session, error)
    return _form_screen(request, session, Draft(kind))


async def create(request: Request) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    draft, secrets = read_draft(form)
    try:
        body = create_body(draft, secrets)
        await destinations.create_destination(
            runtime_of(request), session.principal, session.account.id, body
        )
    except ServiceError as e:
        if draft.kind not in destinations.KINDS:
            return await _list_screen(request, session, e)
        return _form_screen(request, session, draft, e)
    return RedirectResponse(f"{STREAM_PATH}?done=created", status_code=303)


async def _change(
    request: Request, body_of: Callable[[FormData], dict[str, Any]], done: str
) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    try:
        await destinations.change_destination(
            runtime_of(request), session.principal, session.account.id,
            request.path_params["destination_id"], body_of(form),
        )  # fmt: skip
    except ServiceError as e:
        return await _list_screen(request, session, e)
    return RedirectResponse(f"{STREAM_PATH}?done={done}", status_code=303)


async def pause(request: Request) -> Response:
    return await _change(request, lambda _: {"status": "paused"}, "paused")


async def resume(request: Request) -> Response:
    """Resume a paused destination, or re-enable a disabled one (from a position, with one)."""
    return await _change(request, resume_body, "resumed")


def _confirm_page(request: Request, session: Session, destination: dict[str, Any]) -> Response:
    ident, name = esc(destination["id"]), esc(destination["name"])
    content = (
        f"<p>Delete the {esc(kind_label(destination['kind']))} destination "
        f'<strong class="destination-name">{name}</strong> '
        f"(<code>{esc(destination['url'])}</code>)? It stops receiving entries at once; its "
        "position, settings and secrets are gone for good. The deletion is recorded in the "
        "audit log.</p>"
        f'<form method="post" action="{STREAM_PATH}/{ident}/delete" class="confirm-delete">'
        f'<input type="hidden" name="csrf" value="{esc(form_token(request, session))}">'
        '<input type="hidden" name="confirm" value="yes">'
        '<button type="submit" class="button button-danger" id="confirm-delete">Delete '
        f'<span class="visually-hidden">{name}</span></button> '
        f'<a class="button button-quiet" href="{STREAM_PATH}">Cancel</a></form>'
    )
    return html_page(_frame(session, "Delete a destination", content))


async def confirm_delete(request: Request) -> Response:
    session = await _allowed(request)
    if not isinstance(session, Session):
        return session
    try:
        found = await destinations.own_destination(
            runtime_of(request), session.account.id, request.path_params["destination_id"]
        )
    except ServiceError as e:
        return await _list_screen(request, session, e)
    return _confirm_page(request, session, destinations.public(found))


async def delete(request: Request) -> Response:
    """Delete, once confirmed (a post without the confirmation shows the question)."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    runtime, destination_id = runtime_of(request), request.path_params["destination_id"]
    try:
        if form.get("confirm") != "yes":
            found = await destinations.own_destination(runtime, session.account.id,
                                                       destination_id)  # fmt: skip
            return _confirm_page(request, session, destinations.public(found))
        await destinations.delete_destination(runtime, session.principal, session.account.id,
                                              destination_id)  # fmt: skip
    except ServiceError as e:
        return await _list_screen(request, session, e)
    return RedirectResponse(f"{STREAM_PATH}?done=deleted", status_code=303)
