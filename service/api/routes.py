"""The route table of the HTTP API: every operation, its handler and what the document says of it.

:func:`routes` gives Starlette its routes and serves the OpenAPI document built from the same
table, so a route cannot exist without its documentation.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api import (
    admin,
    destinations,
    exports,
    feed,
    health,
    ingest,
    integrity,
    search,
    viewers,
)
from service.api.openapi import EXPORT, FILTERS, Operation, document

READ_ERRORS = (400, 401, 403, 404, 503)
INGEST_ERRORS = (400, 401, 403, 413, 415, 503)
ADMIN_ERRORS = (401, 403, 503)

OPERATIONS = (
    Operation("GET", "/v1/entries", search.get_entries,
              "Search entries: entries, exact total, facets, cursor",
              query=(*FILTERS, "size", "cursor", "order"), schema="EntriesPage",
              errors=READ_ERRORS),
    Operation("POST", "/v1/entries", ingest.post_entries, "Ingest one entry or {entries: [...]}",
              body="entries", schema="IngestResults", errors=INGEST_ERRORS),
    Operation("POST", "/v1/entries/_bulk", ingest.post_bulk, "Ingest NDJSON, one entry a line",
              body="ndjson", schema="IngestResults", errors=INGEST_ERRORS),
    Operation("GET", "/v1/feed", feed.get_feed,
              "The account's entries in log order after a position, each with its position "
              "(gapless: resume from next_after)",
              query=("account_id", "after", "limit", "tz"), schema="Feed", errors=READ_ERRORS),
    Operation("GET", "/v1/histogram", search.get_histogram, "Date histogram of the filtered view",
              query=(*FILTERS, "interval", "split"), schema="Histogram", errors=READ_ERRORS),
    Operation("GET", "/v1/export", exports.get_export, "Stream the filtered view as a file",
              query=EXPORT, answer="file",
              headers=("Content-Disposition", "X-Total-Count", "X-Export-Id", "Link"),
              errors=READ_ERRORS),
    Operation("POST", "/v1/exports", exports.post_export_job,
              "Start an export job (the parameters of /v1/export, in the query or a JSON body)",
              query=EXPORT, body="export_job", status=202, schema="ExportJob",
              headers=("Location",), errors=READ_ERRORS),
    Operation("GET", "/v1/exports/{job_id}", exports.get_export_job, "An export job's progress",
              schema="ExportJob", errors=(401, 403, 404, 503)),
    Operation("GET", "/v1/exports/{job_id}/download", exports.download_export_job,
              "An export job's file", answer="file",
              headers=("Content-Disposition", "Content-Length"),
              errors=(401, 403, 404, 409, 410, 503)),
    Operation("GET", "/v1/exports/{export_id}/manifest", exports.get_export_manifest,
              "An export's signed manifest (a download's id is in its X-Export-Id header); "
              "202 while it is being signed", schema="Manifest", headers=("Content-Disposition",),
              pending=True, errors=(401, 403, 404, 409, 503)),
    Operation("GET", "/v1/admin/accounts", admin.list_accounts, "List accounts",
              schema="Accounts", errors=ADMIN_ERRORS),
    Operation("POST", "/v1/admin/accounts", admin.create_account, "Create an account",
              body="account", status=201, schema="Account", errors=(400, *ADMIN_ERRORS, 409)),
    Operation("PATCH", "/v1/admin/accounts/{account_id}", admin.update_account,
              "Change an account's name, timezone or view_audit", body="account_changes",
              schema="Account", errors=(400, *ADMIN_ERRORS, 404)),
    Operation("GET", "/v1/admin/keys", admin.list_keys, "List keys (never their secrets)",
              query=("keys_of",), schema="Keys", errors=ADMIN_ERRORS),
    Operation("POST", "/v1/admin/keys", admin.create_key, "Create a key (the secret is shown once)",
              body="key", status=201, schema="NewKey", errors=(400, *ADMIN_ERRORS, 404)),
    Operation("DELETE", "/v1/admin/keys/{key_id}", admin.revoke_key, "Revoke a key",
              status=204, answer="none", errors=(*ADMIN_ERRORS, 404)),
    Operation("GET", "/v1/integrity/head", integrity.get_head,
              "The account log's latest signed checkpoint", query=("account",),
              schema="Checkpoint", errors=READ_ERRORS),
    Operation("GET", "/v1/integrity/proof", integrity.get_proof,
              "An entry's leaf and inclusion proof under the latest checkpoint (or the one of "
              "tree_size); with ids, up to 100 entries' as {checkpoint, proofs}",
              query=("account", "entry_id", "entry_ids", "tree_size"), schema="Proof",
              errors=READ_ERRORS),
    Operation("GET", "/v1/integrity/consistency", integrity.get_consistency,
              "A consistency proof between two tree sizes of the account's log",
              query=("account", "from_size", "to_size"), schema="Consistency",
              errors=READ_ERRORS),
    Operation("GET", "/v1/integrity/verify", integrity.get_verify,
              "Verify the account's log against the stored entries", query=("account",),
              schema="VerifyReport", errors=READ_ERRORS),
    Operation("GET", "/v1/integrity/keys", integrity.get_keys,
              "The public keys that sign checkpoints, by key id", schema="PublicKeys",
              errors=(503,), public=True),
    Operation("POST", "/v1/viewer-sessions", viewers.post_viewer_session,
              "A one-time link opening the Audit Logs page for one person (scope viewer)",
              body="viewer_session", status=201, schema="ViewerLink",
              errors=(400, 401, 403, 404, 503)),
    Operation("GET", "/v1/destinations", destinations.list_destinations,
              "The account's streaming destinations (never their secrets)",
              query=("account_id",), schema="Destinations", errors=(400, 401, 403, 503)),
    Operation("POST", "/v1/destinations", destinations.create_destination,
              "Create a streaming destination (scope destinations)", body="destination",
              status=201, schema="Destination", errors=(400, 401, 403, 409, 503)),
    Operation("GET", "/v1/destinations/{destination_id}", destinations.get_destination,
              "A destination, its status, health and live lag", query=("account_id",),
              schema="DestinationRead", errors=(400, 401, 403, 404, 503)),
    Operation("PATCH", "/v1/destinations/{destination_id}", destinations.change_destination,
              "Change, pause, resume or rewind a destination", body="destination_changes",
              query=("account_id",), schema="Destination", errors=(400, 401, 403, 404, 503)),
    Operation("DELETE", "/v1/destinations/{destination_id}", destinations.delete_destination,
              "Delete a destination", query=("account_id",), status=204, answer="none",
              errors=(400, 401, 403, 404, 503)),
    Operation("GET", "/healthz", health.healthz, "Liveness", schema="Live", public=True),
    Operation("GET", "/readyz", health.readyz, "Readiness", schema="Ready", unready=True,
              public=True),
    Operation("GET", "/metrics", health.metrics, "Prometheus metrics", answer="text",
              public=True),
)  # fmt: skip


@cache
def openapi_document() -> dict[str, Any]:
    return document(OPERATIONS)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document())


def routes() -> list[Route]:
    """The API's routes, and ``/openapi.json``."""
    table = [Route(op.path, op.endpoint, methods=[op.method]) for op in OPERATIONS]
    return [*table, Route("/openapi.json", openapi_json, methods=["GET"])]
