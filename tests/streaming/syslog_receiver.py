"""A real syslog receiver for the streaming tests: Debian's ``rsyslogd``, in a directory of its own.

Each receiver listens on 127.0.0.1 on three free ports: plain TCP, TLS with a certificate for
``localhost``, and TLS with a certificate for ``wrong.example``; both certificates are signed by
a throwaway CA made here with ``cryptography``. Everything received is written to one file, a
line per message as received; :meth:`Rsyslog.peers` tells which connections are open.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RSYSLOGD = "/usr/sbin/rsyslogd"
WAIT_SECONDS = 30.0


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    good: tuple[Path, Path]
    """Certificate and key for ``localhost``."""
    wrong: tuple[Path, Path]
    """Certificate and key for ``wrong.example``."""


def make_tls_files(directory: Path) -> TlsFiles:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pairs = []
    for label, dns in (("good", "localhost"), ("wrong", "wrong.example")):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(_name(dns)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        cert_path, key_path = directory / f"{label}.pem", directory / f"{label}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))  # fmt: skip
        pairs.append((cert_path, key_path))
    return TlsFiles(directory / "ca.pem", pairs[0], pairs[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(directory: Path, tls: TlsFiles, ports: tuple[int, int, int], output: Path) -> str:
    tcp, good, wrong = ports
    tls_input = 'streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon"'
    return f"""
global(maxMessageSize="256k" workDirectory="{directory / "work"}"
       defaultNetstreamDriverCAFile="{tls.ca}"
       defaultNetstreamDriverCertFile="{tls.good[0]}"
       defaultNetstreamDriverKeyFile="{tls.good[1]}")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="received") {{
  action(type="omfile" file="{output}" template="raw")
}}
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="received")
input(type="imtcp" address="127.0.0.1" port="{good}" ruleset="received" {tls_input})
input(type="imtcp" address="127.0.0.1" port="{wrong}" ruleset="received" {tls_input}
      streamDriver.certFile="{tls.wrong[0]}" streamDriver.keyFile="{tls.wrong[1]}")
"""


class Rsyslog:
    """One ``rsyslogd -n`` with its own configuration, work directory, pid file and output
    (``received.log`` in its directory, or ``output``: the benchmark's is ``/dev/null``)."""

    def __init__(self, directory: Path, tls: TlsFiles, output: Path | None = None) -> None:
        self.directory, self.tls = directory, tls
        self.tcp_port, self.tls_port, self.wrong_tls_port = free_port(), free_port(), free_port()
        (directory / "work").mkdir(parents=True, exist_ok=True)
        self.conf = directory / "rsyslog.conf"
        self.output = output or directory / "received.log"
        self.conf.write_text(_config(directory, tls, self.ports, self.output))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ports(self) -> tuple[int, int, int]:
        return self.tcp_port, self.tls_port, self.wrong_tls_port

    def start(self) -> None:
        pid_file = self.directory / "rsyslogd.pid"
        pid_file.unlink(missing_ok=True)
        with (self.directory / "rsyslogd.stderr").open("ab") as stderr:
            self.proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(pid_file)],
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
            )  # fmt: skip
        deadline = time.monotonic() + WAIT_SECONDS
        while not all(self._listening(port) for port in self.ports):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "rsyslogd.stderr").read_text(errors="replace")
                self.stop()
                raise AssertionError(f"rsyslogd did not start listening:\n{log}")
            time.sleep(0.05)

    @staticmethod
    def _listening(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM: rsyslogd writes what it received, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP, once every thread of it stopped: it reads nothing until it is killed."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        tasks = Path(f"/proc/{self.proc.pid}/task")
        deadline = time.monotonic() + WAIT_SECONDS
        while not all(_state(task) == "T" for task in tasks.iterdir()):
            assert time.monotonic() < deadline, "rsyslogd did not stop"
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL, as a crash: what the receiver had not yet read or written is lost."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def lines(self) -> list[bytes]:
        """Every message written so far (whole lines: rsyslogd writes a long one in parts)."""
        if not self.output.exists():
            return []
        written = self.output.read_bytes()
        return [line for line in written[: written.rfind(b"\n") + 1].split(b"\n") if line]

    def peers(self, port: int) -> set[int]:
        """Source ports of the established TCP connections to ``port`` (``/proc/net/tcp``)."""
        found = set()
        for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, remote, state = row.split()[1:4]
            if state == "01" and int(local.split(":")[1], 16) == port:
                found.add(int(remote.split(":")[1], 16))
        return found

    def wait_for(self, ready: Callable[[list[bytes]], bool]) -> list[bytes]:
        """The lines once ``ready`` holds of them (rsyslogd writes a little after it reads)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            found = self.lines()
            if ready(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def _state(task: Path) -> str:
    """The state letter in ``/proc/<pid>/task/<tid>/stat`` (after the command in parentheses)."""
    try:
        return (task / "stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return "T"  # a thread that ended
