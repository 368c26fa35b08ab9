"""The ``auditlog`` command line: the same functions the service uses, from a shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch

from service.config import Settings, load_settings
from service.engine import EngineError, EngineInstance, default_instance_dir


def _engine_url(settings: Settings) -> str:
    if settings.es_url:
        return settings.es_url
    status = EngineInstance(default_instance_dir()).status()
    url = status.url
    if not status.running or url is None:
        raise SystemExit("no engine: set AUDITLOG_ES_URL or run `auditlog engine start`")
    return url


def _with_client(
    fn: Callable[[AsyncElasticsearch, Settings], Awaitable[Any]],
) -> Any:
    from service.search.client import make_client

    settings = load_settings()
    settings = replace(settings, es_url=_engine_url(settings))

    async def call() -> Any:
        assert settings.es_url
        es = make_client(settings, settings.es_url)
        try:
            return await fn(es, settings)
        finally:
            await es.close()

    return asyncio.run(call())


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
    print(json.dumps(asdict(status), indent=2))
    return 0 if status.running or args.action == "status" else 1


def cmd_setup(args: argparse.Namespace) -> int:
    from service.search.setup import run_setup

    report = _with_client(run_setup)
    print(json.dumps(asdict(report), indent=2))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from service.search.retention import sweep_expired
    from service.search.setup import has_ilm

    async def run(es: AsyncElasticsearch, settings: Settings) -> Any:
        if await has_ilm(es) and not args.force:
            return {"ilm": True, "note": "the engine's ILM enforces retention; nothing to do"}
        return asdict(await sweep_expired(es, settings))

    print(json.dumps(_with_client(run), indent=2, default=str))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from service.run import run_local

    return run_local(load_settings(), demo=not args.no_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditlog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    engine = sub.add_parser("engine", help="the local Elasticsearch node")
    engine.add_argument("action", choices=["start", "stop", "status"])
    engine.add_argument("--dir", help="instance directory (default: AUDITLOG_ENGINE_DIR)")
    engine.add_argument("--heap", default="1g", help="JVM heap, e.g. 1g")
    engine.set_defaults(func=cmd_engine)
    sub.add_parser("setup", help="install templates, policies and system indices").set_defaults(
        func=cmd_setup
    )
    retention = sub.add_parser("retention", help="apply retention where the engine has no ILM")
    retention.add_argument("action", choices=["run"])
    retention.add_argument("--force", action="store_true", help="sweep even when ILM is present")
    retention.set_defaults(func=cmd_retention)
    run = sub.add_parser("run", help="serve on the local engine with demo data")
    run.add_argument("--no-demo", action="store_true", help="do not load demo data")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
