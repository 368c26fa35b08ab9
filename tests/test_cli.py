"""The ``accounts``, ``keys``, ``setup`` and ``retention`` commands against the real engine and
service: run in this process through the console script's ``main`` (the same parsing, exit codes
and output, without an interpreter per call), and once as a process of its own."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import redirect_stderr, redirect_stdout
from typing import Any
from unittest import mock

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.cli import main
from service.config import Settings
from tests.helpers import ADMIN, delete_prefixed, entry, keys_for_tests


def _env(engine_url: str, prefix: str) -> dict[str, str]:
    return {"AUDITLOG_ES_URL": engine_url, "AUDITLOG_INDEX_PREFIX": prefix,
            "AUDITLOG_KEYS_DIR": str(keys_for_tests())}  # fmt: skip


def _cli(engine_url: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``auditlog ARGS``: its exit code, standard output and standard error."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, _env(engine_url, prefix)), redirect_stdout(out), \
            redirect_stderr(err):  # fmt: skip
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(["auditlog", *args], code, out.getvalue(), err.getvalue())


def test_the_command_runs_as_a_process_of_its_own(settings: Settings) -> None:
    env = {**os.environ, **_env(str(settings.es_url), settings.index_prefix)}
    done = subprocess.run([sys.executable, "-m", "service.cli", "accounts", "list"],
                          capture_output=True, text=True, check=False, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout)["accounts"], list)
    usage = subprocess.run([sys.executable, "-m", "service.cli", "accounts", "nonsense"],
                           capture_output=True, text=True, check=False, env=env)  # fmt: skip
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def _ok(settings: Settings, *args: str) -> Any:
    done = _cli(str(settings.es_url), settings.index_prefix, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _fails(settings: Settings, code: int, *args: str) -> str:
    done = _cli(str(settings.es_url), settings.index_prefix, *args)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: ") or code == 2
    return done.stderr


def test_accounts_create_list_update_and_validation(settings: Settings) -> None:
    account = f"cli-{uuid.uuid4().hex[:8]}"
    created = _ok(settings, "accounts", "create", account, "--name", "Cli Co",
                  "--timezone", "Europe/Paris")  # fmt: skip
    assert created == {"id": account, "name": "Cli Co", "timezone": "Europe/Paris",
                       "view_audit": False}  # fmt: skip
    listed = _ok(settings, "accounts", "list")["accounts"]
    assert created in listed
    updated = _ok(settings, "accounts", "update", account, "--timezone", "America/New_York")
    assert updated == {"id": account, "name": "Cli Co", "timezone": "America/New_York",
                       "view_audit": False}  # fmt: skip
    assert "exists" in _fails(settings, 2, "accounts", "create", account)
    assert "timezone" in _fails(settings, 2, "accounts", "create", "x1", "--timezone", "Mars/Base")
    assert "account id" in _fails(settings, 2, "accounts", "create", "Not_Valid!")
    assert "nothing to change" in _fails(settings, 2, "accounts", "update", account)
    assert "no account" in _fails(settings, 2, "accounts", "update", "no-such-acct", "--name", "x")
    assert not any(a["id"] == "x1" for a in _ok(settings, "accounts", "list")["accounts"])


def test_a_cli_key_works_over_http_until_revoked_through_the_cli(
    client: TestClient, settings: Settings
) -> None:
    account = f"cli-{uuid.uuid4().hex[:8]}"
    _ok(settings, "accounts", "create", account)
    key = _ok(settings, "keys", "create", "--account", account, "--scopes", "ingest,read",
              "--name", "from the cli")  # fmt: skip
    assert key["account_id"] == account and key["scopes"] == ["ingest", "read"]
    assert key["key"].startswith(f"alk_{key['id']}_")
    headers = {"Authorization": f"Bearer {key['key']}"}
    sent = client.post("/v1/entries", json=entry(), headers=headers)
    assert sent.status_code == 200 and sent.json()["created"] == 1
    listed = _ok(settings, "keys", "list", "--account", account)["keys"]
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]
    assert "secret" not in json.dumps(listed)
    revoked = _ok(settings, "keys", "revoke", key["id"])
    assert revoked["id"] == key["id"] and revoked["revoked_at"]
    time.sleep(settings.key_cache_s + 0.5)  # another process revoked it: the cache's bound
    assert client.post("/v1/entries", json=entry(), headers=headers).status_code == 401
    audit = client.get(
        "/v1/entries", params={"account_id": account, "category": "audit", "range": "all"},
        headers=ADMIN,
    )  # fmt: skip
    assert audit.status_code == 200, audit.text  # the CLI's actions are in the account's log
    actions = {e["action"] for e in audit.json()["entries"]}
    assert {"account.created", "keys.created", "keys.revoked"} <= actions


def test_key_validation_like_the_api(settings: Settings) -> None:
    account = f"cli-{uuid.uuid4().hex[:8]}"
    _ok(settings, "accounts", "create", account)
    assert "scope 'admin'" in _fails(settings, 2, "keys", "create", "--account", account,
                                     "--scopes", "ingest,admin")  # fmt: skip
    assert "scopes" in _fails(settings, 2, "keys", "create", "--platform", "--scopes", ",")
    assert "no account" in _fails(settings, 2, "keys", "create", "--account", "no-such-acct",
                                  "--scopes", "read")  # fmt: skip
    _fails(settings, 2, "keys", "create", "--scopes", "read")  # neither --account nor --platform
    platform = _ok(settings, "keys", "create", "--platform", "--scopes", "admin,read")
    assert platform["account_id"] is None and platform["scopes"] == ["admin", "read"]
    assert "no key" in _fails(settings, 2, "keys", "revoke", "0000000000000000")


@pytest.mark.slow
def test_the_cli_sets_up_a_fresh_prefix_first(engine_url: str, es: Elasticsearch) -> None:
    prefix = f"c{uuid.uuid4().hex[:8]}"
    try:
        done = _cli(engine_url, prefix, "accounts", "list")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"accounts": []}
        assert "setup: installed" in done.stderr
        assert es.indices.exists(index=f"{prefix}-accounts")
        again = _cli(engine_url, prefix, "accounts", "list")
        assert again.returncode == 0 and "setup" not in again.stderr
    finally:
        delete_prefixed(es, prefix)


def test_an_unreachable_engine_is_a_clear_error(settings: Settings) -> None:
    done = _cli("http://127.0.0.1:9", settings.index_prefix, "accounts", "list")
    assert done.returncode == 1
    assert done.stderr.startswith("error: the engine") and "Traceback" not in done.stderr


@pytest.mark.slow
def test_retention_run_deletes_expired_days_and_records_them(
    engine_url: str, es: Elasticsearch
) -> None:
    from datetime import UTC, datetime, timedelta

    prefix = f"c{uuid.uuid4().hex[:8]}"
    try:
        assert _cli(engine_url, prefix, "setup").returncode == 0
        day = datetime.now(UTC) - timedelta(days=45)
        index = f"{prefix}-integration-{day:%Y.%m.%d}"
        doc = {**entry(category="integration", metadata={}), "account_id": "cli-ret",
               "timestamp": day.strftime("%Y-%m-%dT%H:%M:%S.000Z")}  # fmt: skip
        es.index(index=index, id="cli-ret/x", document=doc, refresh=True)
        done = _cli(engine_url, prefix, "retention", "run")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert [d["index"] for d in report["deleted"]] == [index]
        assert not es.indices.exists(index=index)
        es.indices.refresh(index=f"{prefix}-*")
        audit = es.search(
            index=f"{prefix}-entries", query={"term": {"action": "retention.deleted"}}
        )
        sources = [h["_source"] for h in audit["hits"]["hits"]]
        assert [(s["account_id"], s["metadata"]["target_name"]) for s in sources] == [
            ("cli-ret", index)
        ]
    finally:
        delete_prefixed(es, prefix)


def test_fix_timezones_gives_stored_refused_zones_the_zone_they_mean(
    settings: Settings, client: TestClient, es: Elasticsearch
) -> None:
    """Accounts stored before zones were checked against the engine: their views fall back to
    the zone meant, and ``accounts fix-timezones`` stores it, recorded in their logs."""
    refused = {f"tz-{uuid.uuid4().hex[:8]}": zone for zone in ("right/Europe/Paris", "EST")}
    for account_id, zone in refused.items():
        es.index(index=f"{settings.index_prefix}-accounts", id=account_id, refresh=True,
                 document={"id": account_id, "name": account_id, "timezone": zone})  # fmt: skip
    some = next(iter(refused))
    made = {"account_id": some, "scopes": ["read"], "name": "t"}
    key = client.post("/v1/admin/keys", headers=ADMIN, json=made).json()["key"]
    view = client.get("/v1/histogram", headers={"Authorization": f"Bearer {key}"})
    assert view.status_code == 200 and view.json()["tz"] == "Europe/Paris"

    fixed = {f["id"]: f for f in _ok(settings, "accounts", "fix-timezones")["fixed"]}

    assert fixed[some]["to"] == "Europe/Paris"
    assert {fixed[a]["to"] for a in refused} == {"Europe/Paris", "Etc/GMT+5"}
    stored = {a: es.get(index=f"{settings.index_prefix}-accounts", id=a)["_source"]["timezone"]
              for a in refused}  # fmt: skip
    assert stored == {a: fixed[a]["to"] for a in refused}
    assert _ok(settings, "accounts", "fix-timezones") == {"fixed": []}
