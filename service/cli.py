"""The ``auditlog`` command line: the same functions the service uses, from a shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.config import Settings, load_settings
from service.errors import EngineUnavailable
from service.integrity.keys import KeysError
from service.local_engine.node import EngineError, EngineInstance, default_instance_dir
from service.search.client import Engine

if TYPE_CHECKING:
    from ingest.importer import ImportSummary
    from service.actions.accounts import AccountActions
    from service.search.accounts import Account, AccountStore, KeyRecord

EXIT_FAILED = 1
"""The command ran but did not fully succeed (engine unavailable, a conflict, failed entries)."""
EXIT_USAGE = 2
"""The command was wrong: bad arguments or values, a missing file, an unknown account."""


class CliError(Exception):
    """A clear message for stderr and the exit code that goes with it."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def _engine_url(settings: Settings) -> str:
    if settings.es_url:
        return settings.es_url
    status = EngineInstance(default_instance_dir()).status()
    url = status.url
    if not status.running or url is None:
        raise SystemExit("no engine: set AUDITLOG_ES_URL or run `auditlog engine start`")
    return url


def _with_client(
    fn: Callable[[Engine, Settings], Awaitable[Any]], ensure_setup: bool = False
) -> Any:
    """Run ``fn`` with a client of the configured engine (set up first when asked and needed)."""
    from service.search.client import make_client

    settings = load_settings()
    if not settings.es_url:  # the local node: its keys too
        from service.local_engine.embedded import with_local_keys

        settings = with_local_keys(settings)
    settings = replace(settings, es_url=_engine_url(settings))

    async def call() -> Any:
        assert settings.es_url
        es = make_client(settings, settings.es_url)
        try:
            if ensure_setup:
                await _ensure_setup(es, settings)
            return await fn(es, settings)
        finally:
            await es.close()

    try:
        return asyncio.run(call())
    except EngineUnavailable as e:
        raise CliError(f"the engine did not answer as expected: {e}", EXIT_FAILED) from e


async def _ensure_setup(es: Engine, settings: Settings) -> None:
    """Run setup when the service's own indices are missing (a new cluster or prefix)."""
    from service.search.setup import ensure_setup

    report = await ensure_setup(es, settings)
    if report is not None:
        print(f"setup: installed {len(report.changed)} resources", file=sys.stderr)


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


def cmd_engine(args: argparse.Namespace) -> int:
    instance = EngineInstance(Path(args.dir) if args.dir else default_instance_dir())
    try:
        if args.action == "start":
            status = instance.start(heap=args.heap)
        elif args.action == "stop":
            stopped = instance.stop()
            print("stopped" if stopped else "not running")
            return 0
        else:
            status = instance.status()
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(status.url if args.url else json.dumps(asdict(status), indent=2))
    return 0 if status.running or args.action == "status" else 1


def cmd_setup(args: argparse.Namespace) -> int:
    from service.search.setup import run_setup

    report = _with_client(run_setup)
    print(json.dumps(asdict(report), indent=2))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from service.actions.housekeeping import retention_now
    from service.runtime import Runtime
    from service.search.indices import IndexNames
    from service.search.setup import has_ilm

    async def run(es: Engine, settings: Settings) -> Any:
        if await has_ilm(es) and not args.force:
            return {"ilm": True, "note": "the engine's ILM enforces retention; nothing to do"}
        runtime = Runtime(settings=settings, es=es, names=IndexNames(settings.index_prefix))
        report = await retention_now(runtime)  # recorded in each affected account
        if report is None:
            raise CliError("a service instance is running retention now; try again later", 1)
        return asdict(report)

    print(json.dumps(_with_client(run), indent=2, default=str))
    return 0


def cmd_integrity(args: argparse.Namespace) -> int:
    from service.integrity.keys import create_keys, load_keys

    directory = Path(args.dir)
    created = create_keys(directory)
    keys = load_keys(directory)
    print(json.dumps({"dir": str(directory), "created": created, "key_id": keys.key_id}))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from service.actions.verify import verify_account
    from service.runtime import Runtime
    from service.search.indices import IndexNames

    async def run(es: Engine, settings: Settings) -> dict[str, Any]:
        runtime = Runtime(settings=settings, es=es, names=IndexNames(settings.index_prefix))
        if runtime.ingest.keys is None:
            raise CliError("AUDITLOG_KEYS_DIR is not set", EXIT_USAGE)
        if await _store(es, settings).get_account(args.account) is None:
            raise CliError(f"no account '{args.account}'", EXIT_USAGE)
        report = await verify_account(runtime, runtime.ingest.keys, args.account)
        return report.to_dict()

    report = _with_client(run)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else EXIT_FAILED


