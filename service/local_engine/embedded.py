"""``auditlog run``: the embedded default — local engine, setup, demo data, the service.

Ctrl-C stops the service, then the engine this command started.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import uvicorn

from service.config import Settings
from service.integrity.keys import create_keys
from service.local_engine.node import EngineInstance, default_instance_dir


def _print_demo_key(settings: Settings) -> None:
    """Set up the indices, load the demo data once and print a fresh demo sign-in key."""
    from service.demo.setup import load_demo

    key = asyncio.run(load_demo(settings))
    print(
        f"\nSign in at http://{settings.host}:{settings.port}/ with the demo key:\n  {key}\n",
        flush=True,
    )


def with_local_keys(settings: Settings, say: bool = False) -> Settings:
    """The settings with the embedded default's integrity keys (beside the engine's directory,
    created on first use) unless ``AUDITLOG_KEYS_DIR`` names others."""
    if settings.keys_dir is not None:
        return settings
    directory = default_instance_dir().parent / "keys"
    created = create_keys(directory)
    if say:
        what = "created" if created else "kept"
        print(f"integrity keys ({what}): {directory} — back them up; the log's proofs need them")
    return replace(settings, keys_dir=directory)


def run_local(settings: Settings, demo: bool = True) -> int:
    engine: EngineInstance | None = None
    if not settings.es_url:
        settings = with_local_keys(settings, say=True)
        engine = EngineInstance(default_instance_dir())
        print("starting the local Elasticsearch node (first start downloads it)...", flush=True)
        status = engine.start()
        print(f"engine {status.version} at {status.url}", flush=True)
        settings = replace(settings, es_url=status.url)
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C while the demo loads
            if demo:
                _print_demo_key(settings)
            from service.app import create_app

            uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
    finally:
        if engine is not None:
            engine.stop()
            print("engine stopped", flush=True)
    return 0
