"""``auditlog export`` against the real engine and service: the same rows as ``GET /v1/export``
with the same filters in every format, the API's messages for bad filters, an ``export.completed``
entry naming the command line, and a signed manifest the file verifies against."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import resource
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from openpyxl import load_workbook
from starlette.testclient import TestClient

from service.config import Settings
from tests.helpers import new_account, refresh
from tests.search.dataset import ingest, make_entries
from tests.test_cli import _cli, _env

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=10)
FILTERS = {"category": "webhook", "type": "error,warning", "from": START.isoformat(),
           "to": NOW.isoformat(), "tz": "UTC", "order": "asc"}  # fmt: skip
"""The API's parameters; the command takes each as the option of the same name."""
OPTIONS = [part for name, value in FILTERS.items() for part in (f"--{name}", value)]


@pytest.fixture(scope="module")
def data(client: TestClient, es: Elasticsearch, settings: Settings) -> tuple[str, dict[str, str]]:
    account, headers = new_account(client, timezone="America/New_York")
    entries = make_entries(11, 400, START, NOW - timedelta(minutes=5), ("webhook", "integration"))
    ingest(client, headers, entries)
    refresh(es, settings.index_prefix)
    return account, headers


def _export(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return _cli(str(settings.es_url), settings.index_prefix, "export", *args)


def _api(client: TestClient, headers: dict[str, str], fmt: str) -> bytes:
    resp = client.get("/v1/export", params={**FILTERS, "format": fmt}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.content


def _csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode(), newline="")))


def test_csv_equals_the_api_export_is_recorded_and_verifies(
    data: tuple[str, dict[str, str]],
    client: TestClient,
    es: Elasticsearch,
    settings: Settings,
    tmp_path: Path,
) -> None:
    account, headers = data
    path, manifest_file = tmp_path / "webhooks.csv", tmp_path / "webhooks.csv.manifest.json"
    done = _export(settings, "--account", account, *OPTIONS, "--output", str(path),
                   "--manifest", str(manifest_file))  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    rows, expected = _csv_rows(path.read_bytes()), _csv_rows(_api(client, headers, "csv"))
    assert len(expected) > 50 and rows == expected
    assert summary["rows"] == len(rows) - 1 and summary["file"] == str(path)
    assert summary["manifest"] == f"/v1/exports/{summary['export_id']}/manifest"
    assert summary["manifest_status"] == "signed"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, manifest_file.name]
    shown = done.stderr.splitlines()  # rows done, then maybe the wait for the rows' sealing
    progress = [line for line in shown if not line.startswith("signing the manifest once ")]
    assert progress[-1].startswith(f"rows {len(rows) - 1:,} of {len(rows) - 1:,} (100%) in ")
    assert all(re.fullmatch(r"rows [\d,]+ of [\d,]+ \(\d+%\)( · .*| in .*)", p) for p in progress)

    refresh(es, settings.index_prefix)
    params = {"category": "audit", "action": "export.completed", "range": "all", "size": 200}
    audit = client.get("/v1/entries", headers=headers, params=params)
    assert audit.status_code == 200, audit.text
    [recorded] = [e for e in audit.json()["entries"]
                  if e["metadata"]["export_id"] == summary["export_id"]]  # fmt: skip
    assert recorded["action"] == "export.completed"
    assert recorded["actor"] == {"type": "system", "id": "cli", "name": "auditlog CLI"}
    assert recorded["metadata"]["export_id"] == summary["export_id"]
    assert recorded["metadata"]["rows"] == len(rows) - 1 and recorded["metadata"]["format"] == "csv"
    assert "(command line)" in recorded["message"]

    manifest = json.loads(manifest_file.read_text())
    served = client.get(summary["manifest"], headers=headers)
    assert served.status_code == 200 and served.json() == manifest
    assert manifest["file_sha256"] == summary["file_sha256"] and manifest["rows"] == len(rows) - 1
    checked = _cli(str(settings.es_url), settings.index_prefix, "verify-export", str(path),
                   str(manifest_file))  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_ndjson_and_xlsx_equal_the_api_exports(
    data: tuple[str, dict[str, str]], client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    account, headers = data
    into = ("--output", str(tmp_path))  # a directory: the export's own name in it
    done = _export(settings, "--account", account, *OPTIONS, "--format", "ndjson", *into)
    assert done.returncode == 0, done.stderr
    path = Path(json.loads(done.stdout)["file"])
    assert path.parent == tmp_path and path.name.startswith(f"audit-log_{account}_")
    expected = _api(client, headers, "ndjson")
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        json.loads(line) for line in expected.decode().splitlines()
    ]

    xlsx = tmp_path / "webhooks.xlsx"
    done = _export(settings, "--account", account, *OPTIONS, "--format", "xlsx", "-o", str(xlsx))
    assert done.returncode == 0, done.stderr
    (tmp_path / "api.xlsx").write_bytes(_api(client, headers, "xlsx"))
    books = [load_workbook(p, read_only=True) for p in (xlsx, tmp_path / "api.xlsx")]
    assert books[0].sheetnames == books[1].sheetnames == ["Entries", "Export info"]
    got, want = ([list(r) for r in b["Entries"].iter_rows(values_only=True)] for b in books)
    assert len(want) > 50 and got == want


