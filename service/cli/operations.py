"""Running the service and its engine, setup, retention, and the integrity commands."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from service.cli.plumbing import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    account_id,
    account_store,
    with_client,
)
from service.config import Settings, load_settings
from service.local_engine.node import EngineError, EngineInstance, default_instance_dir
from service.search.client import Engine


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

    report = with_client(run_setup)
    print(json.dumps(asdict(report), indent=2))
    return 0


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_retention(args: argparse.Namespace) -> int:
    from service.actions.housekeeping import RetentionNotRun, retention_now
    from service.runtime import Runtime
    from service.search.indices import IndexNames
    from service.search.setup import has_ilm

    async def run(es: Engine, settings: Settings) -> Any:
        if await has_ilm(es) and not args.force:
            return {"ilm": True, "note": "the engine's ILM enforces retention; nothing to do"}
        runtime = Runtime(settings=settings, es=es, names=IndexNames(settings.index_prefix))
        try:  # recorded in each account
            return await retention_now(runtime, force=args.force, waiting=_note)
        except RetentionNotRun as e:
            raise CliError(str(e), 1) from e

    print(json.dumps(with_client(run), indent=2, default=str))
    return 0


def cmd_integrity(args: argparse.Namespace) -> int:
    from service.integrity.keys import create_keys, load_keys

    if not args.dir.strip():  # Path("") is the working directory: keys left where nobody looks
        raise CliError("the keys directory is empty: give its path, e.g. /etc/auditlog/keys")
    directory = Path(args.dir)
    created = create_keys(directory)
    keys = load_keys(directory)
    print(json.dumps({"dir": str(directory), "created": created, "key_id": keys.key_id}))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from service.actions.heads_file import HeadsFileError, read_heads
    from service.actions.verify import verify_account
    from service.actions.verify_heads import verify_heads
    from service.runtime import Runtime
    from service.search.indices import IndexNames

    account_id(args.account)
    try:  # the file first: a file that holds no head is a usage error, before any work
        kept = read_heads(Path(args.heads), args.account) if args.heads else None
    except HeadsFileError as e:
        raise CliError(str(e), EXIT_USAGE) from e

    async def run(es: Engine, settings: Settings) -> dict[str, Any]:
        runtime = Runtime(settings=settings, es=es, names=IndexNames(settings.index_prefix))
        keys = runtime.ingest.keys
        if keys is None:
            raise CliError("AUDITLOG_KEYS_DIR is not set", EXIT_USAGE)
        if await account_store(es, settings).get_account(args.account) is None:
            raise CliError(f"no account '{args.account}'", EXIT_USAGE)
        report = await verify_account(runtime, keys, args.account)
        if kept is not None:
            report.heads = await verify_heads(runtime, keys, args.account, kept)
        return report.to_dict()

    report = with_client(run)
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
            "AUDITLOG_ES_URL is not set ('auditlog run' starts a local engine)", EXIT_USAGE
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
