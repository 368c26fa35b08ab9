"""The ``accounts``, ``keys``, ``setup``, ``retention`` and ``import`` commands against the real
engine and service, and the help of every command: run in this process through the console
script's ``main`` (the same parsing, exit codes and output, without an interpreter per call), and
as a process of its own (once on a terminal)."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
import tomllib
import uuid
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.cli import build_parser, main
from service.cli.progress import ProgressLine
from service.config import Settings
from tests.helpers import ADMIN, delete_prefixed, entry, keys_for_tests


def _env(engine_url: str, prefix: str) -> dict[str, str]:
    return {"AUDITLOG_ES_URL": engine_url, "AUDITLOG_INDEX_PREFIX": prefix,
            "AUDITLOG_KEYS_DIR": str(keys_for_tests())}  # fmt: skip


def _cli(
    engine_url: str, prefix: str, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``auditlog ARGS`` (``stdin`` on its standard input, ``env`` added to its environment): its
    exit code, standard output and standard error (neither a terminal)."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, {**_env(engine_url, prefix), **(env or {})}), \
            mock.patch.object(sys, "stdin", io.StringIO(stdin)), redirect_stdout(out), \
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


@pytest.mark.parametrize(
    "args",
    [("verify", "--account", ""), ("verify", "--account", "Not Valid"),
     ("verify", "--account", "", "--heads", "missing.ndjson"), ("keys", "revoke", ""),
     ("keys", "revoke", "alk_"), ("keys", "revoke", "has space"),
     ("export", "--account", ""), ("keys", "list", "--account", ""),
     ("keys", "create", "--account", "", "--scopes", "read"),
     ("accounts", "update", "", "--name", "x")],
)  # fmt: skip
def test_an_empty_or_malformed_account_or_key_id_is_a_usage_error(
    settings: Settings, args: tuple[str, ...]
) -> None:
    assert " id '" in _fails(settings, 2, *args)


@pytest.mark.parametrize("directory", ["", "  "])
def test_init_keys_into_an_empty_directory_name_is_a_usage_error(
    settings: Settings, directory: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty path is the working directory: the keys would land wherever the command ran."""
    monkeypatch.chdir(tmp_path)
    assert "keys directory is empty" in _fails(settings, 2, "integrity", "init-keys", directory)
    assert list(tmp_path.iterdir()) == []


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