def cmd_verify_export(args: argparse.Namespace) -> int:
    from service.actions.verify_export import (
        VerifyExportError,
        fetch_proofs_from,
        load_public_keys,
        verify_export,
    )
    from service.integrity.keys import KeysError, load_keys

    try:
        manifest = json.loads(Path(args.manifest).read_bytes())
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read the manifest {args.manifest}: {e}", EXIT_USAGE) from e
    if not Path(args.file).is_file():
        raise CliError(f"no file {args.file}", EXIT_USAGE)
    try:
        if args.public_key:
            public = load_public_keys(Path(args.public_key))
        else:
            keys_dir = load_settings().keys_dir
            if keys_dir is None:
                raise CliError("give --public-key (the PEM or the JSON of /v1/integrity/keys)",
                               EXIT_USAGE)  # fmt: skip
            public = dict(load_keys(keys_dir).public)
        fetch = None
        if args.proofs:
            if not args.url or not args.api_key:
                raise CliError("--proofs needs --url and --api-key (or AUDITLOG_API_KEY)",
                               EXIT_USAGE)  # fmt: skip
            account_id = str(manifest.get("account_id")) if isinstance(manifest, dict) else ""
            fetch = fetch_proofs_from(args.url, args.api_key, account_id)
        report = verify_export(Path(args.file), manifest, public, fetch)
    except (VerifyExportError, KeysError, OSError) as e:
        raise CliError(str(e), EXIT_USAGE) from e
    print(json.dumps(report.to_dict(), indent=2))
    return 0 if report.ok else EXIT_FAILED


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = load_settings()
    if not settings.es_url:
        raise CliError(
            "AUDITLOG_ES_URL is not set (`auditlog run` starts a local engine)", EXIT_USAGE
        )
    if args.workers < 1:
        raise CliError("--workers must be 1 or more", EXIT_USAGE)
    uvicorn.run(
        "service.app:create_app",
        factory=True,  # each worker builds its app from the environment
        workers=args.workers,
        host=args.host or settings.host,
        port=args.port or settings.port,
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from service.local_engine.embedded import run_local

    return run_local(load_settings(), demo=not args.no_demo)


# --- import -----------------------------------------------------------------------------------


def _show_progress(summary: ImportSummary) -> None:
    print(f"\r{summary.progress_line()}", end="", file=sys.stderr, flush=True)


def cmd_import(args: argparse.Namespace) -> int:
    from ingest.importer import ImportUsageError, import_file
    from ingest.pipeline import IngestContext

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    if args.account is not None:
        _account_id(args.account)

    async def run(es: Engine, settings: Settings) -> ImportSummary:
        return await import_file(
            IngestContext.for_settings(es, settings),
            path,
            account=args.account,
            file_format=args.format,
            max_line_bytes=settings.max_line_bytes,
            progress=_show_progress,
        )

    try:
        summary: ImportSummary = _with_client(run, ensure_setup=True)
    except ImportUsageError as e:
        print(file=sys.stderr)
        raise CliError(str(e)) from e
    _show_progress(summary)
    print(file=sys.stderr)
    _print_json(summary.to_dict())
    return EXIT_FAILED if summary.failed else 0


# --- accounts and keys -------------------------------------------------------------------------

CLI_ACTOR = {"type": "system", "id": "cli", "name": "auditlog CLI"}


def _validated(check: Callable[..., Any], *args: Any) -> Any:
    """Apply one of the admin API's validators; its 400 becomes a usage error."""
    from service.errors import ServiceError

    try:
        return check(*args)
    except ServiceError as e:
        raise CliError(f"{e.field}: {e.message}" if e.field else e.message) from e


def _account_id(value: str) -> str:
    from service.actions.keys import ACCOUNT_ID

    if not ACCOUNT_ID.match(value):
        raise CliError(f"account id '{value}': 1-63 characters of a-z 0-9 _ - (first a-z 0-9)")
    return value


def _store(es: Engine, settings: Settings) -> AccountStore:
    from service.search.accounts import AccountStore
    from service.search.indices import IndexNames

    return AccountStore(es, IndexNames(settings.index_prefix))


def _actions(es: Engine, settings: Settings) -> AccountActions:
    """The account and key actions of the command line (recorded as the admin API's are)."""
    from ingest.pipeline import IngestContext
    from service.actions.accounts import AccountActions

    ingest = IngestContext.for_settings(es, settings)
    return AccountActions(_store(es, settings), ingest, CLI_ACTOR)


def _account_changes(args: argparse.Namespace) -> dict[str, str]:
    from service.actions.accounts import validate_name, validate_timezone

    changes = {}
    if args.name is not None:
        changes["name"] = _validated(validate_name, args.name)
    if args.timezone is not None:
        changes["timezone"] = _validated(validate_timezone, args.timezone)
    return changes


def _accounts_create(account_id: str, changes: dict[str, str]) -> int:
    from service.search.accounts import Account

    name, timezone = changes.get("name", account_id), changes.get("timezone", "UTC")
    account = Account(account_id, name, timezone)

    async def create(es: Engine, settings: Settings) -> bool:
        return await _actions(es, settings).create_account(account)

    if not _with_client(create, ensure_setup=True):
        raise CliError(f"account '{account_id}' exists")
    _print_json(account.to_dict())
    return 0


def _accounts_update(account_id: str, changes: dict[str, str]) -> int:
    if not changes:
        raise CliError("nothing to change: give --name and/or --timezone")

    async def update(es: Engine, settings: Settings) -> Account | None:
        return await _actions(es, settings).update_account(account_id, changes)

    updated = _with_client(update, ensure_setup=True)
    if updated is None:
        raise CliError(f"no account '{account_id}'")
    _print_json(updated.to_dict())
    return 0


def _fix_timezones() -> int:
    """Give each account stored with a refused timezone the accepted zone it means (UTC where
    none does), recorded in its log like any change."""
    from service.zones import accepted_name, accepted_zones

    async def fix(es: Engine, settings: Settings) -> list[dict[str, str]]:
        fixed = []
        for account in await _store(es, settings).accounts_outside(accepted_zones()):
            zone = accepted_name(account.timezone) or "UTC"
            await _actions(es, settings).update_account(account.id, {"timezone": zone})
            fixed.append({"id": account.id, "from": account.timezone, "to": zone})
        return fixed

    _print_json({"fixed": _with_client(fix, ensure_setup=True)})
    return 0


def cmd_accounts(args: argparse.Namespace) -> int:
    if args.action == "list":
        accounts = _with_client(lambda es, s: _store(es, s).list_accounts(), ensure_setup=True)
        _print_json({"accounts": [a.to_dict() for a in accounts]})
        return 0
    if args.action == "fix-timezones":
        return _fix_timezones()
    account_id, changes = _account_id(args.id), _account_changes(args)
    if args.action == "create":
        return _accounts_create(account_id, changes)
    return _accounts_update(account_id, changes)


def _keys_create(args: argparse.Namespace) -> int:
    from service.actions.accounts import validate_name, validate_scopes

    account_id = None if args.platform else _account_id(args.account)
    wanted = [s.strip() for s in args.scopes.split(",") if s.strip()]
    scopes, name = (
        _validated(validate_scopes, wanted, account_id),
        _validated(validate_name, args.name),
    )

    async def create(es: Engine, settings: Settings) -> dict[str, Any] | None:
        created = await _actions(es, settings).create_key(name, account_id, scopes)
        if created is None:
            return None
        record, secret = created
        return {**record.public(), "key": secret}

    created = _with_client(create, ensure_setup=True)
    if created is None:
        raise CliError(f"no account '{account_id}'")
    _print_json(created)
    print("the key is shown only once: store it now", file=sys.stderr)
    return 0


def _keys_revoke(key_id: str) -> int:
    async def revoke(es: Engine, settings: Settings) -> KeyRecord | None:
        return await _actions(es, settings).revoke_key(key_id)

    record = _with_client(revoke, ensure_setup=True)
    if record is None:
        raise CliError(f"no key '{key_id}'")
    _print_json(record.public())
    print("revoked: running services refuse it within AUDITLOG_KEY_CACHE_S", file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    if args.action == "create":
        return _keys_create(args)
    if args.action == "revoke":
        return _keys_revoke(args.key_id)
    account_id = None if args.account is None else _account_id(args.account)
    keys = _with_client(lambda es, s: _store(es, s).list_keys(account_id), ensure_setup=True)
    _print_json({"keys": [k.public() for k in keys]})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditlog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    engine = sub.add_parser("engine", help="the local Elasticsearch node")
    engine.add_argument("action", choices=["start", "stop", "status"])
    engine.add_argument("--dir", help="instance directory (default: AUDITLOG_ENGINE_DIR)")
    engine.add_argument("--heap", default="1g", help="JVM heap, e.g. 1g")
    engine.add_argument("--url", action="store_true", help="print only the engine's URL")
    engine.set_defaults(func=cmd_engine)
    sub.add_parser("setup", help="install templates, policies and system indices").set_defaults(
        func=cmd_setup
    )
    retention = sub.add_parser("retention", help="apply retention where the engine has no ILM")
    retention.add_argument("action", choices=["run"])
    retention.add_argument("--force", action="store_true", help="sweep even when ILM is present")
    retention.set_defaults(func=cmd_retention)
    serve = sub.add_parser("serve", help="serve on the engine at AUDITLOG_ES_URL")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--host", help="default: AUDITLOG_HOST")
    serve.add_argument("--port", type=int, help="default: AUDITLOG_PORT")
    serve.set_defaults(func=cmd_serve)
    run = sub.add_parser("run", help="serve on the local engine with demo data")
    run.add_argument("--no-demo", action="store_true", help="do not load demo data")
    run.set_defaults(func=cmd_run)
    integrity = sub.add_parser("integrity", help="the integrity keys")
    integrity.add_argument("action", choices=["init-keys"])
    integrity.add_argument("dir", help="the keys directory (AUDITLOG_KEYS_DIR)")
    integrity.set_defaults(func=cmd_integrity)
    verify = sub.add_parser("verify", help="verify an account's log against the stored entries")
    verify.add_argument("--account", required=True, help="the account id")
    verify.set_defaults(func=cmd_verify)
    check = sub.add_parser(
        "verify-export",
        help="check an export file against its signed manifest (offline; --proofs asks the "
        "service for each row's inclusion proof)",
    )
    check.add_argument("file", help="the exported file (CSV, XLSX or NDJSON)")
    check.add_argument("manifest", help="its manifest (GET /v1/exports/<id>/manifest)")
    check.add_argument("--public-key", help="a PEM public key, or the JSON of /v1/integrity/keys "
                       "(default: the keys of AUDITLOG_KEYS_DIR)")  # fmt: skip
    check.add_argument(
        "--proofs",
        action="store_true",
        help="prove every row in the account's log under the manifest's head",
    )
    check.add_argument(
        "--url",
        default=os.environ.get("AUDITLOG_URL"),
        help="the service, for --proofs (default: AUDITLOG_URL)",
    )
    check.add_argument(
        "--api-key",
        default=os.environ.get("AUDITLOG_API_KEY"),
        help="a key with the read scope, for --proofs (default: AUDITLOG_API_KEY)",
    )
    check.set_defaults(func=cmd_verify_export)
    _add_import_parser(sub)
    _add_accounts_parser(sub)
    _add_keys_parser(sub)
    return parser


def _add_import_parser(sub: Any) -> None:
    imp = sub.add_parser("import", help="import entries from an NDJSON or CSV file (gzip too)")
    imp.add_argument("file", help="the file; .gz or gzip content is decompressed")
    imp.add_argument("--account", help="the account of every entry (else an account_id field)")
    imp.add_argument("--format", choices=["ndjson", "csv"], help="default: from the suffix")
    imp.set_defaults(func=cmd_import)


def _add_accounts_parser(sub: Any) -> None:
    accounts = sub.add_parser("accounts", help="create, change and list accounts")
    actions = accounts.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create an account")
    update = actions.add_parser("update", help="change an account's name or timezone")
    for parser in (create, update):
        parser.add_argument("id", help="account id: 1-63 of a-z 0-9 _ -")
        parser.add_argument("--name", help="display name (create: default the id)")
        parser.add_argument("--timezone", help="IANA timezone (create: default UTC)")
    actions.add_parser("list", help="list accounts")
    actions.add_parser(
        "fix-timezones", help="give accounts stored with an unsupported timezone the zone it means"
    )
    accounts.set_defaults(func=cmd_accounts)


def _add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, revoke and list API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; prints its secret once")
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--account", help="an account key of this account")
    owner.add_argument("--platform", action="store_true", help="a platform key (any account)")
    create.add_argument(
        "--scopes", required=True, help="comma-separated: ingest,read,export,viewer,admin"
    )
    create.add_argument("--name", default="key", help="what the key is for")
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id", help="the key's id (the part after alk_)")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--account", help="only the keys of this account")
    keys.set_defaults(func=cmd_keys)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except CliError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.code
    except KeysError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
