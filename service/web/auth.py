"""Who is calling, for an HTTP request: its bearer key and the account it may touch."""

from __future__ import annotations

from starlette.requests import Request

from service.actions.keys import Principal, account_for, authenticate_token, unauthorized
from service.errors import ServiceError
from service.runtime import runtime_of
from service.search.accounts import Account


async def authenticate(request: Request) -> Principal:
    """The caller's principal from ``Authorization: Bearer``; 401 when missing or invalid."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing bearer key in the Authorization header")
    return await authenticate_token(runtime_of(request), token.strip())


async def require(request: Request, scope: str) -> Principal:
    principal = await authenticate(request)
    if scope not in principal.scopes:
        raise ServiceError(403, "forbidden", f"this key lacks the '{scope}' scope")
    return principal


async def resolve_account(request: Request, principal: Principal, requested: str | None) -> Account:
    """The account a read request works on: the key's own, or the one a platform key names."""
    return await account_for(runtime_of(request), principal, requested)
