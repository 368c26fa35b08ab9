"""Every setting the service reads is documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import SETTING_NAMES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in README


def test_readme_starts_with_the_two_commands() -> None:
    head = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "make run" in head and "make test" in head
