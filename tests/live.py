"""Real HTTP servers for tests that need one: uvicorn in a thread (browsers, fuzzers), or
``auditlog serve`` as a process of its own (several instances and workers on one engine)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import uvicorn

from service.app import create_app
from service.config import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """Serve ``create_app(settings)`` on a free loopback port; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Instance:
    """One ``auditlog serve`` process (with its workers, in a process group of their own)."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """Kill the instance and its workers at once, as a crash would (no clean shutdown)."""
        with suppress(ProcessLookupError):  # already gone
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        with suppress(ProcessLookupError):  # already gone
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def pids(self) -> set[int]:
        """The process and its workers."""
        found = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True)
        return {int(p) for p in found.stdout.split()}


@contextmanager
def served(env: dict[str, str], log_dir: Path, workers: int = 1) -> Iterator[Instance]:
    """``auditlog serve --workers N`` on a free port with ``env``, ready (``/readyz`` 200)."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    cmd = [sys.executable, "-m", "service.cli", "serve", "--workers", str(workers),
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=out,
                                start_new_session=True)  # fmt: skip
    instance = Instance(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"auditlog serve did not get ready:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{instance.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield instance
    finally:
        instance.stop()
