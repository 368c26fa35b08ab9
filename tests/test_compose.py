"""docker-compose.yml is valid where the docker CLI exists."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from service.local_engine.node import ENGINE_VERSION
from tests.helpers import has_compose

ROOT = Path(__file__).resolve().parent.parent


def test_compose_uses_the_engine_version_of_the_local_node() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert f"elasticsearch:{ENGINE_VERSION}" in text
    assert "xpack.security.enabled=true" in text


@pytest.mark.skipif(not has_compose(), reason="no docker CLI with the compose plugin here")
def test_compose_file_validates() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        env={"ELASTIC_PASSWORD": "x", "AUDITLOG_ADMIN_KEY": "y", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
