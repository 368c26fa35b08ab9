"""The application factory and its lifespan.

The lifespan owns the engine client and the background work: it runs setup (retrying until the
engine answers), and, where the engine has no ILM, the retention sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from service import page
from service.actions.housekeeping import housekeeping_loop
from service.actions.sealer import sealer_loop
from service.actions.streaming import delivery_loop
from service.api.routes import routes as api_routes
from service.config import Settings, load_settings
from service.errors import EXCEPTION_HANDLERS, EngineUnavailable
from service.integrity.keys import load_keys
from service.runtime import FINISH_S, Runtime
from service.search.accounts import AccountStore
from service.search.client import make_client
from service.search.indices import IndexNames
from service.search.setup import run_setup
from service.search.shared_state import shared_secret
from service.streaming.secrets import SecretsBox, SecretsKeyError
from service.web import security
from service.zones import accepted_zones

log = logging.getLogger("auditlog")
SETUP_RETRY_S = 5.0
GC_THRESHOLDS = (50_000, 20, 20)
"""The cyclic collector's thresholds while serving (Python's defaults: 700, 10, 10)."""


@contextlib.contextmanager
def collector_tuned() -> Iterator[None]:
    """Fewer cyclic garbage collections while serving.

    An ingest request allocates millions of short-lived, acyclic dicts, freed by reference
    counting; with the default young-generation threshold of 700 allocations the collector ran
    thousands of times per request and took a fifth of the ingest CPU. Objects alive at start-up
    (modules, templates, settings) are frozen out of the collector's scans. Restored on shutdown.
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


async def _setup_until_done(runtime: Runtime) -> None:
    while not runtime.setup_done:
        try:
            report = await run_setup(runtime.es, runtime.settings)
            if runtime.cursor_secret is None:
                runtime.cursor_secret = await shared_secret(runtime.es, runtime.names, "cursor")
        except EngineUnavailable as e:
            log.warning("setup failed (%s); retrying in %.0fs", e, SETUP_RETRY_S)
            await asyncio.sleep(SETUP_RETRY_S)
            continue
        runtime.ilm, runtime.setup_done = report.ilm, True
        log.info("setup: changed %s", report.changed or "nothing")
    await _report_refused_zones(runtime)


async def _report_refused_zones(runtime: Runtime) -> None:
    """Log the accounts stored with a timezone the service no longer accepts (their views need
    ``tz`` until ``auditlog accounts fix-timezones`` gives them an accepted one)."""
    try:
        refused = await AccountStore(runtime.es, runtime.names).accounts_outside(accepted_zones())
    except EngineUnavailable as e:
        log.warning("could not check the accounts' timezones: %s", e)
        return
    for account in refused:
        log.warning(
            "account %s has the timezone %r, which is not supported; "
            "run `auditlog accounts fix-timezones`",
            account.id,
            account.timezone,
        )


def _lifespan(settings: Settings) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if not settings.es_url:
            raise RuntimeError("AUDITLOG_ES_URL is not set (use `auditlog run` for a local engine)")
        if settings.keys_dir is None:
            raise RuntimeError(
                "AUDITLOG_KEYS_DIR is not set: the integrity keys sign the log "
                "(create them once with `auditlog integrity init-keys DIR`)"
            )
        load_keys(settings.keys_dir)  # a missing or broken key stops the start, saying why
        if settings.destination_key is not None:
            try:  # found at startup, not at the first destination's 503
                SecretsBox(str(settings.destination_key))
            except SecretsKeyError as e:
                raise RuntimeError(
                    f"{e} (python -c 'import base64, os; "
                    "print(base64.b64encode(os.urandom(32)).decode())')"
                ) from e
        es = make_client(settings, settings.es_url)
        runtime = Runtime(settings=settings, es=es, names=IndexNames(settings.index_prefix))
        tasks = [
            asyncio.create_task(_setup_until_done(runtime)),
            asyncio.create_task(housekeeping_loop(runtime)),
        ]
        if settings.sealing and runtime.ingest.keys is not None:
            tasks.append(asyncio.create_task(sealer_loop(runtime, runtime.ingest.keys)))
        tasks.append(asyncio.create_task(delivery_loop(runtime)))
        try:
            with collector_tuned():
                yield {"runtime": runtime}
        finally:
            if runtime.finishing:  # e.g. the outcomes of batches just answered
                await asyncio.wait(runtime.finishing, timeout=FINISH_S)
            for task in [*tasks, *runtime.tasks, *runtime.finishing]:
                task.cancel()
            await asyncio.gather(*tasks, *runtime.tasks, *runtime.finishing,
                                 return_exceptions=True)  # fmt: skip
            await es.close()

    return lifespan


async def _root(request: Request) -> Response:
    return RedirectResponse("/settings/audit-logs", status_code=307)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    security.redact_access_log()
    routes = [
        Route("/", _root),
        *api_routes(),
        *page.routes(settings),
    ]
    return Starlette(
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=security.middleware(settings),
        lifespan=_lifespan(settings),
    )
