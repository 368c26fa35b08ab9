"""Setup: install templates, policies and system indices; safe at every deploy.

``index_templates/`` and ``ilm_policies/`` are the single source of truth: a file's stem is the
resource's name (after the configured prefix), a file with ``index_patterns`` is an index
template and any other a component template. Each installed resource carries the checksum of
what was rendered from its file in ``_meta.checksum``, so setup writes only what changed and
reports it; running it twice, or from several processes at once, is harmless.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError

from service.config import Settings
from service.search.engine_errors import translated
from service.search.indices import IndexNames


@dataclass
class SetupReport:
    ilm: bool
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    created_indices: list[str] = field(default_factory=list)


def _render(value: Any, prefix: str) -> Any:
    if isinstance(value, str):
        return value.replace("{prefix}", prefix)
    if isinstance(value, list):
        return [_render(v, prefix) for v in value]
    if isinstance(value, dict):
        return {_render(k, prefix): _render(v, prefix) for k, v in value.items()}
    return value


def _with_checksum(body: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {**body, "_meta": {**body.get("_meta", {}), "checksum": digest}}


def load_json_files(directory: Path) -> dict[str, dict[str, Any]]:
    """Every ``*.json`` of ``directory`` by file stem."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def render_templates(
    settings: Settings, ilm: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Component and index templates, by engine name, as setup would install them."""
    names = IndexNames(settings.index_prefix)
    components: dict[str, dict[str, Any]] = {}
    index_templates: dict[str, dict[str, Any]] = {}
    for stem, raw in load_json_files(settings.templates_dir).items():
        body = _render(raw, settings.index_prefix)
        template = body.setdefault("template", {})
        if "index_patterns" in body:
            index_settings = template.setdefault("settings", {}).setdefault("index", {})
            if "composed_of" not in body:  # a system index: carries its own settings
                index_settings["number_of_replicas"] = settings.index_replicas
            policy = body.get("_meta", {}).get("lifecycle_policy")
            if ilm and policy:
                index_settings["lifecycle"] = {"name": policy, "parse_origination_date": True}
            index_templates[names.resource(stem)] = _with_checksum(body)
        else:
            if "settings" in template:
                template["settings"].setdefault("index", {})["number_of_replicas"] = (
                    settings.index_replicas
                )
            components[names.resource(stem)] = _with_checksum(body)
    return components, index_templates


@translated
async def has_ilm(client: AsyncElasticsearch) -> bool:
    """Whether the engine manages index lifecycles (the integ-test distribution does not)."""
    try:
        await client.ilm.get_status()
    except ApiError as e:
        if e.meta.status in (400, 404, 405, 410):
            return False
        raise
    return True


async def _installed_checksum(client: AsyncElasticsearch, kind: str, name: str) -> str | None:
    try:
        if kind == "component":
            resp = await client.cluster.get_component_template(name=name)
            meta = resp["component_templates"][0]["component_template"].get("_meta", {})
        elif kind == "index":
            resp = await client.indices.get_index_template(name=name)
            meta = resp["index_templates"][0]["index_template"].get("_meta", {})
        else:
            resp = await client.ilm.get_lifecycle(name=name)
            meta = resp[name]["policy"].get("_meta", {})
    except NotFoundError:
        return None
    checksum = meta.get("checksum")
    return str(checksum) if checksum else None


async def _install(
    client: AsyncElasticsearch, kind: str, name: str, body: dict[str, Any], report: SetupReport
) -> None:
    if await _installed_checksum(client, kind, name) == body["_meta"]["checksum"]:
        report.unchanged.append(name)
        return
    if kind == "component":
        await client.cluster.put_component_template(name=name, body=body)
    elif kind == "index":
        await client.indices.put_index_template(name=name, body=body)
    else:
        await client.ilm.put_lifecycle(name=name, policy=body)
    report.changed.append(name)


@translated
async def run_setup(client: AsyncElasticsearch, settings: Settings) -> SetupReport:
    """Install what changed; create the system indices that are missing."""
    names = IndexNames(settings.index_prefix)
    report = SetupReport(ilm=await has_ilm(client))
    components, index_templates = render_templates(settings, report.ilm)
    for name, body in components.items():
        await _install(client, "component", name, body, report)
    if report.ilm:
        for stem, raw in load_json_files(settings.policies_dir).items():
            policy = _with_checksum(_render(raw, settings.index_prefix))
            await _install(client, "policy", names.resource(stem), policy, report)
    for name, body in index_templates.items():
        await _install(client, "index", name, body, report)
    for index in names.system_indices():
        try:
            await client.indices.create(index=index)
            report.created_indices.append(index)
        except ApiError as e:
            if e.error != "resource_already_exists_exception":
                raise
            await _follow_settings(client, index, index_templates)
            await _follow_mappings(client, index, index_templates)
    await _add_new_entry_fields(client, names, components)
    return report


async def _add_new_entry_fields(
    client: AsyncElasticsearch, names: IndexNames, components: dict[str, dict[str, Any]]
) -> None:
    """Give existing entry indices the fields the common template gained since they were made
    (their mappings are strict: a new field would be refused). Adding a field is the only change
    a mapping allows, and the only kind the templates make."""
    common = components[names.resource("entries-common")]
    properties = common["template"]["mappings"]["properties"]
    await client.options(ignore_status=404).indices.put_mapping(
        index=names.entries_alias, properties=properties, allow_no_indices=True
    )


async def _follow_mappings(
    client: AsyncElasticsearch, index: str, index_templates: dict[str, dict[str, Any]]
) -> None:
    """Give an existing system index the fields its template gained since it was made (a strict
    mapping refuses a new field; adding one is the only change a mapping allows)."""
    for body in index_templates.values():
        if index in body.get("index_patterns", ()):
            properties = body["template"].get("mappings", {}).get("properties")
            if properties:
                await client.indices.put_mapping(index=index, properties=properties)
            return


FOLLOWED_SETTINGS = (
    "refresh_interval",
    "merge.policy.segments_per_tier",
    "merge.policy.max_merge_at_once",
    "merge.policy.floor_segment",
)
"""The dynamic index settings an existing system index takes from its template at setup."""


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"merge": {"policy": {"x": 1}}}`` as ``{"merge.policy.x": "1"}``."""
    flat: dict[str, str] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


async def _follow_settings(
    client: AsyncElasticsearch, index: str, index_templates: dict[str, dict[str, Any]]
) -> None:
    """Give an existing system index the dynamic settings its template now names
    (:data:`FOLLOWED_SETTINGS`: how often it refreshes and merges); its mappings stay as they
    were created."""
    for body in index_templates.values():
        if index in body.get("index_patterns", ()):
            named = _flat(body["template"]["settings"]["index"])
            wanted = {k: v for k, v in named.items() if k in FOLLOWED_SETTINGS}
            if not wanted:
                return
            current = await client.indices.get_settings(index=index, flat_settings=True)
            # a setting the index does not set itself is left out of the answer
            have = current.get(index, {}).get("settings", {})
            changed = {k: v for k, v in wanted.items() if have.get(f"index.{k}") != v}
            if changed:
                await client.indices.put_settings(index=index, settings=changed)
            return


@translated
async def ensure_setup(es: AsyncElasticsearch, settings: Settings) -> SetupReport | None:
    """Run setup when the service's own indices are missing (a new cluster or prefix)."""
    names = IndexNames(settings.index_prefix)
    if await es.indices.exists(index=",".join(names.system_indices())):
        return None
    return await run_setup(es, settings)
