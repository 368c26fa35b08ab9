"""The service as the benchmark runs it: ``uvicorn --factory bench.serve:app`` in its own process.

Settings come from the environment only (``AUDITLOG_*``, set by :mod:`bench.service`), never from a
``.env`` file in the working directory, so the measured process is configured exactly as stated.
"""

from __future__ import annotations

from starlette.applications import Starlette

from service.app import create_app
from service.config import load_settings


def app() -> Starlette:
    return create_app(load_settings(env_file=None))
