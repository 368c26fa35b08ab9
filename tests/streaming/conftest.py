"""Fixtures of the streaming tests: real syslog receivers (:mod:`.syslog_receiver`).

Without ``rsyslogd`` (packages ``rsyslog`` and ``rsyslog-openssl``) the tests fail, saying how to
install it; they never skip.
"""

from __future__ import annotations

import glob
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.streaming.syslog_receiver import RSYSLOGD, Rsyslog, TlsFiles, make_tls_files

OSSL_DRIVER = "/usr/lib/*/rsyslog/lmnsd_ossl.so"
INSTALL = (
    "`make test` installs it when run as root; otherwise run "
    "`apt-get install -y rsyslog rsyslog-openssl` as root."
)


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
        receiver = Rsyslog(tmp_path_factory.mktemp("rsyslog"), tls_files)
        started.append(receiver)
        receiver.start()
        return receiver

    yield start
    for receiver in started:
        if receiver.proc is not None and receiver.proc.poll() is None:
            os.kill(receiver.proc.pid, signal.SIGCONT)
        receiver.stop()


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Rsyslog]:
    """A receiver shared by a module's tests (each reads back its own ids)."""
    _require_rsyslogd()
    receiver = Rsyslog(tmp_path_factory.mktemp("rsyslog"), tls_files)
    receiver.start()
    yield receiver
    receiver.stop()
