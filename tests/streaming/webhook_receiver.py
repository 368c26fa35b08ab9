"""A local HTTPS-webhook receiver for streaming tests: checks each batch's HMAC signature within
the replay window, records its events, can answer with an error or hold a batch (a slow
receiver)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SECRET = "whsec-" + "s" * 32


@dataclass
class Receiver:
    """A webhook receiver: checks each batch's signature, records its events; ``answer`` is the
    status it answers with (200 by default)."""

    url: str = ""
    secrets: tuple[str, ...] = (SECRET,)
    answer: int = 200
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    held: threading.Event | None = None
    """While set and not released, a batch is held (the receiver is slow)."""
    holding: threading.Event = field(default_factory=threading.Event)

    def events(self, kind: str = "entry") -> list[dict[str, Any]]:
        return [e for batch in self.batches for e in batch if e["event_type"] == kind]

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        stamp = request.headers["auditlog-timestamp"]
        assert abs(time.time() - int(stamp)) < 300  # the replay window
        given = request.headers["auditlog-signature"]
        self.signatures.append(given)
        expected = {
            "v1=" + hmac.new(s.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
            for s in self.secrets
        }
        if not expected & set(given.split(",")):
            self.bad_signatures += 1
            return JSONResponse({"error": "bad signature"}, status_code=400)
        if self.answer != 200:
            return JSONResponse({"error": "not now"}, status_code=self.answer)
        if self.held is not None:
            self.holding.set()
            await asyncio.to_thread(self.held.wait)
        self.batches.append((await request.json())["events"])
        return JSONResponse({"ok": True})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    port = _free_port()
    app = Starlette(routes=[Route("/hook", hook.endpoint, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    hook.url = f"http://127.0.0.1:{port}/hook"
    yield hook
    server.should_exit = True
    thread.join(timeout=10)
