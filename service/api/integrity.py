"""``/v1/integrity/*``: the account log's signed head, proofs, public keys and verification."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.actions import proofs
from service.actions.verify import verify_account
from service.errors import ServiceError, bad_request
from service.integrity.keys import IntegrityKeys
from service.runtime import Runtime, runtime_of
from service.search.identifiers import STORED_ID
from service.search.integrity_log import IntegrityLog
from service.web.auth import require, resolve_account
from service.web.view_request import query_params

VERIFY_MAX_ENTRIES = 200_000
"""Larger logs are verified with ``auditlog verify`` (the request would take too long)."""


def _keys(runtime: Runtime) -> IntegrityKeys:
    keys = runtime.ingest.keys
    if keys is None:
        raise ServiceError(503, "not_configured", "this service has no integrity keys")
    return keys


async def _account(request: Request, allowed: set[str]) -> tuple[str, dict[str, list[str]]]:
    principal = await require(request, "read")
    params = query_params(request, {"account_id", *allowed})
    account = await resolve_account(request, principal, params.get("account_id", [None])[-1])
    return account.id, params


async def get_head(request: Request) -> Response:
    account_id, _ = await _account(request, set())
    return JSONResponse(await proofs.head(runtime_of(request), account_id))


PROOF_MAX_IDS = 100
"""Entries proven by one request of ``ids``."""
ENTRY_ID_FORM = "1-128 characters of A-Z a-z 0-9 . _ : -, or ~ and 32 hex digits (a generated id)"
"""The ids an entry can have (``STORED_ID``): any other is in no account's log."""


def _tree_size(params: dict[str, list[str]]) -> int | None:
    text = params.get("tree_size", [None])[-1]
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 15) or int(text) < 1:
        raise bad_request("tree_size must be a tree size (ASCII digits, 1 or more)", "tree_size")
    return int(text)


async def get_proof(request: Request) -> Response:
    account_id, params = await _account(request, {"id", "ids", "tree_size"})
    size = _tree_size(params)
    runtime = runtime_of(request)
    if "ids" in params:
        if "id" in params:
            raise bad_request("give id (one entry) or ids (several), not both", "ids")
        entry_ids = [i for text in params["ids"] for i in text.split(",")]
        if "" in entry_ids:  # skipped, the answer's proofs would not line up with the ids sent
            raise bad_request("ids has an empty item: name each entry once, comma-separated",
                              "ids")  # fmt: skip
        if not entry_ids or len(entry_ids) > PROOF_MAX_IDS:
            raise bad_request(f"ids must name 1 to {PROOF_MAX_IDS} entries, comma-separated",
                              "ids")  # fmt: skip
        if not all(STORED_ID.match(i) for i in entry_ids):
            raise bad_request(f"ids must be entry ids, comma-separated: {ENTRY_ID_FORM}", "ids")
        return JSONResponse(await proofs.inclusions(runtime, account_id, entry_ids, size))
    entry_id = params.get("id", [""])[0]
    if not entry_id:
        raise bad_request("id is required: the entry's id", "id")
    if not STORED_ID.match(entry_id):
        raise bad_request(f"id must be an entry id: {ENTRY_ID_FORM}", "id")
    return JSONResponse(await proofs.inclusion(runtime, account_id, entry_id, size))


def _sizes(params: dict[str, list[str]]) -> tuple[int, int]:
    """``from`` and ``to``: a value given but malformed is named before a value missing."""
    texts = {name: params.get(name, [None])[-1] for name in ("from", "to")}
    for name, text in texts.items():
        if text is not None and not (text.isascii() and text.isdigit() and len(text) <= 15):
            raise bad_request(f"{name} must be a tree size (ASCII digits)", name)
    for name, text in texts.items():
        if text is None:
            raise bad_request(f"{name} is required: a tree size", name)
    return int(str(texts["from"])), int(str(texts["to"]))


async def get_consistency(request: Request) -> Response:
    account_id, params = await _account(request, {"from", "to"})
    first, second = _sizes(params)
    return JSONResponse(await proofs.consistency(runtime_of(request), account_id, first, second))


async def get_keys(request: Request) -> Response:
    return JSONResponse(proofs.public_keys(_keys(runtime_of(request))))


async def get_verify(request: Request) -> Response:
    account_id, _ = await _account(request, set())
    runtime = runtime_of(request)
    latest = await IntegrityLog(runtime.es, runtime.names).latest_checkpoint(account_id, False)
    if latest is not None and int(latest["tree_size"]) > VERIFY_MAX_ENTRIES:
        message = f"more than {VERIFY_MAX_ENTRIES} entries: run `auditlog verify --account ID`"
        raise bad_request(message, "account_id")
    report = await verify_account(runtime, _keys(runtime), account_id)
    return JSONResponse(report.to_dict())
