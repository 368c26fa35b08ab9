"""The engines the local node manager can run, and getting one ready: fetch, verify, unpack, Java.

Each :class:`Distribution` is an integ-test-zip published on Maven Central, pinned to a version
and the SHA-512 of its archive:

* :data:`ELASTICSEARCH` — the service's own engine (``auditlog run``, ``auditlog engine``, the
  tests' session engine);
* :data:`OPENSEARCH` — a customer's cluster of the other kind, for the tests of the ``_bulk``
  streaming sender. Its 2.x line runs on Java 11 to 21 (3.x needs 21+, and Java 24+ removed the
  security manager 2.x still installs), so the newest JDK in range is taken, not the newest one.

A distribution is fetched once (with ``mvn`` when present, else over HTTPS), verified, and unpacked
into a cache outside the work tree; the node's life is :mod:`service.local_engine.node`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


class EngineError(RuntimeError):
    """The local engine could not be fetched, started or stopped."""


@dataclass(frozen=True)
class Distribution:
    """One engine: ``product`` names its Maven artifact, its unpacked folder
    (``<product>-<version>``), its launcher (``bin/<product>``), its settings file
    (``<product>.yml``) and the marker of its process; ``env`` prefixes the launcher's variables
    (``<env>_JAVA_HOME``, ``<env>_PATH_CONF``)."""

    title: str
    product: str
    version: str
    maven_group: str
    sha512: str
    env: str
    min_java: int
    max_java: int | None = None
    settings: Mapping[str, object] = field(default_factory=dict)
    """Settings of this product only, added to the node's common ones."""
    jvm_paths: Mapping[str, str] = field(default_factory=dict)
    """Options of the shipped ``jvm.options`` with a path relative to the home, where the
    launcher runs (read-only to the engine user) → the option under the instance's ``{logs}``
    or ``{data}``."""

    @property
    def zip_name(self) -> str:
        return f"{self.product}-{self.version}.zip"

    @property
    def settings_file(self) -> str:
        return f"{self.product}.yml"

    def launcher(self, home: Path) -> Path:
        return home / "bin" / self.product


ENGINE_VERSION = "9.5.4"
"""The newest 9.x integ-test-zip that Maven Central serves and that runs here (see README)."""

ENGINE_SHA512 = (
    "a75df614854ace52dd0bce977662b3792873ac077ec0af9026cd0b2a0eb119e4"
    "49910f8eb8ed577d1a83c51c6ee6af71bf5004c3cf5b418c979186de8b5dd9e6"
)
"""Pinned digest: Maven Central carries no checksum files for the 9.x integ-test-zip."""

ELASTICSEARCH = Distribution(
    title="Elasticsearch",
    product="elasticsearch",
    version=ENGINE_VERSION,
    maven_group="org.elasticsearch.distribution.integ-test-zip",
    sha512=ENGINE_SHA512,
    env="ES",
    min_java=21,
    settings={"xpack.security.enabled": False},  # reachable from this machine only
)

OPENSEARCH = Distribution(
    title="OpenSearch",
    product="opensearch",
    version="2.19.6",
    maven_group="org.opensearch.distribution.integ-test-zip",
    # The ``.sha512`` Maven Central publishes beside the zip, pinned as the archive's own.
    sha512=(
        "8adbfaa13162b8d42b388ece6b39bfb7f1a349ab9c128d4eced78ba1dd43b5a1"
        "0850b43b8aac19fa5ab11f4d5c355ddf6f6617514d6112b0936a1903005d1d36"
    ),
    env="OPENSEARCH",
    min_java=11,
    max_java=21,
    # No security plugin in the integ-test-zip (its only module is transport-netty4): nothing
    # to disable.
    jvm_paths={
        "file=logs/gc.log": "file={logs}/gc.log",
        "-XX:ErrorFile=logs/": "-XX:ErrorFile={logs}/",
        "-XX:HeapDumpPath=data": "-XX:HeapDumpPath={data}",
    },
)


def cache_dir() -> Path:
    """Where downloads and the unpacked distributions are kept between runs."""
    configured = os.environ.get("AUDITLOG_CACHE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/cache/auditlog")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "auditlog"


# --- distribution -------------------------------------------------------------------------


def _sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_with_maven(distribution: Distribution) -> Path | None:
    mvn = shutil.which("mvn")
    if mvn is None:
        return None
    group, artifact, version = distribution.maven_group, distribution.product, distribution.version
    coords = f"{group}:{artifact}:{version}:zip"
    cmd = [mvn, "-B", "-q", "dependency:get", f"-Dartifact={coords}", "-Dtransitive=false"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    repo = Path.home() / ".m2/repository" / group.replace(".", "/") / artifact
    path = repo / version / distribution.zip_name
    if result.returncode != 0 or not path.exists():
        return None
    return path


def _fetch_over_https(distribution: Distribution, target: Path) -> Path:
    group = distribution.maven_group.replace(".", "/")
    artifact, version = distribution.product, distribution.version
    url = f"{MAVEN_CENTRAL}/{group}/{artifact}/{version}/{distribution.zip_name}"
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError) as e:
        raise EngineError(f"could not download {url}: {e}") from e
    partial.replace(target)
    return target


def fetch_distribution(distribution: Distribution) -> Path:
    """Return the verified distribution zip, downloading it only when the cache lacks it."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / distribution.zip_name
    if cached.exists() and _sha512(cached) == distribution.sha512:
        return cached
    source = _fetch_with_maven(distribution) or _fetch_over_https(distribution, cached)
    actual = _sha512(source)
    if actual != distribution.sha512:
        source.unlink(missing_ok=True)
        raise EngineError(
            f"checksum mismatch for {source}: expected {distribution.sha512}, got {actual}"
        )
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


def install_distribution(distribution: Distribution) -> Path:
    """Unpack the distribution into the cache once; return its home directory."""
    folder = f"{distribution.product}-{distribution.version}"
    home = cache_dir() / folder
    if distribution.launcher(home).exists():
        return home
    archive = fetch_distribution(distribution)
    staging = cache_dir() / f".unpack-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    _extract(archive, staging)
    with contextlib.suppress(OSError):  # another process unpacked it first
        (staging / folder).rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    make_traversable(home)
    return home


def make_traversable(path: Path) -> None:
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


def find_java(distribution: Distribution) -> Path:
    """The Java home to run ``distribution`` with: ``<env>_JAVA_HOME`` or ``JAVA_HOME`` when its
    version fits, else the newest system JDK that does."""
    low, high = distribution.min_java, distribution.max_java

    def fits(major: int | None) -> bool:
        return major is not None and major >= low and (high is None or major <= high)

    java_var = f"{distribution.env}_JAVA_HOME"
    for var in (java_var, "JAVA_HOME"):
        value = os.environ.get(var)
        if value and fits(_java_major(Path(value))):
            return Path(value)
    candidates = [(_java_major(p) or 0, p) for p in Path("/usr/lib/jvm").glob("*") if p.is_dir()]
    usable = sorted((c for c in candidates if fits(c[0])), reverse=True)
    if usable:
        return usable[0][1]
    wanted = f"{low}+" if high is None else f"{low} to {high}"
    raise EngineError(
        f"{distribution.title} {distribution.version} needs Java {wanted}; none found in "
        f"{java_var}, JAVA_HOME or /usr/lib/jvm. Install a JDK {wanted} (e.g. Temurin) or set "
        f"{java_var}."
    )
