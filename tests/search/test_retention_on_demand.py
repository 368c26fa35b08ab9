"""``auditlog retention run`` while a service instance holds the housekeeping lease: the command
asks the holder, which runs retention and answers with its report."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from unittest import mock

from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.cli import main
from service.config import Settings
from service.search.indices import IndexNames
from tests.helpers import delete_prefixed, entry, keys_for_tests


def _retention_run(settings: Settings) -> tuple[int, str, str]:
    env = {"AUDITLOG_ES_URL": str(settings.es_url), "AUDITLOG_INDEX_PREFIX": settings.index_prefix,
           "AUDITLOG_KEYS_DIR": str(keys_for_tests())}  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env), redirect_stdout(out), redirect_stderr(err):
        code = main(["retention", "run"])
    return code, out.getvalue(), err.getvalue()


def _holder(es: Elasticsearch, names: IndexNames) -> str:
    """The housekeeping lease's holder (the service takes it once set up)."""
    deadline = time.monotonic() + 30
    while not (
        lease := es.options(ignore_status=404).get(index=names.state, id="lease:housekeeping")
    ).get("found"):
        assert time.monotonic() < deadline, "the service never took the housekeeping lease"
        time.sleep(0.2)
    return str(lease["_source"]["holder"])


def test_retention_run_is_done_by_the_instance_holding_the_lease(
    settings: Settings, client: TestClient, es: Elasticsearch
) -> None:
    holder = _holder(es, IndexNames(settings.index_prefix))
    day = datetime.now(UTC) - timedelta(days=45)
    index = f"{settings.index_prefix}-integration-{day:%Y.%m.%d}"
    doc = {**entry(category="integration", metadata={}), "account_id": "on-demand",
           "timestamp": day.strftime("%Y-%m-%dT%H:%M:%S.000Z")}  # fmt: skip
    es.index(index=index, id="on-demand/x", document=doc, refresh=True)

    code, out, err = _retention_run(settings)

    assert code == 0, err
    assert [d["index"] for d in json.loads(out)["deleted"]] == [index]
    assert not es.indices.exists(index=index)
    # the service ran it: the lease never changed hands
    assert _holder(es, IndexNames(settings.index_prefix)) == holder
    code, out, err = _retention_run(settings)  # asked again: a run of its own, nothing left
    assert code == 0 and json.loads(out)["deleted"] == [], err


def _setup_prefix(settings: Settings, es: Elasticsearch) -> tuple[str, dict[str, str]]:
    """A deployment of its own (no service runs it) whose housekeeping lease ``holder`` holds."""
    prefix = f"r{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "AUDITLOG_ES_URL": str(settings.es_url), "AUDITLOG_INDEX_PREFIX": prefix,
           "AUDITLOG_KEYS_DIR": str(keys_for_tests()), "AUDITLOG_LEASE_TTL_S": "2"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "service.cli", "setup"], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    es.index(index=IndexNames(prefix).state, id="lease:housekeeping", refresh=True,
             document={"kind": "lease", "name": "housekeeping", "holder": "elsewhere",
                       "token": 1, "expires_at": expires})  # fmt: skip
    return prefix, env


def test_a_holder_that_does_not_take_requests_is_said_at_once(
    settings: Settings, es: Elasticsearch
) -> None:
    """An instance of an earlier version holds the lease: the command says so, without waiting
    for an answer that never comes."""
    prefix, env = _setup_prefix(settings, es)
    try:
        done = subprocess.run([sys.executable, "-m", "service.cli", "retention", "run"], env=env,
                              capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "(elsewhere) runs an earlier version" in done.stderr
    finally:
        delete_prefixed(es, prefix)


def test_a_run_the_holder_could_not_do_is_reported_with_its_reason(
    settings: Settings, es: Elasticsearch
) -> None:
    prefix, env = _setup_prefix(settings, es)
    state = IndexNames(prefix).state
    es.index(index=state, id="serving:retention", refresh=True,
             document={"kind": "serving", "holder": "elsewhere"})  # fmt: skip
    try:
        command = subprocess.Popen([sys.executable, "-m", "service.cli", "retention", "run"],
                                   env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while not (asked := es.options(ignore_status=404).get(index=state, id="request:retention"))[
            "found"
        ]:
            assert time.monotonic() < deadline and command.poll() is None, "never asked"
            time.sleep(0.2)
        answer = {
            "kind": "answer",
            "work": "retention",
            "answers": asked["_seq_no"],
            "status": "failed",
            "result": {"error": "the engine refused: disk full"},
        }
        es.index(index=state, id="answer:retention", document=answer)  # as the holder answers
        _, stderr = command.communicate(timeout=60)
        assert command.returncode == 1
        assert "the run failed: the engine refused: disk full" in stderr
    finally:
        delete_prefixed(es, prefix)
