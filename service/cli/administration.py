"""Accounts and API keys from the command line: the admin API's validation and audit entries.

A whole key (``alk_<id>_<secret>``) is read only from standard input, never taken as an
argument: arguments stay in shell history and show in ``ps``.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from typing import TYPE_CHECKING, Any

from service.cli.plumbing import (
    CliError,
    account_actions,
    account_id,
    account_store,
    print_json,
    validated,
    with_client,
)
from service.config import Settings
from service.search.client import Engine

if TYPE_CHECKING:
    from service.search.accounts import Account, KeyRecord

WHOLE_KEY = re.compile(r"alk_([a-z0-9]{16})_([A-Za-z0-9_-]{32,64})")
"""A key as ``keys create`` prints it."""
LOOKS_LIKE_A_KEY = re.compile(r"(alk_)?[A-Za-z0-9]{16}_.+", re.DOTALL)
"""An argument holding a secret after the key id (whole, cut or mistyped)."""
MAX_STDIN = 4096


def _account_changes(args: argparse.Namespace) -> dict[str, str]:
    from service.actions.accounts import validate_name, validate_timezone

    changes = {}
    if args.name is not None:
        changes["name"] = validated(validate_name, args.name)
    if args.timezone is not None:
        changes["timezone"] = validated(validate_timezone, args.timezone)
    return changes


def _accounts_create(new_id: str, changes: dict[str, str]) -> int:
    from service.search.accounts import Account

    name, timezone = changes.get("name", new_id), changes.get("timezone", "UTC")
    account = Account(new_id, name, timezone)

    async def create(es: Engine, settings: Settings) -> bool:
        return await account_actions(es, settings).create_account(account)

    if not with_client(create, ensure_setup=True):
        raise CliError(f"account '{new_id}' exists")
    print_json(account.to_dict())
    return 0


def _accounts_update(changed_id: str, changes: dict[str, str]) -> int:
    if not changes:
        raise CliError("nothing to change: give --name and/or --timezone")

    async def update(es: Engine, settings: Settings) -> Account | None:
        return await account_actions(es, settings).update_account(changed_id, changes)

    updated = with_client(update, ensure_setup=True)
    if updated is None:
        raise CliError(f"no account '{changed_id}'")
    print_json(updated.to_dict())
    return 0


def _fix_timezones() -> int:
    """Give each account stored with a refused timezone the accepted zone it means (UTC where
    none does), recorded in its log like any change."""
    from service.zones import accepted_name, accepted_zones

    async def fix(es: Engine, settings: Settings) -> list[dict[str, str]]:
        fixed = []
        for account in await account_store(es, settings).accounts_outside(accepted_zones()):
            zone = accepted_name(account.timezone) or "UTC"
            await account_actions(es, settings).update_account(account.id, {"timezone": zone})
            fixed.append({"id": account.id, "from": account.timezone, "to": zone})
        return fixed

    print_json({"fixed": with_client(fix, ensure_setup=True)})
    return 0


def cmd_accounts(args: argparse.Namespace) -> int:
    if args.action == "list":
        found = with_client(lambda es, s: account_store(es, s).list_accounts(), ensure_setup=True)
        print_json({"accounts": [a.to_dict() for a in found]})
        return 0
    if args.action == "fix-timezones":
        return _fix_timezones()
    given_id, changes = account_id(args.id), _account_changes(args)
    if args.action == "create":
        return _accounts_create(given_id, changes)
    return _accounts_update(given_id, changes)


def _keys_create(args: argparse.Namespace) -> int:
    from service.actions.accounts import validate_name, validate_scopes

    owner = None if args.platform else account_id(args.account)
    wanted = [s.strip() for s in args.scopes.split(",") if s.strip()]
    scopes, name = validated(validate_scopes, wanted, owner), validated(validate_name, args.name)

    async def create(es: Engine, settings: Settings) -> dict[str, Any] | None:
        created = await account_actions(es, settings).create_key(name, owner, scopes)
        if created is None:
            return None
        record, secret = created
        return {**record.public(), "key": secret}

    created = with_client(create, ensure_setup=True)
    if created is None:
        raise CliError(f"no account '{owner}'")
    print_json(created)
    print("the key is shown only once: store it now", file=sys.stderr)
    return 0


def key_id_from_stdin() -> str:
    """The id of the whole key on standard input (typed without echo on a terminal)."""
    if sys.stdin.isatty():
        text = getpass.getpass("the whole key (not shown): ", stream=sys.stderr)
    else:
        text = sys.stdin.read(MAX_STDIN)
    match = WHOLE_KEY.fullmatch(text.strip())
    if match is None:
        raise CliError("standard input does not hold a whole key (alk_<id>_<secret>)")
    return match.group(1)


def key_id_argument(value: str) -> str:
    """A key id given as an argument (``alk_<id>`` too); a whole key is refused."""
    from service.actions.keys import KEY_ID

    if LOOKS_LIKE_A_KEY.fullmatch(value):
        raise CliError(
            "that argument holds a key's secret: a whole key is never taken as an argument "
            "(shell history, ps); pass it on standard input: auditlog keys revoke --stdin"
        )
    key_id = value.removeprefix("alk_")
    if not KEY_ID.match(key_id):
        raise CliError(f"key id '{value}': 16 characters of a-z 0-9 (after alk_ in the key)")
    return key_id


def _revoked_key_id(args: argparse.Namespace) -> str:
    from_stdin = args.stdin or args.key_id == "-"
    if from_stdin and args.key_id not in (None, "-"):
        raise CliError("give a key id or --stdin, not both")
    if from_stdin:
        return key_id_from_stdin()
    if args.key_id is None:
        raise CliError("give the key id, or - (or --stdin) to read the whole key from stdin")
    return key_id_argument(args.key_id)


def _keys_revoke(args: argparse.Namespace) -> int:
    key_id = _revoked_key_id(args)

    async def revoke(es: Engine, settings: Settings) -> KeyRecord | None:
        return await account_actions(es, settings).revoke_key(key_id)

    record = with_client(revoke, ensure_setup=True)
    if record is None:
        raise CliError(f"no key '{key_id}'")
    print_json(record.public())
    print("revoked: running services refuse it within AUDITLOG_KEY_CACHE_S", file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    if args.action == "create":
        return _keys_create(args)
    if args.action == "revoke":
        return _keys_revoke(args)
    owner = None if args.account is None else account_id(args.account)
    keys = with_client(lambda es, s: account_store(es, s).list_keys(owner), ensure_setup=True)
    print_json({"keys": [k.public() for k in keys]})
    return 0
