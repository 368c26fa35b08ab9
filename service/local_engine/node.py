"""The local engine node: start, wait, stop — one real node in an instance directory.

The embedded default of the service, the tests and CI all run one real Elasticsearch node from
the integ-test-zip distribution published on Maven Central; the streaming tests also run an
OpenSearch node as a customer's cluster. What to run and how it is fetched, verified, unpacked
and given a Java runtime is :mod:`service.local_engine.distributions`'; this module owns a node's
life:

* the node binds 127.0.0.1 on a free port (on a restart, the previous one when it is still
  free, so clients reconnect), keeps data and logs under an instance directory, has a
  bounded heap and no security (it is reachable from this machine only);
* started as root, it runs as the unprivileged ``auditlog-engine`` user, since Elasticsearch
  and OpenSearch refuse to run as root.

It talks HTTP with the standard library only, so it needs no client and can run before the
service's dependencies matter.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from service.local_engine.distributions import (
    ELASTICSEARCH,
    Distribution,
    find_java,
    install_distribution,
    make_traversable,
)
from service.local_engine.distributions import ENGINE_VERSION as ENGINE_VERSION
from service.local_engine.distributions import EngineError as EngineError
from service.local_engine.distributions import cache_dir as cache_dir

ENGINE_USER = "auditlog-engine"
START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class EngineStatus:
    running: bool
    url: str | None
    pid: int | None
    version: str | None
    health: str | None


def default_instance_dir() -> Path:
    """The engine instance of ``auditlog run`` (data survives restarts)."""
    configured = os.environ.get("AUDITLOG_ENGINE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/auditlog/engine")
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "auditlog/engine"


# --- instance -----------------------------------------------------------------------------


def _engine_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(ENGINE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                ENGINE_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(ENGINE_USER)


def launcher_output(directory: Path) -> IO[str]:
    """``directory/logs/launcher.out``, emptied, open to write and read back. Started as root,
    ``logs/`` belongs to the engine user: a symbolic link planted there (``logs`` itself, or
    ``launcher.out``), or anything but a file of its own (a hard link, a FIFO), is refused
    (``OSError``) before anything is written, never followed to a file root would overwrite."""
    nofollow, folder = os.O_NOFOLLOW | os.O_CLOEXEC, os.O_RDONLY | os.O_DIRECTORY
    instance = os.open(directory, folder | os.O_CLOEXEC)
    try:
        logs = os.open("logs", folder | nofollow, dir_fd=instance)
    finally:
        os.close(instance)
    try:
        fd = os.open("launcher.out", os.O_RDWR | os.O_CREAT | nofollow, 0o644, dir_fd=logs)
    finally:
        os.close(logs)
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1:
            raise OSError(errno.EPERM, "not a file of its own", "logs/launcher.out")
        os.ftruncate(fd, 0)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "w+", encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_is_free(port: object) -> bool:
    """Whether the node could bind ``port`` again (it binds with ``SO_REUSEADDR`` too)."""
    if not isinstance(port, int) or not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _get_json(url: str, timeout: float = 5.0) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data = json.load(response)
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: int, distribution: Distribution) -> bool:
    """Whether ``pid`` is a process of ``distribution`` (not another that took the pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return distribution.product.encode() in cmdline


@dataclass(frozen=True)
class EngineInstance:
    """One node's directory: ``config/``, ``data/``, ``logs/``, ``engine.pid``, ``engine.json``;
    an Elasticsearch node unless another ``distribution`` is given."""

    directory: Path
    distribution: Distribution = field(default=ELASTICSEARCH)

    @property
    def pid_file(self) -> Path:
        return self.directory / "engine.pid"

    @property
    def state_file(self) -> Path:
        return self.directory / "engine.json"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid, self.distribution) else None

    def url(self) -> str | None:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return f"http://127.0.0.1:{state['http_port']}"

    def log_tail(self, lines: int = 40) -> str:
        log = self.directory / "logs" / "auditlog-local.log"
        if not log.exists():
            return "(no engine log written)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def _write_config(self, home: Path, heap: str) -> tuple[int, int]:
        conf = self.directory / "config"
        if not conf.exists():
            shutil.copytree(home / "config", conf)
        (self.directory / "data").mkdir(exist_ok=True)
        (self.directory / "logs").mkdir(exist_ok=True)
        http_port, transport_port = self._ports()
        settings = {
            "cluster.name": "auditlog-local",
            "node.name": "local",
            "network.host": "127.0.0.1",
            "http.port": http_port,
            "transport.port": transport_port,
            "discovery.type": "single-node",
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "path.data": str(self.directory / "data"),
            "path.logs": str(self.directory / "logs"),
            **self.distribution.settings,
        }
        (conf / self.distribution.settings_file).write_text(
            "".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items())
        )
        self._write_jvm_options(conf, heap)
        state = {"http_port": http_port, "transport_port": transport_port}
        self.state_file.write_text(json.dumps({**state, "version": self.distribution.version}))
        return http_port, transport_port

    def _write_jvm_options(self, conf: Path, heap: str) -> None:
        if self.distribution.jvm_paths:
            options = conf / "jvm.options"
            text = options.read_text()
            where = {"logs": self.directory / "logs", "data": self.directory / "data"}
            for relative, absolute in self.distribution.jvm_paths.items():
                text = text.replace(relative, absolute.format(**where))
            options.write_text(text)
        (conf / "jvm.options.d").mkdir(exist_ok=True)
        (conf / "jvm.options.d/heap.options").write_text(f"-Xms{heap}\n-Xmx{heap}\n")

    def _ports(self) -> tuple[int, int]:
        """The ports of the previous start when both are free, so clients reconnect; else new."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            state = {}
        previous = (state.get("http_port"), state.get("transport_port"))
        if previous[0] != previous[1] and all(_port_is_free(p) for p in previous):
            return int(previous[0]), int(previous[1])
        return _free_port(), _free_port()

    def start(self, heap: str = "1g", timeout: float = START_TIMEOUT_S) -> EngineStatus:
        """Start the node unless it runs already; wait until it is yellow or green."""
        current = self.status()
        if current.running:
            return current
        self.pid_file.unlink(missing_ok=True)  # stale: its process is gone
        home = install_distribution(self.distribution)
        java = find_java(self.distribution)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_config(home, heap)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            f"{self.distribution.env}_JAVA_HOME": str(java),
            f"{self.distribution.env}_PATH_CONF": str(self.directory / "config"),
            "HOME": str(self.directory),
            "LANG": "C.UTF-8",
        }
        kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            user = _engine_user()
            subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(self.directory)])
            make_traversable(self.directory)
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        cmd = [str(self.distribution.launcher(home)), "-d", "-p", str(self.pid_file)]
        # A file, not a pipe: OpenSearch's daemon keeps the launcher's output open, so reading
        # a pipe to its end would wait for the node to stop. Read back through the same file.
        try:
            said = launcher_output(self.directory)
        except OSError as e:
            raise EngineError(f"cannot write the launcher's output in {self.directory}: {e}") from e
        with said as out:
            result = subprocess.run(  # type: ignore[call-overload]
                cmd, env=env, cwd=self.directory, stdout=out, stderr=subprocess.STDOUT,
                check=False, **kwargs,
            )  # fmt: skip
            output = ""
            if result.returncode != 0:  # no daemon writes there any more
                out.seek(0)
                output = out.read()[-4000:]
        if result.returncode != 0:
            raise EngineError(f"engine failed to start:\n{output}\n--- log ---\n{self.log_tail()}")
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> EngineStatus:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status.health in ("yellow", "green"):
                return status
            if status.pid is None and self.pid_file.exists():
                break  # the process died
            time.sleep(0.5)
        raise EngineError(f"engine not ready within {timeout:.0f}s\n--- log ---\n{self.log_tail()}")

    def status(self) -> EngineStatus:
        pid, url = self.pid(), self.url()
        if pid is None or url is None:
            return EngineStatus(False, url, None, None, None)
        try:
            health = _get_json(f"{url}/_cluster/health?timeout=2s")
            nodes = _get_json(f"{url}/_nodes/_local?filter_path=nodes.*.version")
        except (urllib.error.URLError, OSError, ValueError):
            return EngineStatus(True, url, pid, None, None)
        node_map = nodes.get("nodes")
        versions = (
            [n.get("version") for n in node_map.values()] if isinstance(node_map, dict) else []
        )
        version = str(versions[0]) if versions else None
        return EngineStatus(True, url, pid, version, str(health.get("status")))

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the node if it runs; return whether one was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid, self.distribution):
            time.sleep(0.2)
        if _pid_alive(pid, self.distribution):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
