"""``make bench`` on a fresh clone: every package the benchmark imports is installed by the
Makefile's bench target (the service's dependencies, or the ``bench`` extra it installs)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _third_party_imports() -> set[str]:
    found = set()
    for path in (ROOT / "bench").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    local = {"bench", "service", "ingest", "tests", "__future__"}
    return {name for name in found - local if name not in sys.stdlib_module_names}


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_every_package_the_benchmark_imports_is_installed_by_make_bench() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    installed = _requirement_names(project["dependencies"] + extras["dev"] + extras["bench"])
    installed |= {"orjson"}  # with elasticsearch[orjson]; the others import as they are named
    for name in _third_party_imports():
        assert name in installed, f"bench imports {name}, which make bench does not install"
    makefile = (ROOT / "Makefile").read_text()
    bench_target = re.search(r"^bench: (.*)$", makefile, re.MULTILINE)
    assert bench_target and "BENCH_STAMP" in bench_target.group(1)
    assert "'.[dev,bench]'" in makefile
