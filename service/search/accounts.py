"""Accounts and keys as documents in the service's own indices.

Only the SHA-256 of a key's secret is stored; the secret itself is shown once, at creation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from service.search.engine_errors import translated
from service.search.indices import IndexNames


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    timezone: str
    view_audit: bool = False
    """Record every view of the page by a viewer link's person as an ``audit`` entry."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "timezone": self.timezone,
                "view_audit": self.view_audit}  # fmt: skip


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    account_id: str | None
    scopes: tuple[str, ...]
    secret_sha256: str
    created_at: str
    revoked_at: str | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "account_id": self.account_id,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _account(source: dict[str, Any]) -> Account:
    return Account(source["id"], source["name"], source["timezone"],
                   source.get("view_audit") is True)  # fmt: skip


def _key(source: dict[str, Any]) -> KeyRecord:
    return KeyRecord(
        id=source["id"],
        name=source.get("name", ""),
        account_id=source.get("account_id"),
        scopes=tuple(source.get("scopes", ())),
        secret_sha256=source["secret_sha256"],
        created_at=source["created_at"],
        revoked_at=source.get("revoked_at"),
    )


class AccountStore:
    """Reads and writes accounts and keys; every write is acknowledged by the engine and visible
    to searches at once (the indices are small and rarely written: a refresh costs little)."""

    def __init__(self, es: AsyncElasticsearch, names: IndexNames) -> None:
        self.es = es
        self.names = names

    @translated
    async def create_account(self, account: Account) -> bool:
        """Create ``account``; False when one with its id exists."""
        body = {**account.to_dict(), "created_at": _now()}
        try:
            await self.es.create(
                index=self.names.accounts, id=account.id, document=body, refresh=True
            )
        except ConflictError:
            return False
        return True

    @translated
    async def get_account(self, account_id: str) -> Account | None:
        try:
            resp = await self.es.get(index=self.names.accounts, id=account_id)
        except NotFoundError:
            return None
        return _account(resp["_source"])

    @translated
    async def update_account(self, account_id: str, changes: dict[str, Any]) -> Account | None:
        try:
            await self.es.update(
                index=self.names.accounts,
                id=account_id,
                doc={**changes, "updated_at": _now()},
                refresh=True,
            )
        except NotFoundError:
            return None
        return await self.get_account(account_id)

    @translated
    async def list_accounts(self) -> list[Account]:
        resp = await self.es.search(
            index=self.names.accounts, size=1000, sort=[{"id": "asc"}], query={"match_all": {}}
        )
        return [_account(hit["_source"]) for hit in resp["hits"]["hits"]]

    @translated
    async def accounts_outside(self, timezones: frozenset[str]) -> list[Account]:
        """The accounts whose timezone is not one of ``timezones`` (stored before zones were
        checked as they are now)."""
        resp = await self.es.search(
            index=self.names.accounts,
            size=10_000,
            sort=[{"id": "asc"}],
            query={"bool": {"must_not": {"terms": {"timezone": sorted(timezones)}}}},
        )
        return [_account(hit["_source"]) for hit in resp["hits"]["hits"]]

    @translated
    async def create_key(self, record: KeyRecord) -> None:
        body = {
            **record.public(),
            "secret_sha256": record.secret_sha256,
        }
        await self.es.create(index=self.names.keys, id=record.id, document=body, refresh=True)

    @translated
    async def get_key(self, key_id: str) -> KeyRecord | None:
        try:
            resp = await self.es.get(index=self.names.keys, id=key_id)
        except NotFoundError:
            return None
        return _key(resp["_source"])

    @translated
    async def revoke_key(self, key_id: str) -> KeyRecord | None:
        record = await self.get_key(key_id)
        if record is None:
            return None
        if record.revoked_at is None:
            await self.es.update(
                index=self.names.keys, id=key_id, doc={"revoked_at": _now()}, refresh=True
            )
        return await self.get_key(key_id)

    @translated
    async def list_keys(self, account_id: str | None) -> list[KeyRecord]:
        query: dict[str, Any] = (
            {"term": {"account_id": account_id}} if account_id else {"match_all": {}}
        )
        resp = await self.es.search(
            index=self.names.keys, size=1000, sort=[{"created_at": "asc"}], query=query
        )
        return [_key(hit["_source"]) for hit in resp["hits"]["hits"]]
