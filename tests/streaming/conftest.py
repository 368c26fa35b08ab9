"""Fixtures of the streaming tests: a deployment's settings of a test's own, real syslog receivers
(:mod:`.syslog_receiver`), a webhook receiver (:mod:`.webhook_receiver`), and an OpenSearch node
as a customer's cluster.

Without ``rsyslogd`` (packages ``rsyslog`` and ``rsyslog-openssl``) the tests fail, saying how to
install it; they never skip. The OpenSearch node (the integ-test-zip of
:data:`service.local_engine.distributions.OPENSEARCH`, fetched from Maven Central on first use) is
started once per session by the first test that asks for it; when it cannot be fetched or
started, those tests error.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from service.config import Settings
from service.local_engine.distributions import OPENSEARCH
from service.local_engine.node import EngineInstance
from tests.helpers import delete_prefixed
from tests.streaming.deployment import streaming_settings
from tests.streaming.syslog_receiver import RSYSLOGD, Rsyslog, TlsFiles, make_tls_files
from tests.streaming.webhook_receiver import receiver as receiver  # the fixture, for every module

OSSL_DRIVER = "/usr/lib/*/rsyslog/lmnsd_ossl.so"
INSTALL = (
    "`make test` installs it when run as root; otherwise run "
    "`apt-get install -y rsyslog rsyslog-openssl` as root."
)


@pytest.fixture
def deployment(engine_url: str, es: Elasticsearch) -> Iterator[Settings]:
    """The settings of a streaming deployment of the test's own (its indices removed after)."""
    prefix = f"s{uuid.uuid4().hex[:8]}"
    yield streaming_settings(engine_url, prefix)
    delete_prefixed(es, prefix)


def _require_rsyslogd() -> None:
    if not Path(RSYSLOGD).exists():
        pytest.fail(f"rsyslogd is missing: the syslog tests need it. {INSTALL}", pytrace=False)
    if not glob.glob(OSSL_DRIVER):
        pytest.fail(
            f"rsyslog's OpenSSL driver is missing ({OSSL_DRIVER}): the syslog TLS tests need "
            f"package rsyslog-openssl. {INSTALL}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("syslog-tls"))


@pytest.fixture
def new_rsyslog(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[Callable[[], Rsyslog]]:
    """Start receivers of one's own (to restart or kill them); all stopped afterwards."""
    _require_rsyslogd()
    started: list[Rsyslog] = []

    def start() -> Rsyslog:
        one = Rsyslog(tmp_path_factory.mktemp("rsyslog"), tls_files)
        started.append(one)
        one.start()
        return one

    yield start
    for one in started:
        if one.proc is not None and one.proc.poll() is None:
            os.kill(one.proc.pid, signal.SIGCONT)
        one.stop()


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Rsyslog]:
    """A receiver shared by a module's tests (each reads back its own ids)."""
    _require_rsyslogd()
    receiver = Rsyslog(tmp_path_factory.mktemp("rsyslog"), tls_files)
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def opensearch_url() -> Iterator[str]:
    """An OpenSearch node of the session's own, in a directory outside pytest's ``tmp_path``
    (another session may lock the unprivileged engine user out of it: see ``test_faults.py``)."""
    directory = Path(tempfile.mkdtemp(prefix="auditlog-test-opensearch-"))
    instance = EngineInstance(directory, OPENSEARCH)
    try:
        status = instance.start(heap="512m")
        assert status.url is not None and status.version == OPENSEARCH.version
        yield status.url
    finally:
        instance.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def index() -> str:
    """A customer's index of the test's own (the customer's nodes are throwaway)."""
    return f"audit-{uuid.uuid4().hex[:8]}"
