"""``auditlog retention run`` while a service instance holds the housekeeping lease: the command
asks the holder, which runs retention and answers with its report."""

from __future__ import annotations

import io
import json
import os
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from unittest import mock

from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.cli import main
from service.config import Settings
from service.search.indices import IndexNames
from tests.helpers import entry, keys_for_tests


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
