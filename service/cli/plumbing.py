"""What the commands share: exit codes and errors, an engine client per command, JSON output, the
admin API's validation, and the actor the command line's audit entries name."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from service.config import Settings, load_settings
from service.errors import EngineUnavailable, ServiceError
from service.local_engine.node import EngineInstance, default_instance_dir
from service.search.client import Engine

if TYPE_CHECKING:
    from service.actions.accounts import AccountActions
    from service.search.accounts import AccountStore

EXIT_FAILED = 1
"""The command ran but did not fully succeed (engine unavailable, a conflict, failed entries)."""
EXIT_USAGE = 2
"""The command was wrong: bad arguments or values, a missing file, an unknown account."""

CLI_ACTOR = {"type": "system", "id": "cli", "name": "auditlog CLI"}
"""Who acted, in the audit entries the command line writes."""


class CliError(Exception):
    """A clear message for stderr and the exit code that goes with it."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def from_service_error(error: ServiceError) -> CliError:
    """The API's error as the command line reports it: a 4xx is a usage error naming the field,
    anything else a failure."""
    message = f"{error.field}: {error.message}" if error.field else error.message
    return CliError(message, EXIT_USAGE if error.status < 500 else EXIT_FAILED)


def _engine_url(settings: Settings) -> str:
    if settings.es_url:
        return settings.es_url
    status = EngineInstance(default_instance_dir()).status()
    url = status.url
    if not status.running or url is None:
        raise CliError("no engine: set AUDITLOG_ES_URL or run 'auditlog engine start'", 1)
    return url


def with_client(
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


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


def validated(check: Callable[..., Any], *args: Any) -> Any:
    """Apply one of the admin API's validators; its 400 becomes a usage error."""
    try:
        return check(*args)
    except ServiceError as e:
        raise from_service_error(e) from e


def account_id(value: str) -> str:
    from service.actions.keys import ACCOUNT_ID

    if not ACCOUNT_ID.match(value):
        raise CliError(f"account id '{value}': 1-63 characters of a-z 0-9 _ - (first a-z 0-9)")
    return value


def account_store(es: Engine, settings: Settings) -> AccountStore:
    from service.search.accounts import AccountStore
    from service.search.indices import IndexNames

    return AccountStore(es, IndexNames(settings.index_prefix))


def account_actions(es: Engine, settings: Settings) -> AccountActions:
    """The account and key actions of the command line (recorded as the admin API's are)."""
    from ingest.pipeline import IngestContext
    from service.actions.accounts import AccountActions

    ingest = IngestContext.for_settings(es, settings)
    return AccountActions(account_store(es, settings), ingest, CLI_ACTOR)