# --- help, version --------------------------------------------------------------------------


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the parser: (), ("accounts",), ("accounts", "create"), ..."""
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, (*path, name))
    return found


COMMANDS = _commands(build_parser())
MARKUP = re.compile(r"`|:(func|class|mod|meth|attr|data|exc|ref|obj):|\.\. \w+::")
"""reStructuredText (and Markdown) markup: backticks, roles, directives."""


def test_the_help_walks_every_command() -> None:
    assert len(COMMANDS) >= 20
    assert {("export",), ("keys", "revoke"), ("accounts", "create"), ("import",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "auditlog")
def test_every_help_is_plain_text_and_ends_with_examples(path: tuple[str, ...]) -> None:
    done = _cli("http://127.0.0.1:9", "unused", *path, "--help")
    assert done.returncode == 0, done.stderr
    assert MARKUP.search(done.stdout) is None, MARKUP.search(done.stdout)
    head, marker, tail = done.stdout.rpartition("\nexamples:\n")
    assert marker and head.strip()
    examples = tail.rstrip("\n").split("\n")
    assert examples and all(line.startswith("  ") for line in examples)
    command = " ".join(("auditlog", *path))
    assert any(line.strip().startswith(command) for line in examples)


def test_version_prints_the_package_version() -> None:
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    done = _cli("http://127.0.0.1:9", "unused", "--version")
    assert done.returncode == 0
    assert done.stdout == f"auditlog {pyproject['project']['version']}\n"


# --- revoking a key given whole on standard input ---------------------------------------------


def test_revoke_reads_a_whole_key_from_stdin_and_refuses_one_as_an_argument(
    settings: Settings,
) -> None:
    account = f"cli-{uuid.uuid4().hex[:8]}"
    _ok(settings, "accounts", "create", account)
    first, second = (_ok(settings, "keys", "create", "--account", account, "--scopes", "read")
                     for _ in range(2))  # fmt: skip
    secret = first["key"].split("_", 2)[2]
    for whole in (first["key"], first["key"].removeprefix("alk_")):
        refused = _fails(settings, 2, "keys", "revoke", whole)
        assert "standard input" in refused and secret not in refused

    def revoked() -> set[str]:
        listed = _ok(settings, "keys", "list", "--account", account)["keys"]
        return {k["id"] for k in listed if k["revoked_at"]}

    assert revoked() == set()
    url, prefix = str(settings.es_url), settings.index_prefix
    done = _cli(url, prefix, "keys", "revoke", "-", stdin=f"{first['key']}\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == first["id"] and secret not in done.stdout
    assert revoked() == {first["id"]}
    done = _cli(url, prefix, "keys", "revoke", "--stdin", stdin=second["key"])
    assert done.returncode == 0, done.stderr
    assert revoked() == {first["id"], second["id"]}
    garbled = _cli(url, prefix, "keys", "revoke", "--stdin", stdin=first["id"])
    assert garbled.returncode == 2 and "does not hold a whole key" in garbled.stderr
    both = _cli(url, prefix, "keys", "revoke", first["id"], "--stdin", stdin=first["key"])
    assert both.returncode == 2 and "not both" in both.stderr
    by_prefixed_id = _cli(url, prefix, "keys", "revoke", f"alk_{first['id']}")
    assert by_prefixed_id.returncode == 0, by_prefixed_id.stderr


# --- import progress --------------------------------------------------------------------------

PROGRESS = re.compile(
    r"(\d+)% of [\d.]+ k?B · [\d,]+ entries/s · ETA (\d+:\d\d|--) · lines (\d+) · created \d+"
    r" · duplicates \d+ · rejected \d+ · failed \d+"
)


def test_import_progress_is_plain_lines_by_tenths_when_not_a_terminal(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    account = f"cli-{uuid.uuid4().hex[:8]}"
    _ok(settings, "accounts", "create", account)
    path = tmp_path / "fifty.ndjson"
    path.write_text("".join(json.dumps(entry()) + "\n" for _ in range(50)))
    done = _cli(str(settings.es_url), settings.index_prefix, "import", str(path),
                "--account", account, env={"AUDITLOG_BULK_BATCH_SIZE": "10"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    lines = done.stderr.splitlines()
    progress = [PROGRESS.fullmatch(line) for line in lines[:-1]]
    assert all(progress), lines  # a line per chunk but the last: each another fifth of the file
    tenths = [(int(m[1]), int(m[3])) for m in progress if m]
    assert tenths == [(20, 10), (40, 20), (60, 30), (80, 40)]
    assert re.fullmatch(
        r"100% of [\d.]+ kB · 50 entries in \d+:\d\d \([\d,]+ entries/s\) · lines 50 · "
        r"created 50 · duplicates 0 · rejected 0 · failed 0",
        lines[-1],
    ), lines[-1]
    assert json.loads(done.stdout)["created"] == 50


def test_import_progress_is_redrawn_in_place_on_a_terminal(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    account = f"cli-{uuid.uuid4().hex[:8]}"
    _ok(settings, "accounts", "create", account)
    path = tmp_path / "three.ndjson"
    path.write_text("".join(json.dumps(entry()) + "\n" for _ in range(3)))
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))  # 200 columns
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(_env(str(settings.es_url), settings.index_prefix))
    command = [sys.executable, "-m", "service.cli", "import", str(path), "--account", account]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=follower, env=env) as proc:
        os.close(follower)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
            while chunk := os.read(leader, 4096):
                shown += chunk
        stdout = proc.stdout.read() if proc.stdout else b""
    os.close(leader)
    assert proc.returncode == 0, shown
    text = shown.decode()
    assert text.startswith("\r") and "\x1b[K" in text and text.endswith("\n")
    parts = (part.strip("\r\n").removesuffix("\x1b[K") for part in text.split("\r"))
    drawn = [part for part in parts if part]  # the terminal ends a line with \r\n
    assert PROGRESS.fullmatch(drawn[0]) and drawn[0].startswith("100% of")
    assert "3 entries in" in drawn[-1] and "lines 3 · created 3" in drawn[-1]
    assert json.loads(stdout)["created"] == 3


def test_a_progress_line_on_a_terminal_is_redrawn_at_most_ten_times_a_second() -> None:
    now = [0.0]
    stream = io.StringIO()
    line = ProgressLine(stream, terminal=True, clock=lambda: now[0])
    for at, text in ((0.0, "one"), (0.05, "two"), (0.15, "three")):
        now[0] = at
        line.update(0.5, text)
    line.finish("done")
    assert stream.getvalue() == "\rone\x1b[K\rthree\x1b[K\rdone\x1b[K\n"


def test_import_progress_of_a_gzip_csv_counts_its_compressed_bytes(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    account = f"cli-{uuid.uuid4().hex[:8]}"
    _ok(settings, "accounts", "create", account)
    rows = "".join(f"e{n},2026-11-20T10:15:00.000Z,webhook,error,bot,x.y,m{n}\n" for n in range(25))
    path = tmp_path / "entries.csv.gz"
    path.write_bytes(
        gzip.compress(f"id,timestamp_utc,category,type,actor_id,action,message\n{rows}".encode())
    )
    done = _cli(str(settings.es_url), settings.index_prefix, "import", str(path),
                "--account", account, env={"AUDITLOG_BULK_BATCH_SIZE": "10"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    size = path.stat().st_size  # compressed; the last chunk of 5 comes once the CSV reader
    # has closed the file (its end reached)
    assert done.stderr.splitlines()[-1].startswith(f"100% of {size} B · 25 entries in ")
    assert json.loads(done.stdout)["created"] == 25, done.stdout
