"""The local engine's launcher output, opened by root in a directory the engine user owns: a
link planted there is refused, never followed (no engine started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.local_engine.node import launcher_output


def _instance(tmp_path: Path) -> tuple[Path, Path]:
    """An instance directory with its ``logs/``, and a file outside it (root's, say)."""
    (tmp_path / "instance" / "logs").mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.write_text("root:secret\n")
    return tmp_path / "instance", precious


def test_the_output_is_emptied_written_and_read_back(tmp_path: Path) -> None:
    instance, _ = _instance(tmp_path)
    (instance / "logs" / "launcher.out").write_text("the run before\n" * 10)
    with launcher_output(instance) as out:
        out.write("started\n")
        out.flush()
        out.seek(0)
        assert out.read() == "started\n"
    assert (instance / "logs" / "launcher.out").read_text() == "started\n"


@pytest.mark.parametrize("planted", ["symlink", "logs symlink", "hard link", "fifo"])
def test_a_link_planted_in_the_engine_users_directory_is_refused(
    tmp_path: Path, planted: str
) -> None:
    instance, precious = _instance(tmp_path)
    said = instance / "logs" / "launcher.out"
    if planted == "symlink":
        said.symlink_to(precious)
    elif planted == "logs symlink":
        (instance / "logs").rmdir()
        (tmp_path / "elsewhere").mkdir()
        (instance / "logs").symlink_to(tmp_path / "elsewhere")
        (tmp_path / "elsewhere" / "launcher.out").write_text("root:secret\n")
        precious = tmp_path / "elsewhere" / "launcher.out"
    elif planted == "hard link":
        os.link(precious, said)
    else:
        os.mkfifo(said)
    with pytest.raises(OSError):
        launcher_output(instance)
    assert precious.read_text() == "root:secret\n"
