"""``POST /v1/entries`` (JSON) and ``POST /v1/entries/_bulk`` (NDJSON).

Whole-request errors: 400 malformed body, 401/403, 413 over the body or entry-count limit,
415 wrong content type, 503 with ``Retry-After`` when the engine is unavailable. Otherwise 200
with one result per entry, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ingest import json_input
from ingest.pipeline import Item, ingest_items, summarize
from ingest.validation import Rejected
from service.actions.keys import Principal, forbidden_account, get_account_cached
from service.errors import ServiceError, bad_request
from service.runtime import runtime_of
from service.web.auth import require
from service.web.bodies import names_twice, parse_json, read_body

JSON_TYPES = ("application/json",)

log = logging.getLogger("auditlog")


class ResultsResponse(JSONResponse):
    """The per-entry results (thousands of them) serialised by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


def _content_type(request: Request, allowed: tuple[str, ...]) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in allowed:
        raise ServiceError(
            415, "unsupported_media_type", f"Content-Type must be {' or '.join(allowed)}"
        )


async def _accounts_for(
    request: Request, principal: Principal, items: list[Item]
) -> dict[int, str | Rejected]:
    """The account each item is written to, or why it cannot be."""
    runtime = runtime_of(request)
    default = request.query_params.get("account_id")
    if principal.account_id is not None and default not in (None, principal.account_id):
        raise forbidden_account()
    account_of: dict[int, str | Rejected] = {}
    for i, item in enumerate(items):
        raw = item.raw if isinstance(item.raw, dict) else {}
        named = raw.get("account_id", default)
        if principal.account_id is not None:
            if named is not None and named != principal.account_id:
                raise forbidden_account()
            account_of[i] = principal.account_id
        elif named is None:
            account_of[i] = Rejected("account_id", "is required with a platform key")
        elif not isinstance(named, str) or await get_account_cached(runtime, named) is None:
            account_of[i] = Rejected("account_id", "is not a known account")
        else:
            account_of[i] = named
    return account_of


async def _ingest(request: Request, principal: Principal, items: list[Item]) -> Response:
    runtime = runtime_of(request)
    if len(items) > runtime.settings.max_entries:
        raise ServiceError(
            413, "too_many_entries", f"at most {runtime.settings.max_entries} entries per request"
        )
    account_of = await _accounts_for(request, principal, items)
    # the sealer's outcome records of the batches stored, run once answered (not in the
    # request: its answer and its in-flight slot do not wait for them), whatever happens next
    later: list[Coroutine[Any, Any, None]] = []
    try:
        # a 503 when nothing was stored
        results = await ingest_items(runtime.ingest, items, account_of, later)
    finally:
        if later:
            runtime.spawn(_run_all(later), finish=True)
    summary = summarize(results)
    for status in ("created", "duplicates", "rejected", "failed"):
        runtime.counters[f"ingest_{status}"] += summary[status]
    return ResultsResponse(summary)


async def _run_all(work: list[Coroutine[Any, Any, None]]) -> None:
    try:
        for coroutine in work:
            try:
                await coroutine
            except Exception:  # a bug: the sealer looks the batch up after its write deadline
                log.exception("recording a batch's outcome for the sealer failed")
    finally:  # cancelled at shutdown: those not run are closed (closing one that ran does nothing)
        for coroutine in work:
            coroutine.close()


async def post_entries(request: Request) -> Response:
    principal = await require(request, "ingest")
    _content_type(request, JSON_TYPES)
    runtime = runtime_of(request)
    raw = await read_body(request, runtime.settings.max_body_bytes)
    parsed: Any = parse_json(raw)
    if isinstance(parsed, dict) and "entries" in parsed:
        unknown = sorted(set(parsed) - {"entries"})
        if unknown:
            raise bad_request(f"{unknown[0]} is not a field of the request", field=unknown[0])
        if raw.count(b'"entries"') > 1 and (names_twice(raw) or [None])[-1] == "entries":
            raise bad_request("entries is given more than once", field="entries")  # last won
        entries = parsed["entries"]
        if not isinstance(entries, list) or not entries:
            raise bad_request("entries must be a non-empty array", field="entries")
    elif isinstance(parsed, dict):
        entries = [parsed]
    else:
        raise bad_request('the body must be an entry or {"entries": [...]}', field="body")
    items = [_sized_item(raw, runtime.settings.max_line_bytes) for raw in entries]
    return await _ingest(request, principal, items)


def _sized_item(raw: object, max_entry_bytes: int) -> Item:
    """An entry of a JSON body, rejected when its compact JSON is longer than an NDJSON line may
    be (the same limit, whichever way an entry comes in)."""
    try:
        size = len(orjson.dumps(raw))
    except orjson.JSONEncodeError:  # nested past orjson's limit: validation names the key
        return Item(raw)
    if size > max_entry_bytes:
        message = f"the entry is longer than {max_entry_bytes} bytes (as compact JSON)"
        return Item(raw, error=Rejected(None, message), size=size)
    return Item(raw, size=size)


def parse_ndjson(body: bytes, max_line_bytes: int) -> list[Item]:
    """One item per non-blank line; bad lines carry their rejection and line number."""
    items = []
    for number, (line, long_digits) in enumerate(json_input.lines(body), start=1):
        if not line or line.isspace():  # blank (strip() would copy every line)
            continue
        if len(line) > max_line_bytes:
            error = Rejected(None, f"line {number} is longer than {max_line_bytes} bytes")
            items.append(Item(None, number, error))
            continue
        try:
            items.append(Item(json_input.loads(line, short_digits=not long_digits), number))
        except (ValueError, UnicodeDecodeError) as e:
            items.append(Item(None, number, Rejected(None, f"line {number}: invalid JSON: {e}")))
    return items


async def post_bulk(request: Request) -> Response:
    principal = await require(request, "ingest")
    _content_type(request, NDJSON_TYPES)
    runtime = runtime_of(request)
    body = await read_body(request, runtime.settings.max_body_bytes)
    items = parse_ndjson(body, runtime.settings.max_line_bytes)
    if not items:
        raise bad_request("the body has no entries", field="body")
    return await _ingest(request, principal, items)
