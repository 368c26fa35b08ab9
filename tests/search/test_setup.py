"""Templates, setup and the ILM path, against the real engine."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from service.config import Settings
from service.search.client import make_client
from service.search.indices import IndexNames
from service.search.setup import SetupReport, has_ilm, run_setup
from tests.helpers import delete_prefixed, make_settings, with_engine

KW, TEXT, DATE, IP = "keyword", "text", "date", "ip"
COMMON = {
    "id": KW, "account_id": KW, "timestamp": DATE, "category": KW, "type": KW,
    "actor.type": KW, "actor.id": KW, "actor.name": KW, "actor.email": KW,
    "action": KW, "message": TEXT, "search_text": TEXT,
}  # fmt: skip
METADATA = {
    "audit": {"target_type": KW, "target_id": KW, "target_name": KW, "ip": IP},
    "credits": {"credits_used": "double", "credits_balance": "double", "signal_name": KW,
                "post_urn": KW},
    "ai": {"agent_id": KW, "agent_name": KW, "run_id": KW, "status": KW, "duration_ms": "long",
           "model": KW, "tokens_in": "long", "tokens_out": "long", "credits_used": "double"},
    "webhook": {"webhook_id": KW, "url": KW, "event": KW, "status_code": "integer",
                "attempt": "integer", "duration_ms": "long", "error": KW},
    "signal": {"signal_id": KW, "signal_name": KW, "run_id": KW, "processed": "integer",
               "post_urn": KW, "contact_name": KW},
    "integration": {"provider": KW, "object": KW, "operation": KW, "record_id": KW,
                    "contact_name": KW, "status": KW},
    "api": {"method": KW, "path": KW, "status_code": "integer", "duration_ms": "long", "ip": IP,
            "api_key_id": KW},
}  # fmt: skip
SEARCHABLE = {"signal_name", "contact_name", "url", "target_name", "agent_name", "post_urn"}


def setup_with(settings: Settings) -> SetupReport:
    return with_engine(settings, lambda es: run_setup(es, settings))


@pytest.fixture
def own_prefix(es: Elasticsearch) -> Iterator[str]:
    name = f"s{uuid.uuid4().hex[:8]}"
    yield name
    delete_prefixed(es, name)


def _flatten(properties: dict[str, Any], head: str = "") -> dict[str, dict[str, Any]]:
    flat: dict[str, dict[str, Any]] = {}
    for name, spec in properties.items():
        if "properties" in spec:
            flat.update(_flatten(spec["properties"], f"{head}{name}."))
        else:
            flat[f"{head}{name}"] = spec
    return flat


@pytest.mark.parametrize("category", sorted(METADATA))
def test_simulated_index_has_the_expected_types(
    es: Elasticsearch, settings: Settings, client: Any, category: str
) -> None:
    suffix = "2026.11.26" if category == "integration" else "2026.11"
    index = f"{settings.index_prefix}-{category}-{suffix}"
    simulated = es.indices.simulate_index_template(name=index).body["template"]
    fields = _flatten(simulated["mappings"]["properties"])
    for name, expected in COMMON.items():
        assert fields[name]["type"] == expected, name
    for key, expected in METADATA[category].items():
        spec = fields[f"metadata.{key}"]
        assert spec["type"] == expected, key
        if key in SEARCHABLE:
            assert spec["copy_to"] == ["search_text"], key
    assert fields["actor.email"]["normalizer"] == "lowercase"
    assert simulated["mappings"]["dynamic"] == "strict"
    assert simulated["mappings"]["properties"]["metadata"]["dynamic"] == "false"
    assert f"{settings.index_prefix}-entries" in simulated["aliases"]


def test_setup_twice_changes_nothing_the_second_time(engine_url: str, own_prefix: str) -> None:
    settings = make_settings(engine_url, own_prefix)
    first = setup_with(settings)
    assert f"{own_prefix}-entries-common" in first.changed
    assert set(first.created_indices) == set(IndexNames(own_prefix).system_indices())
    second = setup_with(settings)
    assert second.changed == [] and second.created_indices == []
    assert f"{own_prefix}-entries-webhook" in second.unchanged


@pytest.mark.slow
def test_editing_a_template_file_upgrades_it(
    engine_url: str, own_prefix: str, tmp_path: Path, es: Elasticsearch
) -> None:
    templates = tmp_path / "index_templates"
    shutil.copytree(make_settings(engine_url, own_prefix).templates_dir, templates)
    settings = make_settings(engine_url, own_prefix, templates_dir=templates)
    setup_with(settings)
    path = templates / "entries-meta-webhook.json"
    body = json.loads(path.read_text())
    body["version"] = 2
    body["template"]["mappings"]["properties"]["metadata"]["properties"]["region"] = {
        "type": "keyword"
    }
    path.write_text(json.dumps(body))
    report = setup_with(settings)
    assert report.changed == [f"{own_prefix}-entries-meta-webhook"]
    installed = es.cluster.get_component_template(name=f"{own_prefix}-entries-meta-webhook")
    template = installed.body["component_templates"][0]["component_template"]
    assert template["version"] == 2
    props = template["template"]["mappings"]["properties"]["metadata"]["properties"]
    assert props["region"] == {"type": "keyword"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["entry-ids", "integrity"])
def test_the_id_registry_and_the_logs_are_never_refreshed_on_a_schedule_even_if_made_before(
    engine_url: str, own_prefix: str, es: Elasticsearch, name: str
) -> None:
    """The registry is read by id only; the logs are refreshed by the sealer once a round
    appended."""
    settings = make_settings(engine_url, own_prefix)
    index = f"{own_prefix}-{name}"
    setup_with(settings)
    assert _refresh_interval(es, index) == "-1"
    for before in ("1s", None):  # set to another interval; not set at all, as created before
        es.indices.put_settings(index=index, settings={"refresh_interval": before})
        assert _refresh_interval(es, index) == before
        setup_with(settings)
        assert _refresh_interval(es, index) == "-1"


@pytest.mark.slow
def test_the_seal_queue_and_the_logs_merge_as_their_templates_say_even_when_made_before(
    engine_url: str, own_prefix: str, es: Elasticsearch
) -> None:
    settings = make_settings(engine_url, own_prefix)
    names = IndexNames(own_prefix)
    setup_with(settings)
    wanted = {names.seal_queue: {"index.merge.policy.segments_per_tier": "100",
                                 "index.merge.policy.max_merge_at_once": "30",
                                 "index.merge.policy.floor_segment": "100kb"},
              names.integrity: {"index.merge.policy.segments_per_tier": "30",
                                "index.merge.policy.floor_segment": "100kb"}}  # fmt: skip
    for index, merge in wanted.items():
        assert _merge_policy(es, index) == merge
        es.indices.put_settings(index=index, settings=dict.fromkeys(merge))  # as made before
        assert _merge_policy(es, index) == {}
    setup_with(settings)
    for index, merge in wanted.items():
        assert _merge_policy(es, index) == merge


def _merge_policy(es: Elasticsearch, index: str) -> dict[str, str]:
    found = es.indices.get_settings(index=index, flat_settings=True)[index]["settings"]
    return {k: v for k, v in found.items() if k.startswith("index.merge.")}


def _refresh_interval(es: Elasticsearch, index: str) -> str | None:
    found = es.indices.get_settings(index=index, name="index.refresh_interval")
    return found.get(index, {}).get("settings", {}).get("index", {}).get("refresh_interval")


def test_ilm_path_installs_the_policy_and_links_the_integration_template(
    engine_url: str, own_prefix: str, es: Elasticsearch
) -> None:
    settings = make_settings(engine_url, own_prefix)

    async def probe() -> bool:
        client = make_client(settings, engine_url)
        try:
            return await has_ilm(client)
        finally:
            await client.close()

    if not asyncio.run(probe()):
        pytest.skip("this engine has no ILM (the local integ-test node); the sweeper applies")
    report = setup_with(settings)
    assert report.ilm is True
    policy = es.ilm.get_lifecycle(name=f"{own_prefix}-integration").body
    assert policy[f"{own_prefix}-integration"]["policy"]["phases"]["delete"]["min_age"] == "31d"
    simulated = es.indices.simulate_index_template(name=f"{own_prefix}-integration-2026.11.26")
    lifecycle = simulated.body["template"]["settings"]["index"]["lifecycle"]
    assert lifecycle == {"name": f"{own_prefix}-integration", "parse_origination_date": "true"}


def test_a_system_index_made_before_a_field_existed_gains_it(
    engine_url: str, own_prefix: str, es: Elasticsearch
) -> None:
    """An accounts index created by an earlier version (strict, without ``view_audit``) is given
    the field by setup, so accounts can be created and changed after the upgrade."""
    settings = make_settings(engine_url, own_prefix)
    accounts = f"{own_prefix}-accounts"
    old = {"dynamic": "strict", "properties": {k: {"type": "keyword"} for k in
           ("id", "name", "timezone")} | {"created_at": {"type": "date"}}}  # fmt: skip
    es.indices.create(index=accounts, mappings=old)
    setup_with(settings)
    mapping = es.indices.get_mapping(index=accounts)[accounts]["mappings"]["properties"]
    assert mapping["view_audit"] == {"type": "boolean"}
    es.index(index=accounts, id="a", document={"id": "a", "name": "A", "timezone": "UTC",
                                               "view_audit": True})  # fmt: skip
