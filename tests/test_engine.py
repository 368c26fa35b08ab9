"""The local engine manager against the real node the session runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from service.local_engine.node import ENGINE_VERSION, EngineInstance, cache_dir


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, check=False
    )


def test_status_prints_the_version_the_node_reports(engine_dir: Path | None) -> None:
    if engine_dir is None:
        pytest.skip("the session uses an external engine (AUDITLOG_TEST_ES_URL)")
    result = _cli("engine", "status", "--dir", str(engine_dir))
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["running"] is True
    assert status["version"] == ENGINE_VERSION
    assert status["health"] in ("green", "yellow")


def test_distribution_is_cached_outside_the_work_tree(engine_dir: Path | None) -> None:
    if engine_dir is None:
        pytest.skip("the session uses an external engine (AUDITLOG_TEST_ES_URL)")
    archive = cache_dir() / f"elasticsearch-{ENGINE_VERSION}.zip"
    assert archive.exists()
    repo = Path(__file__).resolve().parent.parent
    assert repo not in archive.resolve().parents


@pytest.mark.second_engine  # starts a node of its own: not in `make test-fast`
def test_stale_pid_file_does_not_block_a_start() -> None:
    # Not tmp_path: another pytest session may reset /tmp/pytest-of-root to 0700 at any time,
    # locking the unprivileged engine user out of its data.
    directory = Path(tempfile.mkdtemp(prefix="auditlog-stale-pid-"))
    (directory / "engine.pid").write_text(str(os.getpid()))  # a live process, but not the engine
    instance = EngineInstance(directory)
    assert instance.status().running is False
    try:
        status = instance.start()
        assert status.running and status.version == ENGINE_VERSION
        assert instance.pid() != os.getpid()
    finally:
        assert instance.stop() is True
        shutil.rmtree(directory, ignore_errors=True)
    assert instance.status().running is False


def test_stopping_a_stopped_engine_is_harmless(tmp_path: Path) -> None:
    assert EngineInstance(tmp_path).stop() is False
