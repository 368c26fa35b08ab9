"""The local Elasticsearch node: fetch, verify, unpack, start, wait, stop.

The embedded default of the service, the tests and CI all run one real Elasticsearch node from
the integ-test-zip distribution published on Maven Central. This module owns that node's life:

* the pinned distribution is fetched once (with ``mvn`` when present, else over HTTPS), its
  SHA-512 verified, and unpacked into a cache outside the work tree;
* a Java runtime the version needs is found (``ES_JAVA_HOME``, ``JAVA_HOME``, ``/usr/lib/jvm/*``);
* the node binds 127.0.0.1 on a free port (on a restart, the previous one when it is still
  free, so clients reconnect), keeps data and logs under an instance directory, has a
  bounded heap and security explicitly disabled (it is reachable from this machine only);
* started as root, it runs as the unprivileged ``auditlog-engine`` user, since Elasticsearch
  refuses to run as root.

It talks HTTP with the standard library only, so it needs no client and can run before the
service's dependencies matter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

ENGINE_VERSION = "9.5.4"
"""The newest 9.x integ-test-zip that Maven Central serves and that runs here (see README)."""

ENGINE_SHA512 = (
    "a75df614854ace52dd0bce977662b3792873ac077ec0af9026cd0b2a0eb119e4"
    "49910f8eb8ed577d1a83c51c6ee6af71bf5004c3cf5b418c979186de8b5dd9e6"
)
"""Pinned digest: Maven Central carries no checksum files for the 9.x integ-test-zip."""

MIN_JAVA = 21
MAVEN_GROUP = "org.elasticsearch.distribution.integ-test-zip"
MAVEN_ARTIFACT = "elasticsearch"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
ENGINE_USER = "auditlog-engine"
START_TIMEOUT_S = 180.0


class EngineError(RuntimeError):
    """The local engine could not be fetched, started or stopped."""


@dataclass(frozen=True)
class EngineStatus:
    running: bool
    url: str | None
    pid: int | None
    version: str | None
    health: str | None


def cache_dir() -> Path:
    """Where downloads and the unpacked distribution are kept between runs."""
    configured = os.environ.get("AUDITLOG_CACHE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/cache/auditlog")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "auditlog"


def default_instance_dir() -> Path:
    """The engine instance of ``auditlog run`` (data survives restarts)."""
    configured = os.environ.get("AUDITLOG_ENGINE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/auditlog/engine")
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "auditlog/engine"


# --- distribution -------------------------------------------------------------------------


def _sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _zip_name(version: str) -> str:
    return f"{MAVEN_ARTIFACT}-{version}.zip"


def _fetch_with_maven(version: str) -> Path | None:
    mvn = shutil.which("mvn")
    if mvn is None:
        return None
    coords = f"{MAVEN_GROUP}:{MAVEN_ARTIFACT}:{version}:zip"
    cmd = [mvn, "-B", "-q", "dependency:get", f"-Dartifact={coords}", "-Dtransitive=false"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    repo = Path.home() / ".m2/repository" / MAVEN_GROUP.replace(".", "/") / MAVEN_ARTIFACT
    path = repo / version / _zip_name(version)
    if result.returncode != 0 or not path.exists():
        return None
    return path


def _fetch_over_https(version: str, target: Path) -> Path:
    group = MAVEN_GROUP.replace(".", "/")
    url = f"{MAVEN_CENTRAL}/{group}/{MAVEN_ARTIFACT}/{version}/{_zip_name(version)}"
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError) as e:
        raise EngineError(f"could not download {url}: {e}") from e
    partial.replace(target)
    return target


def fetch_distribution(version: str = ENGINE_VERSION, sha512: str = ENGINE_SHA512) -> Path:
    """Return the verified distribution zip, downloading it only when the cache lacks it."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / _zip_name(version)
    if cached.exists() and _sha512(cached) == sha512:
        return cached
    source = _fetch_with_maven(version) or _fetch_over_https(version, cached)
    actual = _sha512(source)
    if actual != sha512:
        source.unlink(missing_ok=True)
        raise EngineError(f"checksum mismatch for {source}: expected {sha512}, got {actual}")
    if source != cached:
        shutil.copyfile(source, cached)
    return cached


