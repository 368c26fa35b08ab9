"""A webhook receiver for the streaming benchmark, run as a process of its own so that its CPU
is not the bench client's: it acknowledges every batch at once and counts what it received.

    python -m bench.webhook_sink PORT

``POST /hook`` takes a batch (``{"events": [...]}``); ``GET /count`` answers
``{"entries": n, "checkpoints": n, "batches": n}``.
"""

from __future__ import annotations

import sys
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

received: Counter[str] = Counter()


async def hook(request: Request) -> Response:
    """Counted from the compact JSON the service sends, unparsed: the receiver's CPU is not what
    is measured, and on a small machine it is taken from the service and the engine."""
    body = await request.body()
    received["batches"] += 1
    received["entries"] += body.count(b'"event_type":"entry"')
    received["checkpoints"] += body.count(b'"event_type":"checkpoint"')
    return JSONResponse({"ok": True})


async def count(request: Request) -> Response:
    return JSONResponse({k: received[k] for k in ("entries", "checkpoints", "batches")})


app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/count", count)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)  # fmt: skip
