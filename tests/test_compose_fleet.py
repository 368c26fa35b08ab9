"""The ``fleet`` profile of docker-compose.yml, checked as YAML: no Docker is needed.

There is no Docker engine where the suite usually runs, so nothing here starts a container: the
file is parsed with PyYAML and its structure asserted. A plain ``docker compose up`` keeps the
single-node pair, unprofiled, and needs no variable it did not need before (Compose interpolates
every service, profile or not). The profile's three Elasticsearch nodes form one cluster (names,
seed hosts, initial masters), keep security on and use TLS with the certificates its one-shot
setup service makes for exactly those nodes (``deploy/fleet/instances.yml``) in a shared volume.
Its two service instances run ``auditlog serve --workers`` on one index prefix with replicas,
reach the nodes over HTTPS with the CA from that volume, wait for a healthy cluster and publish
distinct ports. Every ``depends_on`` target and named volume resolves. Where the docker CLI
exists, ``docker compose --profile fleet config`` validates the rendered file as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers import has_compose

ROOT = Path(__file__).resolve().parent.parent
PROFILE = "fleet"
DEFAULT_SERVICES = {"elasticsearch", "auditlog"}
ES_CONFIG_DIR = PurePosixPath("/usr/share/elasticsearch/config")
REQUIRED_FROM_USER = ("ELASTIC_PASSWORD", "AUDITLOG_ADMIN_KEY")
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")
SSL_FILES = re.compile(
    r"xpack\.security\.(transport|http)\.ssl\.(key|certificate|certificate_authorities)"
)


@cache
def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _fleet() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _services().items() if PROFILE in s.get("profiles", [])}


def _env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, dict):
        return {k: str(v) for k, v in environment.items()}
    return dict(item.split("=", 1) for item in environment)


def _engine_image() -> str:
    return _services()["elasticsearch"]["image"]


def _nodes() -> dict[str, dict[str, Any]]:
    return {
        n: s
        for n, s in _fleet().items()
        if s.get("image") == _engine_image() and "node.name" in _env(s)
    }


def _setup() -> tuple[str, dict[str, Any]]:
    setups = [
        (n, s)
        for n, s in _fleet().items()
        if s.get("image") == _engine_image() and "node.name" not in _env(s)
    ]
    assert len(setups) == 1, setups
    return setups[0]


def _instances() -> dict[str, dict[str, Any]]:
    """The service instances (the image's one-shot ``fleet-keys`` creates their keys)."""
    return {n: s for n, s in _fleet().items() if "build" in s and n != "fleet-keys"}


def _mounts(service: dict[str, Any]) -> list[tuple[str, PurePosixPath]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts.append((source, PurePosixPath(target)))
    return mounts


def _is_named(source: str) -> bool:
    return not source.startswith((".", "/", "~"))


def _volume_at(service: dict[str, Any], path: PurePosixPath) -> tuple[str, PurePosixPath]:
    """The mount holding ``path``, and ``path`` relative to the mount's target."""
    for source, target in _mounts(service):
        if path.is_relative_to(target):
            return source, path.relative_to(target)
    raise AssertionError(f"{path} is in no mounted volume")


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {n: d.get("condition", "service_started") for n, d in depends.items()}


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _variables(services: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Every ``${NAME...}`` Compose interpolates in ``services``: (name, modifier)."""
    return [m for s in services.values() for t in _strings(s) for m in VARIABLE.findall(t)]


def _host_port(spec: str) -> str:
    return spec.split(":")[-2]


def _setup_script() -> str:
    _, setup = _setup()
    command = setup["command"]
    script = PurePosixPath(command[-1])
    source, relative = _volume_at(setup, script)
    assert not _is_named(source), "the setup script comes from the repository"
    return (ROOT / source / relative).read_text()


def _certificate_instances() -> list[dict[str, Any]]:
    _, setup = _setup()
    match = re.search(r"elasticsearch-certutil cert .*?--in (\S+)", _setup_script())
    assert match, "elasticsearch-certutil cert reads no instances file"
    source, relative = _volume_at(setup, PurePosixPath(match[1]))
    loaded = yaml.safe_load((ROOT / source / relative).read_text())
    return loaded["instances"]


def test_default_services_are_the_single_node_pair_without_profiles() -> None:
    default = {n: s for n, s in _services().items() if "profiles" not in s}
    assert set(default) == DEFAULT_SERVICES
    assert _env(_services()["elasticsearch"])["discovery.type"] == "single-node"


def test_every_other_service_is_in_the_fleet_profile_only() -> None:
    for name, service in _services().items():
        if name not in DEFAULT_SERVICES:
            assert service.get("profiles") == [PROFILE], name


def test_default_services_depend_on_no_fleet_service() -> None:
    for name in DEFAULT_SERVICES:
        assert not set(_depends_on(_services()[name])) & set(_fleet()), name


def test_fleet_has_three_nodes_of_one_cluster_on_the_engine_image() -> None:
    nodes = _nodes()
    assert len(nodes) == 3
    assert {_env(s)["node.name"] for s in nodes.values()} == set(nodes)
    assert len({_env(s)["cluster.name"] for s in nodes.values()}) == 1
    assert all(s["image"].endswith(":9.5.4") for s in nodes.values())


def test_each_node_seeds_from_the_other_two() -> None:
    nodes = _nodes()
    for name, service in nodes.items():
        seeds = _env(service)["discovery.seed_hosts"].split(",")
        assert sorted(seeds) == sorted(set(nodes) - {name}), name


def test_nodes_bootstrap_with_the_same_three_initial_masters() -> None:
    masters = {_env(s)["cluster.initial_master_nodes"] for s in _nodes().values()}
    assert len(masters) == 1
    assert sorted(masters.pop().split(",")) == sorted(_nodes())


def test_nodes_keep_security_on_with_transport_tls() -> None:
    for name, service in _nodes().items():
        env = _env(service)
        assert env["xpack.security.enabled"] == "true", name
        assert env["xpack.security.transport.ssl.enabled"] == "true", name
        assert "discovery.type" not in env, name


def test_node_tls_files_are_its_own_in_the_mounted_certs_volume() -> None:
    volumes = set()
    for name, service in _nodes().items():
        env = _env(service)
        settings = {k: v for k, v in env.items() if SSL_FILES.fullmatch(k)}
        assert {k for k in settings if ".transport." in k} == {
            f"xpack.security.transport.ssl.{f}"
            for f in ("key", "certificate", "certificate_authorities")
        }, name
        for key, value in settings.items():
            source, relative = _volume_at(service, ES_CONFIG_DIR / value)
            volumes.add(source)
            if not key.endswith("certificate_authorities"):
                assert relative.parent == PurePosixPath(name), (name, key)
    assert len(volumes) == 1 and _is_named(volumes.pop())


def test_setup_writes_the_certs_volume_the_nodes_read() -> None:
    _, setup = _setup()
    node = next(iter(_nodes().values()))
    ca = ES_CONFIG_DIR / _env(node)["xpack.security.transport.ssl.certificate_authorities"]
    assert _volume_at(setup, ca) == _volume_at(node, ca)


def test_setup_makes_a_ca_and_certificates_with_certutil() -> None:
    script = _setup_script()
    assert re.search(r"elasticsearch-certutil ca\b", script)
    assert re.search(r"elasticsearch-certutil cert\b", script)


def test_setup_makes_certificates_for_exactly_the_three_nodes() -> None:
    instances = _certificate_instances()
    assert sorted(i["name"] for i in instances) == sorted(_nodes())
    for instance in instances:
        assert instance["name"] in instance["dns"], instance


def test_setup_is_healthy_only_once_every_node_certificate_exists() -> None:
    _, setup = _setup()
    check = " ".join(setup["healthcheck"]["test"])
    for name in _nodes():
        assert f"{name}/{name}.crt" in check, name


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
def test_setup_script_is_valid_bash() -> None:
    result = subprocess.run(
        ["bash", "-n"], input=_setup_script(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_nodes_wait_for_the_certificates_not_for_each_other() -> None:
    setup_name, _ = _setup()
    for name, service in _nodes().items():
        depends = _depends_on(service)
        assert depends.get(setup_name) == "service_healthy", name
        # A cluster of three needs two nodes to form: none may wait for another to be healthy.
        assert not any(depends.get(other) == "service_healthy" for other in _nodes()), name


def test_nodes_have_healthchecks() -> None:
    for name, service in _nodes().items():
        assert service["healthcheck"]["test"], name


def test_two_instances_run_auditlog_serve_with_workers() -> None:
    instances = _instances()
    assert sorted(instances) == ["auditlog-a", "auditlog-b"]
    for name, service in instances.items():
        command = service["command"]
        assert command[:2] == ["auditlog", "serve"], name
        workers = command[command.index("--workers") + 1]
        assert int(workers) >= 1, name


def test_instances_share_one_set_of_integrity_keys_made_once_before_them() -> None:
    keys = _fleet()["fleet-keys"]
    assert keys["command"][:3] == ["auditlog", "integrity", "init-keys"]
    made = PurePosixPath(keys["command"][3])
    for name, service in _instances().items():
        assert PurePosixPath(_env(service)["AUDITLOG_KEYS_DIR"]) == made, name
        assert ("fleet-keys", made) in _mounts(service), name
        condition = service["depends_on"]["fleet-keys"]["condition"]
        assert condition == "service_completed_successfully", name


def test_instances_share_the_index_prefix_of_the_single_node_service() -> None:
    prefixes = {_env(s).get("AUDITLOG_INDEX_PREFIX") for s in _instances().values()}
    assert prefixes == {_env(_services()["auditlog"]).get("AUDITLOG_INDEX_PREFIX")}


def test_instances_keep_a_replica_of_every_index() -> None:
    for name, service in _instances().items():
        assert int(_env(service)["AUDITLOG_INDEX_REPLICAS"]) >= 1, name


def test_instances_set_the_single_node_settings_plus_ca_and_replicas() -> None:
    single = {k for k in _env(_services()["auditlog"]) if k.startswith("AUDITLOG_")}
    expected = single | {"AUDITLOG_ES_CA_CERTS", "AUDITLOG_INDEX_REPLICAS"}
    for name, service in _instances().items():
        assert {k for k in _env(service) if k.startswith("AUDITLOG_")} == expected, name


def test_instances_reach_cluster_nodes_over_https_with_the_ca() -> None:
    nodes = _nodes()
    for name, service in _instances().items():
        env = _env(service)
        url = urlsplit(env["AUDITLOG_ES_URL"])
        assert url.hostname in nodes, name
        node = _env(nodes[url.hostname])
        tls = node.get("xpack.security.http.ssl.enabled") == "true"
        assert url.scheme == ("https" if tls else "http"), name
        node_ca = ES_CONFIG_DIR / node["xpack.security.http.ssl.certificate_authorities"]
        ca = PurePosixPath(env["AUDITLOG_ES_CA_CERTS"])
        assert _volume_at(service, ca) == _volume_at(nodes[url.hostname], node_ca), name


def test_instances_spread_over_distinct_nodes() -> None:
    hosts = [urlsplit(_env(s)["AUDITLOG_ES_URL"]).hostname for s in _instances().values()]
    assert len(set(hosts)) == len(hosts)


def test_instances_wait_for_every_node_to_be_healthy() -> None:
    for name, service in _instances().items():
        depends = _depends_on(service)
        for node in _nodes():
            assert depends.get(node) == "service_healthy", (name, node)


def test_instances_and_the_single_node_service_publish_distinct_ports() -> None:
    published = [
        _host_port(p) for n in [*_instances(), "auditlog"] for p in _services()[n]["ports"]
    ]
    assert len(published) == len(set(published)) == 3


def test_every_depends_on_target_exists() -> None:
    for name, service in _services().items():
        assert set(_depends_on(service)) <= set(_services()), name


def test_every_named_volume_is_declared() -> None:
    declared = set(_compose().get("volumes") or {})
    for name, service in _services().items():
        for source, _ in _mounts(service):
            if _is_named(source):
                assert source in declared, (name, source)


def test_fleet_requires_the_user_variables_with_a_message() -> None:
    found = [(n, m) for n, m in _variables(_fleet()) if n in REQUIRED_FROM_USER]
    assert {n for n, _ in found} == set(REQUIRED_FROM_USER)
    for name, modifier in found:
        assert modifier.startswith(":?") and len(modifier) > 2, name


def test_fleet_needs_no_variable_a_plain_up_does_not_require() -> None:
    default = {n: s for n, s in _services().items() if n in DEFAULT_SERVICES}
    required = {n for n, m in _variables(default) if m.startswith(":?")}
    assert {n for n, _ in _variables(_fleet())} <= required


@pytest.mark.skipif(not has_compose(), reason="no docker CLI with the compose plugin here")
def test_fleet_profile_renders_with_the_two_variables() -> None:
    compose = ["docker", "compose", "-f", str(ROOT / "docker-compose.yml")]
    result = subprocess.run(
        [*compose, "--profile", PROFILE, "config", "--quiet"],
        env={"ELASTIC_PASSWORD": "x", "AUDITLOG_ADMIN_KEY": "y", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