def test_export_to_stdout_in_a_process_of_its_own(
    data: tuple[str, dict[str, str]], client: TestClient, settings: Settings
) -> None:
    account, headers = data
    env = {**os.environ, **_env(str(settings.es_url), settings.index_prefix)}
    command = [sys.executable, "-m", "service.cli", "export", "--account", account, *OPTIONS,
               "--output", "-"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert _csv_rows(done.stdout) == _csv_rows(_api(client, headers, "csv"))
    summary = json.loads(done.stderr.decode()[done.stderr.decode().index("{") :])
    assert summary["file"] == "-" and summary["manifest_status"] == "signed"


@pytest.mark.parametrize(
    ("name", "value"),
    [("type", "fatal"), ("category", "weather"), ("range", "2w"), ("from", "yesterday"),
     ("to", "2026-13-45"), ("tz", "Mars/Base"), ("q", "after:soon"), ("order", "sideways"),
     ("format", "pdf")],
)  # fmt: skip
def test_a_bad_filter_gets_the_apis_message_and_leaves_no_file(
    data: tuple[str, dict[str, str]],
    client: TestClient,
    settings: Settings,
    tmp_path: Path,
    name: str,
    value: str,
) -> None:
    account, headers = data
    refused = client.get("/v1/export", params={name: value}, headers=headers)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    path = tmp_path / "out.csv"
    done = _export(settings, "--account", account, f"--{name}", value, "--output", str(path))
    assert done.returncode == 2
    assert done.stderr == f"error: {error['field']}: {error['message']}\n"
    assert error["field"] == name and list(tmp_path.iterdir()) == []


def test_an_unknown_account_or_directory_is_a_usage_error(
    data: tuple[str, dict[str, str]], settings: Settings, tmp_path: Path
) -> None:
    account, _ = data
    unknown = _export(settings, "--account", "no-such-account", "--output", str(tmp_path / "x"))
    assert unknown.returncode == 2 and "no account 'no-such-account'" in unknown.stderr
    nowhere = _export(settings, "--account", account, "--output", str(tmp_path / "a" / "b.csv"))
    assert nowhere.returncode == 2 and "no directory" in nowhere.stderr
    assert list(tmp_path.iterdir()) == []


def _limited_to(size: int) -> Callable[[], None]:
    """For a child process: files may grow to ``size`` bytes (a write beyond fails: EFBIG)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_a_failed_write_leaves_no_file_and_no_manifest(
    data: tuple[str, dict[str, str]], es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account, _ = data
    index = f"{settings.index_prefix}-export-manifests"

    def manifests() -> dict[str, dict[str, Any]]:
        refresh(es, settings.index_prefix)
        hits = es.search(index=index, size=100, query={"term": {"account_id": account}})
        return {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}

    earlier = set(manifests())  # other tests' exports of the account (some still signing)
    env = {**os.environ, **_env(str(settings.es_url), settings.index_prefix)}
    command = [sys.executable, "-m", "service.cli", "export", "--account", account, *OPTIONS,
               "--output", str(tmp_path / "cut.csv")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env,
                          preexec_fn=_limited_to(4096))  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "error: cannot write the export" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    new = [m for key, m in manifests().items() if key not in earlier]
    assert [(m["status"], m.get("reason")) for m in new] == [
        ("incomplete", "the export did not complete")]  # fmt: skip


def test_a_pipe_is_written_to_not_replaced(
    data: tuple[str, dict[str, str]], client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    account, headers = data
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()))
    reader.start()
    done = _export(settings, "--account", account, *OPTIONS, "--output", str(pipe))
    with contextlib.suppress(OSError):  # a reader still waiting (the command failed): its end
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
    reader.join()
    assert done.returncode == 0, done.stderr
    assert _csv_rows(received[0]) == _csv_rows(_api(client, headers, "csv"))
    assert stat.S_ISFIFO(pipe.stat().st_mode) and list(tmp_path.iterdir()) == [pipe]
