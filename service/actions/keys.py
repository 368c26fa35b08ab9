"""Who is calling: bearer keys, scopes, principals, and the account a principal may touch.

Keys look like ``alk_<key id>_<secret>``. Only the secret's SHA-256 is stored, compared in
constant time. Lookups are cached for at most ``AUDITLOG_KEY_CACHE_S`` (≤ 5 s), so a revocation
made through any instance takes effect within that time, and at once on the instance that made it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from service.errors import ServiceError, bad_request
from service.runtime import Runtime
from service.search.accounts import Account, AccountStore, KeyRecord

SCOPES = ("ingest", "read", "export", "admin", "viewer", "destinations")
ACCOUNT_SCOPES = ("ingest", "read", "export", "viewer", "destinations")
ENV_ADMIN_ID = "env-admin"
_KEY = re.compile(r"^alk_([a-z0-9]{16})_([A-Za-z0-9_-]{32,64})\Z")
KEY_ID = re.compile(r"^[a-z0-9]{16}\Z")
ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")


@dataclass(frozen=True)
class Viewer:
    """A person of the customer's team, named by the host application in a viewer link."""

    id: str
    name: str
    email: str | None = None

    def actor(self) -> dict[str, str]:
        """The person as the actor of an ``audit`` entry."""
        out = {"type": "user", "id": self.id, "name": self.name}
        if self.email:
            out["email"] = self.email
        return out


@dataclass(frozen=True)
class Principal:
    key_id: str
    account_id: str | None
    scopes: frozenset[str]
    viewer: Viewer | None = None
    """The person of a viewer session (the key is the one that minted its link)."""

    @property
    def is_platform(self) -> bool:
        return self.account_id is None

    def actor(self) -> dict[str, str]:
        """Who acted, for an ``audit`` entry: the viewer, else the key."""
        if self.viewer is not None:
            return self.viewer.actor()
        return {"type": "api_key", "id": self.key_id, "name": f"API key {self.key_id}"}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(name: str, account_id: str | None, scopes: list[str]) -> tuple[KeyRecord, str]:
    """A new key record and the full secret key string (shown once)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record = KeyRecord(key_id, name, account_id, tuple(scopes), _digest(secret), created, None)
    return record, f"alk_{key_id}_{secret}"


def unauthorized(message: str) -> ServiceError:
    return ServiceError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def active_key(runtime: Runtime, key_id: str) -> KeyRecord | None:
    """The key, unless it is unknown or revoked (cached like every key lookup)."""
    record = await _lookup(runtime, key_id)
    return None if record is None or record.revoked_at is not None else record


async def _lookup(runtime: Runtime, key_id: str) -> KeyRecord | None:
    cached, record = runtime.key_cache.get(key_id)
    if cached:
        return record
    record = await AccountStore(runtime.es, runtime.names).get_key(key_id)
    runtime.key_cache.put(key_id, record)
    return record


async def authenticate_token(runtime: Runtime, token: str) -> Principal:
    """The principal of a bearer key; 401 for a malformed, unknown or revoked one."""
    admin = runtime.settings.admin_key
    if admin is not None and hmac.compare_digest(token.encode(), str(admin).encode()):
        return Principal(ENV_ADMIN_ID, None, frozenset(SCOPES))
    match = _KEY.match(token)
    if not match:
        raise unauthorized("unknown or revoked key")
    record = await _lookup(runtime, match.group(1))
    if record is None or record.revoked_at is not None:
        raise unauthorized("unknown or revoked key")
    if not hmac.compare_digest(record.secret_sha256, _digest(match.group(2))):
        raise unauthorized("unknown or revoked key")
    return Principal(record.id, record.account_id, frozenset(record.scopes))


def forbidden_account() -> ServiceError:
    """The same answer whether or not the other account exists."""
    return ServiceError(403, "forbidden", "this key cannot access that account")


async def account_for(runtime: Runtime, principal: Principal, requested: str | None) -> Account:
    """The account a read request works on: the key's own, or the one a platform key names."""
    if principal.account_id is not None:
        if requested is not None and requested != principal.account_id:
            raise forbidden_account()
        account_id = principal.account_id
    elif not requested:
        raise bad_request("account_id is required with a platform key", field="account_id")
    else:
        account_id = requested
    account = await get_account_cached(runtime, account_id)
    if account is None:
        if principal.account_id is not None:
            raise forbidden_account()
        raise ServiceError(404, "not_found", f"no account '{account_id}'", field="account_id")
    return account


async def get_account_cached(runtime: Runtime, account_id: str) -> Account | None:
    if not ACCOUNT_ID.match(account_id):
        return None
    hit = runtime.account_cache.get(account_id)
    if hit is not None and time.monotonic() - hit[1] <= runtime.settings.key_cache_s:
        return hit[0]
    account = await AccountStore(runtime.es, runtime.names).get_account(account_id)
    if len(runtime.account_cache) > 10_000:
        runtime.account_cache.clear()
    runtime.account_cache[account_id] = (account, time.monotonic())
    return account
