"""Account and key actions: what the admin API, the command line and the demo loader all do.

Each action validates its input (a 400 naming the field), changes the account store, and records
the change in the account's own log as an ``audit`` entry of the actor who made it (an API key,
the command line, the demo loader). The texts of those entries are written here only.
Engine errors propagate as they are: the caller answers them (503, or exit code 1).

A change is made before its audit entry is written, so an entry the engine refuses cannot undo
it: the action still answers (a new key's secret is shown only once), and the failure is logged
and counted (``audit_failures`` in ``/metrics``). Exports are stricter: one whose entry is not
written is not delivered as complete (:mod:`service.actions.delivery`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest.pipeline import IngestContext
from service.actions import audit_trail
from service.actions.keys import ACCOUNT_ID, ACCOUNT_SCOPES, SCOPES, new_key
from service.errors import bad_request
from service.search.accounts import Account, AccountStore, KeyRecord
from service.zones import zone


def validate_account_id(value: object, field: str = "id") -> str:
    if not isinstance(value, str) or not ACCOUNT_ID.match(value):
        message = f"{field} must be 1-63 characters of a-z 0-9 _ - (starting a-z 0-9)"
        raise bad_request(message, field)
    return value


def validate_timezone(value: object) -> str:
    return zone(value, "timezone").key


def validate_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise bad_request(f"{field} must be a non-empty string of at most 200 characters", field)
    return value


def validate_scopes(value: object, account_id: str | None) -> list[str]:
    allowed = ACCOUNT_SCOPES if account_id else SCOPES
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        raise bad_request(f"scopes must be a non-empty array of {', '.join(allowed)}", "scopes")
    bad = [s for s in value if s not in allowed]
    if bad:
        raise bad_request(f"scope '{bad[0]}' is not one of {', '.join(allowed)}", "scopes")
    return sorted(set(value))


@dataclass(frozen=True)
class AccountActions:
    """The actions of one ``actor`` (a principal's :meth:`~service.actions.keys.Principal.actor`,
    or a system actor of :mod:`service.actions.audit_trail`)."""

    store: AccountStore
    ingest: IngestContext
    actor: dict[str, str]

    async def _record(self, account_id: str, action: str, message: str, target: Target) -> None:
        metadata = {"target_type": target.kind, "target_id": target.id, "target_name": target.name}
        try:
            await audit_trail.record(self.ingest, account_id, self.actor, action, message, metadata)
        except audit_trail.AuditNotRecorded:
            return  # logged and counted by record(); the change itself stands (module docstring)

    async def create_account(self, account: Account) -> bool:
        """Create ``account``; False when it exists."""
        if not await self.store.create_account(account):
            return False
        views = ", views recorded" if account.view_audit else ""
        text = f"Account {account.name} created (timezone {account.timezone}{views})"
        target = Target("account", account.id, account.name)
        await self._record(account.id, "account.created", text, target)
        return True

    async def update_account(self, account_id: str, changes: dict[str, Any]) -> Account | None:
        """Apply ``changes`` (name, timezone, view_audit); None when there is no such
        account."""
        account = await self.store.update_account(account_id, changes)
        if account is not None:
            summary = ", ".join(f"{k} → {v}" for k, v in changes.items())
            target = Target("account", account_id, account.name)
            text = f"Account settings changed: {summary}"
            await self._record(account_id, "account.updated", text, target)
        return account

    async def create_key(
        self, name: str, account_id: str | None, scopes: list[str]
    ) -> tuple[KeyRecord, str] | None:
        """A new key and its secret (shown once); None when ``account_id`` is not an account."""
        if account_id is not None and await self.store.get_account(account_id) is None:
            return None
        record, secret = new_key(name, account_id, scopes)
        await self.store.create_key(record)
        if account_id is not None:
            text = f"API key '{name}' created with scopes {', '.join(scopes)}"
            await self._record(account_id, "keys.created", text, Target("api_key", record.id, name))
        return record, secret

    async def revoke_key(self, key_id: str) -> KeyRecord | None:
        """Revoke the key; None when there is no such key."""
        record = await self.store.revoke_key(key_id)
        if record is not None and record.account_id is not None:
            text = f"API key '{record.name}' revoked"
            target = Target("api_key", key_id, record.name)
            await self._record(record.account_id, "keys.revoked", text, target)
        return record


@dataclass(frozen=True)
class Target:
    """What an action changed, as the audit entry names it."""

    kind: str
    id: str
    name: str
