"""Who may import whom (README "Architecture"): a test that fails when an import breaks a rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
API_HANDLERS = {"service.admin_api", "service.export_api", "service.ingest_api",
                "service.search_api", "service.health", "service.openapi"}  # fmt: skip
ENTRY_POINTS = {"service.app", "service.cli", "service.run", "service.serve"}
ENGINE_LAYER_MAY_USE = {"service.config", "service.errors", "service.vocabulary", "service.zones"}


def _modules() -> dict[str, set[str]]:
    """Every module of ``service`` and ``ingest`` → the project modules it imports."""
    found: dict[str, set[str]] = {}
    for package in ("service", "ingest"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            imported: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module)
                    imported |= {f"{node.module}.{alias.name}" for alias in node.names}
                elif isinstance(node, ast.Import):
                    imported |= {alias.name for alias in node.names}
            found[name] = {m for m in imported if m.split(".")[0] in ("service", "ingest")}
    return found


MODULES = _modules()


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _is_handler(module: str) -> bool:
    return module in API_HANDLERS or _in(module, "service.page")


def _project(imported: set[str]) -> set[str]:
    """The imported names that are modules of the project (``from x import y`` lists both)."""
    return {m for m in imported if m in MODULES}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _is_handler(m)))
def test_a_handler_imports_no_other_handler(module: str) -> None:
    own_package = "service.page" if _in(module, "service.page") else module
    others = {m for m in _project(MODULES[module]) if _is_handler(m)}
    assert {m for m in others if not _in(m, own_package)} == set()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_entry_points_import_handlers(module: str) -> None:
    if module in ENTRY_POINTS or _is_handler(module):
        return
    assert {m for m in _project(MODULES[module]) if _is_handler(m)} == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, "service.search")))
def test_the_engine_layer_uses_only_itself_and_the_basics(module: str) -> None:
    for imported in _project(MODULES[module]):
        assert _in(imported, "service.search") or imported in ENGINE_LAYER_MAY_USE, imported


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, "ingest")))
def test_ingestion_sits_on_the_engine_layer(module: str) -> None:
    for imported in _project(MODULES[module]):
        below = _in(imported, "ingest") or _in(imported, "service.search")
        assert below or imported in ENGINE_LAYER_MAY_USE, imported


def test_the_rules_see_the_whole_project() -> None:
    assert len(MODULES) > 50
    assert {"service.app", "service.page.handlers", "service.search.writer"} <= set(MODULES)
