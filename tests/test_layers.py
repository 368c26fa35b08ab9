"""Who may import whom (README "Architecture"): a test that fails when an import breaks a rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASICS = ("service.config", "service.errors", "service.vocabulary", "service.zones")
WIRING = ("service.runtime", "service.key_cache")
ENTRY_POINTS = {"service.app", "service.cli", "service.local_engine.embedded", "service.api.routes"}
LAYERS: dict[str, tuple[str, ...]] = {
    "service.integrity": BASICS,
    "service.search": BASICS,
    "ingest": ("service.search", "service.integrity", *BASICS),
    "service.export": ("ingest", "service.search", "service.integrity", *BASICS),
    "service.runtime": ("service.key_cache", "ingest", "service.search", "service.integrity",
                        *BASICS),
    "service.key_cache": ("service.search", *BASICS),
    "service.actions": ("service.streaming", "service.export", *WIRING, "ingest",
                        "service.search", "service.integrity", *BASICS),
    "service.demo": ("service.actions", *WIRING, "ingest", "service.search", *BASICS),
    "service.web": ("service.actions", *WIRING, "ingest", "service.search", *BASICS),
    "service.api": ("service.web", "service.actions", "service.export", *WIRING, "ingest",
                    "service.search", "service.integrity", *BASICS),
    "service.page": ("service.web", "service.actions", "service.export", *WIRING, "ingest",
                     "service.search", "service.integrity", *BASICS),
    "service.local_engine": BASICS,
    "service.streaming": ("service.integrity", *BASICS),
}  # fmt: skip
"""Each package (or module) → what it may import besides itself. Entry points import anything."""
HANDLERS = ("service.api", "service.page")
"""Packages of HTTP handlers: a handler module imports no handler module of another package, and
an API handler no other API handler (the page's modules work together as one handler)."""
NOT_HANDLERS = {"service.api.openapi", "service.api.openapi_schemas", "service.api.routes"}


def _modules() -> dict[str, set[str]]:
    """Every module of ``service`` and ``ingest`` → every module name it imports."""
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
            found[name] = imported
    return found


MODULES = _modules()


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _layer(module: str) -> str | None:
    return next((layer for layer in LAYERS if _in(module, layer)), None)


def _project(imported: set[str]) -> set[str]:
    """The imported names that are modules of the project (``from x import y`` lists both)."""
    return {m for m in imported if m in MODULES}


def _is_handler(module: str) -> bool:
    return any(_in(module, p) for p in HANDLERS) and module not in NOT_HANDLERS


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if not any(_in(m, e) for e in ENTRY_POINTS))
)
def test_a_module_imports_only_its_own_layer_and_those_below(module: str) -> None:
    layer = _layer(module)
    if layer is None:
        assert module in BASICS or module in ("service", "ingest"), f"{module}: no layer"
        allowed: tuple[str, ...] = BASICS
    else:
        allowed = (layer, *LAYERS[layer])
    wrong = {m for m in _project(MODULES[module]) if not any(_in(m, a) for a in allowed)}
    assert wrong == set(), f"{module} may not import {sorted(wrong)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _is_handler(m)))
def test_a_handler_imports_no_other_handler(module: str) -> None:
    own = "service.page" if _in(module, "service.page") else module
    others = {m for m in _project(MODULES[module]) if _is_handler(m) and not _in(m, own)}
    assert others == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not _in(m, "service.search")))
def test_only_the_engine_layer_imports_the_engine_client(module: str) -> None:
    assert {m for m in MODULES[module] if _in(m, "elasticsearch")} == set()


def test_the_rules_see_the_whole_project() -> None:
    assert len(MODULES) > 60
    assert {"service.app", "service.page.handlers", "service.search.writer"} <= set(MODULES)
    assert {"service.search.client", "service.search.writer"} <= {
        m for m in MODULES if any(_in(i, "elasticsearch") for i in MODULES[m])
    }