def _extract(archive: Path, destination: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            zf.extract(member, destination)
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                (destination / member.filename).chmod(mode | 0o444 | (0o111 if mode & 0o100 else 0))


def install_distribution(version: str = ENGINE_VERSION) -> Path:
    """Unpack the distribution into the cache once; return its home directory."""
    home = cache_dir() / f"elasticsearch-{version}"
    if (home / "bin/elasticsearch").exists():
        return home
    archive = fetch_distribution(version)
    staging = cache_dir() / f".unpack-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    _extract(archive, staging)
    with contextlib.suppress(OSError):  # another process unpacked it first
        (staging / f"elasticsearch-{version}").rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    _make_traversable(home)
    return home


# --- java ---------------------------------------------------------------------------------


def _java_major(home: Path) -> int | None:
    release = home / "release"
    if not (home / "bin/java").exists() or not release.exists():
        return None
    for line in release.read_text(errors="replace").splitlines():
        if line.startswith("JAVA_VERSION="):
            version = line.split("=", 1)[1].strip().strip('"')
            head = version.split(".")[0]
            return int(head) if head.isdigit() else None
    return None


def find_java(minimum: int = MIN_JAVA) -> Path:
    """The first Java home of at least ``minimum``: env vars first, then the newest system JDK."""
    for var in ("ES_JAVA_HOME", "JAVA_HOME"):
        value = os.environ.get(var)
        if value and (_java_major(Path(value)) or 0) >= minimum:
            return Path(value)
    candidates = [(_java_major(p) or 0, p) for p in Path("/usr/lib/jvm").glob("*") if p.is_dir()]
    usable = sorted((c for c in candidates if c[0] >= minimum), reverse=True)
    if usable:
        return usable[0][1]
    raise EngineError(
        f"Elasticsearch {ENGINE_VERSION} needs Java {minimum}+; none found in ES_JAVA_HOME, "
        "JAVA_HOME or /usr/lib/jvm. Install a JDK 21+ (e.g. Temurin) or set ES_JAVA_HOME."
    )


# --- instance -----------------------------------------------------------------------------


def _make_traversable(path: Path) -> None:
    """Let the unprivileged engine user read ``path`` and reach it from /."""
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            full = os.path.join(root, name)
            os.chmod(full, os.stat(full).st_mode | 0o444)
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)


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


def _pid_alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"elasticsearch" in cmdline


@dataclass(frozen=True)
class EngineInstance:
    """One node's directory: ``config/``, ``data/``, ``logs/``, ``engine.pid``, ``engine.json``."""

    directory: Path

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
        return pid if _pid_alive(pid) else None

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
            "xpack.security.enabled": False,
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "path.data": str(self.directory / "data"),
            "path.logs": str(self.directory / "logs"),
        }
        (conf / "elasticsearch.yml").write_text(
            "".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items())
        )
        (conf / "jvm.options.d").mkdir(exist_ok=True)
        (conf / "jvm.options.d/heap.options").write_text(f"-Xms{heap}\n-Xmx{heap}\n")
        state = {"http_port": http_port, "transport_port": transport_port}
        self.state_file.write_text(json.dumps({**state, "version": ENGINE_VERSION}))
        return http_port, transport_port

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
        home = install_distribution()
        java = find_java()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_config(home, heap)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_JAVA_HOME": str(java),
            "ES_PATH_CONF": str(self.directory / "config"),
            "HOME": str(self.directory),
            "LANG": "C.UTF-8",
        }
        kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            user = _engine_user()
            subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(self.directory)])
            _make_traversable(self.directory)
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        cmd = [str(home / "bin/elasticsearch"), "-d", "-p", str(self.pid_file)]
        result = subprocess.run(  # type: ignore[call-overload]
            cmd, env=env, cwd=self.directory, capture_output=True, text=True, check=False, **kwargs
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-4000:]
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
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
