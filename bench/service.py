"""The service under test in its own process, and a small HTTP client for it.

The service runs as ``python -m uvicorn --factory bench.serve:app`` with its settings in the
environment, so its resident memory can be sampled from ``/proc/<pid>/status`` apart from the
benchmark's own. The client is ``http.client`` with one keep-alive connection per thread.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from service.integrity.keys import create_keys

READY_TIMEOUT_S = 120.0


def bench_keys() -> Path:
    """The integrity keys of the benchmark's services (created once per machine)."""
    directory = Path(tempfile.gettempdir()) / "auditlog-bench-keys"
    create_keys(directory)
    return directory


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpClient:
    """One keep-alive connection to ``base_url`` (use one client per thread)."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = headers or {}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        for attempt in (0, 1):  # reconnect once if the server closed the idle connection
            try:
                self.conn.request(
                    method, path, body=body, headers={**self.headers, **(headers or {})}
                )
                resp = self.conn.getresponse()
                return Reply(resp.status, dict(resp.getheaders()), resp.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def stream(self, path: str) -> Iterator[http.client.HTTPResponse]:
        """A GET whose body the caller reads in blocks, on a fresh connection (the server closes
        idle keep-alive connections after a few seconds, and a download must not be retried)."""
        self.conn.close()
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        try:
            yield resp
        finally:
            resp.read()  # drain, so the connection can be reused
            resp.close()

    def get_json(self, path: str, params: dict[str, Any] | list[tuple[str, str]]) -> Any:
        reply = self.request("GET", f"{path}?{urlencode(params)}")
        if reply.status != 200:
            raise RuntimeError(f"GET {path} {params}: {reply.status} {reply.body[:500]!r}")
        return reply.json()

    def post_json(self, path: str, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        reply = self.request("POST", path, body, {"Content-Type": "application/json"})
        if reply.status not in (200, 201):
            raise RuntimeError(f"POST {path}: {reply.status} {reply.body[:500]!r}")
        return reply.json()

    def close(self) -> None:
        self.conn.close()


class ServiceProcess:
    """``uvicorn`` serving the app on a free port; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(
        self, es_url: str, prefix: str, admin_key: str, export_dir: Path,
        env: dict[str, str] | None = None, workers: int = 1,
    ) -> None:  # fmt: skip
        self.port = free_port()
        self.workers = workers
        """uvicorn's ``--workers``: a supervisor and that many worker processes (above 1)."""
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_key = admin_key
        self.env = {
            **os.environ,
            "AUDITLOG_ES_URL": es_url,
            "AUDITLOG_INDEX_PREFIX": prefix,
            "AUDITLOG_ADMIN_KEY": admin_key,
            "AUDITLOG_KEYS_DIR": str(bench_keys()),
            "AUDITLOG_HOST": "127.0.0.1",
            "AUDITLOG_PORT": str(self.port),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = export_dir / f"service-{prefix}-{self.port}.log"  # one per process

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "bench.serve:app",
               "--host", "127.0.0.1", "--port", str(self.port),
               "--no-access-log", "--log-level", "warning"]  # fmt: skip
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        log = self.log_path.open("wb")
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=root, stdout=log, stderr=log)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited:\n{self.log_tail()}")
            try:
                client = HttpClient(self.url)
                status = client.request("GET", "/readyz").status
                client.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(
            f"the service was not ready in {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def admin(self) -> HttpClient:
        return HttpClient(self.url, {"Authorization": f"Bearer {self.admin_key}"})


def create_account_key(service: ServiceProcess, account_id: str, name: str, tz: str) -> str:
    """Create the account and a key of it (ingest, read, export) through the admin API."""
    admin = service.admin()
    try:
        admin.post_json("/v1/admin/accounts", {"id": account_id, "name": name, "timezone": tz})
        created = admin.post_json(
            "/v1/admin/keys",
            {"account_id": account_id, "scopes": ["ingest", "read", "export"], "name": "bench"},
        )
    finally:
        admin.close()
    return str(created["key"])
