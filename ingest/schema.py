"""Known metadata keys and their rules, read from the index templates (the source of truth).

``entries-meta-<category>.json`` types each key; a field's mapping ``meta`` may add ``min`` (a
lower bound for numbers) and ``enum`` (comma-separated allowed values).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from service.vocabulary import CATEGORIES

INT_BOUNDS = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
KEYWORD_MAX = 1024


@dataclass(frozen=True)
class FieldRule:
    type: str
    minimum: float | None = None
    enum: tuple[str, ...] | None = None


@cache
def metadata_rules(templates_dir: Path) -> dict[str, dict[str, FieldRule]]:
    """Category → known metadata key → rule."""
    rules: dict[str, dict[str, FieldRule]] = {}
    for category in CATEGORIES:
        body = json.loads((templates_dir / f"entries-meta-{category}.json").read_text())
        props = body["template"]["mappings"]["properties"]["metadata"]["properties"]
        rules[category] = {}
        for key, spec in props.items():
            meta = spec.get("meta", {})
            minimum = float(meta["min"]) if "min" in meta else None
            enum = tuple(meta["enum"].split(",")) if "enum" in meta else None
            rules[category][key] = FieldRule(spec["type"], minimum, enum)
    return rules


def known_metadata_columns(templates_dir: Path, categories: list[str]) -> list[str]:
    """The union of known metadata keys of ``categories``, in the order the templates list them."""
    rules = metadata_rules(templates_dir)
    seen: dict[str, None] = {}
    for category in CATEGORIES:
        if category in categories:
            for key in rules[category]:
                seen.setdefault(key, None)
    return list(seen)
