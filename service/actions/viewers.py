"""Viewer links: the host application opens the Audit Logs page for one person of its team.

A key with the ``viewer`` scope (an account key, or a platform key naming the account) mints a
link for a person — id, name, email — with the page scopes they get (``read``, ``export``, within
the key's own) and how long their session lasts (at most an hour). The link is single use and
expires unused after :data:`LINK_TTL_S`; opening it asks the person to continue (a POST, so link
previewers do not spend it), then gives them a session: a cookie naming a session stored in the
engine, bound to the person, the account and the scopes. The key never reaches the browser.
Revoking the key ends its sessions (within the key cache time). Whatever the person does that is
recorded (exports) has the person as its actor and the minting key in its metadata.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from service.actions import audit_trail
from service.actions.keys import ENV_ADMIN_ID, Principal, Viewer, account_for, active_key
from service.errors import bad_request
from service.runtime import Runtime
from service.search.viewer_sessions import ViewerStore
from service.vocabulary import PAGE_PATH

LINK_TTL_S = 300
"""An unused link expires after this."""
SESSION_MIN_S, SESSION_MAX_S, SESSION_DEFAULT_S = 60, 3600, 900
PAGE_SCOPES = ("read", "export")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}\Z")
"""A link's or session's token: 32 random bytes, base64url."""
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\Z")


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class ViewerSession:
    principal: Principal
    return_url: str | None
    expires_in_s: int
    """Seconds left (the cookie's lifetime)."""


class LinkRefused(Exception):
    """The link cannot be opened; ``message`` tells the person why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _string(value: Any, field: str, max_length: int, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise bad_request(f"{field} must be a non-empty string of at most {max_length} "
                          "characters", field)  # fmt: skip
    return value.strip()


def _viewer(body: dict[str, Any]) -> Viewer:
    raw = body.get("viewer")
    if not isinstance(raw, dict):
        raise bad_request("viewer is required: {id, name, email}", "viewer")
    unknown = sorted(set(raw) - {"id", "name", "email"})
    if unknown:
        raise bad_request(f"viewer has no field '{unknown[0]}'", f"viewer.{unknown[0]}")
    email = _string(raw.get("email"), "viewer.email", 254, required=False)
    if email is not None and not EMAIL.match(email):
        raise bad_request("viewer.email must be an email address", "viewer.email")
    return Viewer(str(_string(raw.get("id"), "viewer.id", 128)),
                  str(_string(raw.get("name"), "viewer.name", 200)), email)  # fmt: skip


def _scopes(body: dict[str, Any], principal: Principal) -> list[str]:
    raw = body.get("scopes", ["read"])
    if not isinstance(raw, list) or not raw or not all(s in PAGE_SCOPES for s in raw):
        raise bad_request("scopes must be a non-empty list of read, export", "scopes")
    scopes = sorted(set(raw))
    if "read" not in scopes:
        raise bad_request("scopes must include read: the page shows the log", "scopes")
    missing = [s for s in scopes if s not in principal.scopes]
    if missing:
        raise bad_request(f"this key lacks the {missing[0]} scope: a viewer gets no more than "
                          "the key that minted the link", "scopes")  # fmt: skip
    return scopes


def _lifetime(body: dict[str, Any]) -> int:
    raw = body.get("expires_in_s", SESSION_DEFAULT_S)
    if type(raw) is not int or not SESSION_MIN_S <= raw <= SESSION_MAX_S:
        raise bad_request(f"expires_in_s must be an integer from {SESSION_MIN_S} to "
                          f"{SESSION_MAX_S}", "expires_in_s")  # fmt: skip
    return raw


def _return_url(runtime: Runtime, body: dict[str, Any]) -> str | None:
    """An http(s) URL under a prefix of ``AUDITLOG_VIEWER_RETURN_URLS``, with no dot segment
    (``/x/../admin`` would leave the prefix's path) and no backslash."""
    raw = body.get("return_url")
    if raw is None:
        return None
    url = str(_string(raw, "return_url", 2048))
    try:
        parts = urlsplit(url)
        allowed = any(_under(url, prefix) for prefix in runtime.settings.viewer_return_urls)
    except ValueError:  # not a URL (an unclosed IPv6 host, a host that normalises away)
        allowed = False
    else:
        allowed = (allowed and parts.scheme in ("http", "https") and bool(parts.netloc)
                   and not any(s in (".", "..") for s in parts.path.split("/")))  # fmt: skip
    if not allowed or "%2e" in url.lower() or "\\" in url:
        raise bad_request("return_url is not on the deployment's list "
                          "(AUDITLOG_VIEWER_RETURN_URLS)", "return_url")  # fmt: skip
    return url


def _under(url: str, prefix: str) -> bool:
    """``url`` is ``prefix`` or below it (same scheme and host, a path under the prefix's)."""
    u, p = urlsplit(url), urlsplit(prefix)
    path = p.path.rstrip("/")
    return (u.scheme, u.netloc) == (p.scheme, p.netloc) and (
        u.path == path or u.path.startswith(path + "/") or not path
    )


async def mint_link(
    runtime: Runtime, principal: Principal, body: dict[str, Any], base_url: str
) -> dict[str, Any]:
    """A one-time link opening the page for the person ``body`` names."""
    unknown = sorted(set(body) - {"viewer", "scopes", "expires_in_s", "return_url", "account_id"})
    if unknown:
        raise bad_request(f"unknown field '{unknown[0]}'", unknown[0])
    requested = body.get("account_id")
    if requested is not None and not isinstance(requested, str):
        raise bad_request("account_id must be a string", "account_id")
    if principal.key_id == ENV_ADMIN_ID:
        raise bad_request("mint viewer links with a stored key that has the viewer scope (its "
                          "revocation ends their sessions), not AUDITLOG_ADMIN_KEY",
                          "Authorization")  # fmt: skip
    account = await account_for(runtime, principal, requested)
    viewer, scopes = _viewer(body), _scopes(body, principal)
    lifetime, return_url = _lifetime(body), _return_url(runtime, body)
    now = datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    link = {
        "account_id": account.id, "viewer": viewer.__dict__, "scopes": scopes,
        "minted_by": principal.key_id, "session_ttl_s": lifetime, "return_url": return_url,
        "created_at": _stamp(now), "expires_at": _stamp(now + timedelta(seconds=LINK_TTL_S)),
    }  # fmt: skip
    await ViewerStore(runtime.es, runtime.names).put_link(token, link)
    base = runtime.settings.public_url or base_url.rstrip("/")
    return {"url": f"{base}{PAGE_PATH}/view/{token}", "account_id": account.id,
            "expires_at": link["expires_at"], "session_expires_in_s": lifetime,
            "scopes": scopes}  # fmt: skip


async def link_viewer(runtime: Runtime, token: str) -> Viewer:
    """Who a link is for (to greet them before they continue); :class:`LinkRefused`."""
    store = ViewerStore(runtime.es, runtime.names)
    link = await store.get_link(token) if TOKEN.match(token) else None
    _usable(link)
    assert link is not None
    return Viewer(**link["viewer"])


def _usable(link: dict[str, Any] | None, used: bool = False) -> None:
    if link is None:
        raise LinkRefused(404, "This link is not valid. Ask for a new one where you found it.")
    if used or link.get("used_at"):
        raise LinkRefused(410, "This link was already used: each link opens the page once. "
                          "Go back and open the audit log again for a new one.")  # fmt: skip
    if datetime.now(UTC) > _instant(link["expires_at"]):
        raise LinkRefused(
            410,
            "This link has expired: links are valid for "
            f"{LINK_TTL_S // 60} minutes. Go back and open the audit log again.",
        )


async def open_link(runtime: Runtime, token: str) -> tuple[str, ViewerSession]:
    """Spend the link (once, whatever the instance) and start the person's session: its token
    (for the cookie) and the session; :class:`LinkRefused`."""
    store = ViewerStore(runtime.es, runtime.names)
    if not TOKEN.match(token):
        _usable(None)
    link = await store.get_link(token)
    _usable(link)  # an expired link is refused before it is spent
    outcome, link = await store.consume_link(token, _stamp(datetime.now(UTC)))
    _usable(link, used=outcome != "ok")
    assert link is not None
    if await active_key(runtime, link["minted_by"]) is None:
        raise LinkRefused(403, "The key that made this link was revoked.")
    now = datetime.now(UTC)
    session = {
        "account_id": link["account_id"], "viewer": link["viewer"], "scopes": link["scopes"],
        "minted_by": link["minted_by"], "return_url": link.get("return_url"),
        "created_at": _stamp(now),
        "expires_at": _stamp(now + timedelta(seconds=int(link["session_ttl_s"]))),
    }  # fmt: skip
    session_token = secrets.token_urlsafe(32)
    await store.put_session(session_token, session)
    opened = await viewer_session(runtime, session_token)
    if opened is None:
        raise LinkRefused(403, "The key that made this link was revoked.")
    return session_token, opened


async def viewer_session(runtime: Runtime, token: str) -> ViewerSession | None:
    """The session a cookie names, while it lasts and its key is not revoked."""
    if not TOKEN.match(token):
        return None
    session = await ViewerStore(runtime.es, runtime.names).get_session(token)
    now = datetime.now(UTC)
    if session is None or now >= _instant(session["expires_at"]):
        return None
    minted_by = session["minted_by"]
    key = await active_key(runtime, minted_by)
    if key is None:
        return None
    scopes = frozenset(session["scopes"]) & frozenset(key.scopes)  # a narrowed key narrows too
    principal = Principal(minted_by, session["account_id"], scopes, Viewer(**session["viewer"]))
    left = int((_instant(session["expires_at"]) - now).total_seconds())
    return ViewerSession(principal, session.get("return_url"), left)


async def end_session(runtime: Runtime, token: str) -> None:
    if TOKEN.match(token):
        await ViewerStore(runtime.es, runtime.names).end_session(token)


async def record_view(runtime: Runtime, principal: Principal, account_id: str,
                      filters: dict[str, Any]) -> None:  # fmt: skip
    """An ``audit_log.viewed`` entry of the account, the person as its actor: for accounts with
    ``view_audit``, every view of the page by a viewer link's person is recorded before it is
    shown (:class:`~service.actions.audit_trail.AuditNotRecorded` otherwise)."""
    assert principal.viewer is not None
    await audit_trail.record(
        runtime.ingest, account_id, principal.actor(), "audit_log.viewed",
        f"{principal.viewer.name} viewed the audit log",
        {"filters": filters, "minted_by_key": principal.key_id},
    )  # fmt: skip
