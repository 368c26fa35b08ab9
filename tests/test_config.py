"""Settings read from the environment file: limits that keep every request answerable."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from service.app import create_app
from service.config import MAX_FUTURE_SKEW_S, Settings, load_settings


def test_the_future_skew_is_at_most_a_year(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"AUDITLOG_MAX_FUTURE_SKEW_S={10**15}\n")
    assert load_settings(env_file=env).max_future_skew_s == MAX_FUTURE_SKEW_S == 366 * 24 * 3600
    env.write_text("AUDITLOG_MAX_FUTURE_SKEW_S=120\n")
    assert load_settings(env_file=env).max_future_skew_s == 120


def test_a_destination_key_that_is_not_32_bytes_of_base64_stops_the_start(
    settings: Settings,
) -> None:
    """It used to be found at the first destination's creation, a 503 for every one of them."""
    for key in ("0" * 64, "not base64!", base64.b64encode(b"k" * 16).decode()):
        app = create_app(replace(settings, destination_key=Secret(key)))
        with pytest.raises(RuntimeError, match="AUDITLOG_DESTINATION_KEY"), TestClient(app):
            pass
    good = base64.b64encode(b"k" * 32).decode()
    with TestClient(create_app(replace(settings, destination_key=Secret(good)))) as started:
        assert started.get("/healthz").status_code == 200
