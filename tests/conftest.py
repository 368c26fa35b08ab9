"""One real engine per test session, one index prefix per session, cleanup of our own resources.

The engine is the local node of ``service.local_engine.node`` in a throwaway directory, or the
cluster at ``AUDITLOG_TEST_ES_URL`` when set (e.g. the docker-compose one). Nothing here mocks the
engine: when it cannot start, every test that needs it errors.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.local_engine.node import EngineInstance
from tests.helpers import delete_prefixed, make_settings, wait_ready


@pytest.fixture(scope="session")
def engine_dir() -> Iterator[Path | None]:
    if os.environ.get("AUDITLOG_TEST_ES_URL"):
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="auditlog-test-engine-"))
    instance = EngineInstance(directory)
    try:
        instance.start()
        yield directory
    finally:
        instance.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def engine_url(engine_dir: Path | None) -> str:
    if engine_dir is None:
        return os.environ["AUDITLOG_TEST_ES_URL"]
    url = EngineInstance(engine_dir).url()
    assert url is not None
    return url


@pytest.fixture(scope="session")
def es(engine_url: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(engine_url, request_timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def prefix(es: Elasticsearch) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    delete_prefixed(es, name)


@pytest.fixture(scope="session")
def settings(engine_url: str, prefix: str) -> Settings:
    return make_settings(engine_url, prefix)


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client
