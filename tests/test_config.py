"""Settings read from the environment file: limits that keep every request answerable."""

from __future__ import annotations

from pathlib import Path

from service.config import MAX_FUTURE_SKEW_S, load_settings


def test_the_future_skew_is_at_most_a_year(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"AUDITLOG_MAX_FUTURE_SKEW_S={10**15}\n")
    assert load_settings(env_file=env).max_future_skew_s == MAX_FUTURE_SKEW_S == 366 * 24 * 3600
    env.write_text("AUDITLOG_MAX_FUTURE_SKEW_S=120\n")
    assert load_settings(env_file=env).max_future_skew_s == 120
