"""Export Logs from the page: the current view as CSV, XLSX or NDJSON, directly or as a job.

``POST /settings/audit-logs/export`` takes the view's filters (hidden fields of the export form)
and runs the export code of ``/v1/export``: :func:`~service.export.stream.plan_export` reads the
first page before any byte is sent, :func:`~service.export.stream.export_bytes` streams the file,
and :func:`~service.actions.delivery.record_export` writes the account's audit entry. Views of
more than :data:`JOB_THRESHOLD` entries, or when the visitor asks for it, become an export job
(:mod:`service.export.jobs`) whose page shows its progress and refreshes itself until the file is
ready. Job pages and downloads check that the job belongs to the signed-in account.

Every export's signed manifest is at ``/settings/audit-logs/exports/<id>/manifest``: the export
form carries the id its next export will have (so the page can link to it before the download
ends), a job's page links to its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from service.actions.delivery import job_file_response, start_export_job, stream_export
from service.actions.manifests import stored_manifest
from service.errors import ServiceError
from service.export.jobs import public
from service.export.stream import plan_export
from service.page.html import BASE_PATH, esc, html_page
from service.page.layout import alert, format_local, plain_page
from service.page.session import (
    Refused,
    Session,
    csrf_ok,
    read_session,
    same_origin,
    sign_in_response,
)
from service.page.view import parse_page_view
from service.runtime import runtime_of
from service.search.accounts import Account
from service.search.jobs import JOB_ID, JobStore
from service.web.view_request import EXPORT_PARAMS, read_request

JOB_THRESHOLD = 100_000
"""Views with more entries than this are exported as a job."""
JOB_REFRESH_S = 2
PAGE_FORMATS = ("csv", "xlsx", "ndjson")


def _problem(account: Account | None, status: int, title: str, message: str) -> Response:
    return html_page(plain_page(account, title, alert(message)), status)


async def _session(request: Request) -> Session | Response:
    session = await read_session(request)
    if isinstance(session, Session):
        return session
    return sign_in_response(request, session or Refused(401, "Sign in to continue."))


async def export(request: Request) -> Response:
    session = await _session(request)
    if not isinstance(session, Session):
        return session
    account = session.account
    if not same_origin(request):
        return _problem(account, 403, "Export refused", "Export from the page itself.")
    if not session.can_export:
        return _problem(account, 403, "Export refused", "Your key lacks the export scope.")
    form = await request.form(max_files=0, max_fields=500)
    if not csrf_ok(session, form.get("csrf")):
        return _problem(account, 403, "Export refused", "This form has expired: reload the page.")
    pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    view = parse_page_view(pairs)
    fmt = next((v for k, v in reversed(pairs) if k == "format"), "csv")
    if fmt not in PAGE_FORMATS:
        return _problem(account, 400, "Export refused", "Choose CSV, Excel (XLSX) or NDJSON.")
    runtime = runtime_of(request)
    try:
        params = {**view.filter_params(), "format": [fmt], "order": ["desc"]}
        _, filters, _ = await read_request(
            request, "export", EXPORT_PARAMS, session.principal, params
        )
        proposed = next((v for k, v in reversed(pairs) if k == "export_id"), "")
        plan = await plan_export(
            runtime.es, runtime.names, filters, fmt, "desc", runtime.settings.templates_dir,
            sealing=runtime.settings.sealing,
            export_id=proposed if JOB_ID.match(proposed) else None, bom=True,
        )  # fmt: skip
        if any(k == "as_job" for k, _ in pairs) or plan.total > JOB_THRESHOLD:
            job = await start_export_job(
                runtime, session.principal, plan, "export job from the Audit Logs page"
            )
            back = f"?{urlencode({'view': urlencode(view.pairs())})}" if view.pairs() else ""
            return RedirectResponse(f"{BASE_PATH}/exports/{job['id']}{back}", status_code=303)
        return await stream_export(
            runtime, session.principal, plan, "download from the Audit Logs page"
        )
    except ServiceError as e:
        return _problem(account, e.status, "The export could not start", e.message)


async def _own_job(request: Request, session: Session) -> dict[str, Any] | None:
    runtime = runtime_of(request)
    job = await JobStore(runtime.es, runtime.names).get(request.path_params["job_id"])
    if job is None or job["account_id"] != session.account.id:
        return None
    return job


def _size(size: int | None) -> str:
    if not size:
        return ""
    if size < 1024:
        return f"{size:,} bytes"
    amount = float(size)
    for unit in ("KB", "MB", "GB"):
        amount /= 1024
        if amount < 1024 or unit == "GB":
            break
    return f"{amount:,.1f} {unit}"


def _instant(text: str | None, tz: ZoneInfo, missing: str) -> str:
    if not text:
        return missing
    return format_local(datetime.fromisoformat(text.replace("Z", "+00:00")), tz)


def _job_facts(job: dict[str, Any], tz: ZoneInfo) -> str:
    described = job.get("filters") or {}
    window = (
        f"{_instant(described.get('from'), tz, 'the first entry')} \N{EN DASH} "
        f"{_instant(described.get('to'), tz, 'now')}"
    )
    chosen = [
        f"{name}: {', '.join(value) if isinstance(value, list) else value}"
        for name, value in described.items()
        if name in ("q", "category", "type", "actor")
    ]
    status = job["status"]
    return (
        f'<dl class="facts"><div><dt>File</dt><dd>{esc(job["filename"])}</dd></div>'
        f"<div><dt>Format</dt><dd>{esc(str(job['format']).upper())}</dd></div>"
        f"<div><dt>Range</dt><dd>{esc(window)} ({esc(tz.key)})</dd></div>"
        f"<div><dt>Filters</dt><dd>{esc('; '.join(chosen) or 'none')}</dd></div>"
        f"<div><dt>Started</dt><dd>{esc(_instant(job['created_at'], tz, ''))}</dd></div>"
        f'<div><dt>Status</dt><dd class="job-status" data-status="{esc(status)}">'
        f"{esc(status.capitalize())}</dd></div></dl>"
    )


def _job_content(job: dict[str, Any], tz: ZoneInfo, ttl_h: float) -> str:
    done, total = int(job.get("rows_done") or 0), int(job.get("rows_total") or 0)
    percent = int(done * 100 / total) if total else 100
    status = job["status"]
    facts = _job_facts(job, tz)
    progress = (
        f'<div class="progress"><label for="job-progress">Rows written</label>'
        f'<progress id="job-progress" max="{max(total, 1)}" value="{done if total else 1}">'
        f'{percent}%</progress><p class="rows" aria-live="polite">{done:,} of {total:,} rows '
        f"({percent}%)</p></div>"
    )
    if status in ("queued", "running"):
        note = (
            f'<p class="help">This page refreshes itself every {JOB_REFRESH_S} seconds. You '
            "may leave it: the export keeps running and its file is kept for "
            f"{ttl_h:g} hours.</p>"
        )
        return facts + progress + note
    if status == "done":
        expires = _instant(job["expires_at"], tz, "")
        link = (
            f'<p><a class="button button-primary" id="job-download" '
            f'href="{BASE_PATH}/exports/{esc(job["id"])}/download">Download {esc(job["filename"])}'
            f'</a> <span class="muted">{esc(_size(job.get("size")))}</span></p>'
            f'<p class="help">Available until {esc(expires)}. Its signed '
            f'<a id="job-manifest" href="{BASE_PATH}/exports/{esc(job["id"])}/manifest">'
            "manifest</a> lets anyone check the file with <code>auditlog verify-export</code>.</p>"
        )
        return facts + progress + link
    if status == "expired":
        return facts + alert("This export has expired. Start a new one from the audit log.")
    return facts + alert(str(job.get("error") or "The export failed."), title="Export failed.")


async def _session_and_job(request: Request) -> tuple[Session, dict[str, Any]] | Response:
    """The signed-in session and its account's job, or the page to show instead."""
    session = await _session(request)
    if not isinstance(session, Session):
        return session
    try:
        job = await _own_job(request, session)
    except ServiceError as e:
        return _problem(session.account, e.status, "Export", e.message)
    if job is None:
        return _problem(session.account, 404, "Export not found", "There is no such export.")
    return session, job


async def job_page(request: Request) -> Response:
    found = await _session_and_job(request)
    if isinstance(found, Response):
        return found
    session, job = found
    shown = public(job)
    refresh = JOB_REFRESH_S if shown["status"] in ("queued", "running") else None
    tz = ZoneInfo(session.account.timezone)
    content = _job_content(shown, tz, runtime_of(request).settings.export_ttl_h)
    back = parse_page_view(parse_qsl(request.query_params.get("view", ""))).url()
    page = plain_page(session.account, "Export of the audit log", content, refresh, back=back)
    return html_page(page)


async def job_download(request: Request) -> Response:
    found = await _session_and_job(request)
    if isinstance(found, Response):
        return found
    session, job = found
    try:
        return await job_file_response(runtime_of(request), job)
    except ServiceError as e:
        return _problem(session.account, e.status, "Export not available", e.message)


async def manifest_download(request: Request) -> Response:
    """An export's signed manifest (a download's or a job's) as a file; a page that refreshes
    itself while it is being signed."""
    session = await _session(request)
    if not isinstance(session, Session):
        return session
    runtime = runtime_of(request)
    export_id = request.path_params["job_id"]
    try:
        manifest = await stored_manifest(runtime, export_id, session.account.id)
    except ServiceError as e:
        return _problem(session.account, e.status, "Manifest not available", e.message)
    if manifest is None:
        note = alert("The export is being finished and its rows sealed: this page refreshes "
                     "itself until its manifest is signed.", title="Signing…")  # fmt: skip
        page = plain_page(session.account, "Manifest of the export", note, JOB_REFRESH_S)
        return html_page(page, 202)
    filename = f"{manifest['filename']}.manifest.json"
    return JSONResponse(
        manifest, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


RECENT_EXPORTS = 5
"""Export jobs listed under the audit log, newest first."""


def recent_exports(jobs: list[dict[str, Any]], tz: ZoneInfo) -> str:
    """The account's latest export jobs: status, progress, size, expiry, file and manifest."""
    if not jobs:
        return ""
    rows = []
    for stored in jobs:
        job = public(stored)
        status, job_id = job["status"], esc(job["id"])
        done, total = int(job.get("rows_done") or 0), int(job.get("rows_total") or 0)
        rows_text = f"{done:,} of {total:,}" if status in ("queued", "running") else f"{total:,}"
        links = [f'<a href="{BASE_PATH}/exports/{job_id}">Details</a>']
        if status == "done":
            links += [f'<a href="{BASE_PATH}/exports/{job_id}/download">Download</a>',
                      f'<a href="{BASE_PATH}/exports/{job_id}/manifest">Manifest</a>']  # fmt: skip
        expires = _instant(job.get("expires_at"), tz, "") if status == "done" else ""
        cells = [
            esc(job.get("filename", "")),
            f'<span class="job-status" data-status="{esc(status)}">'
            f"{esc(status.capitalize())}</span>",
            esc(rows_text),
            esc(_size(job.get("size"))),
            esc(_instant(job.get("created_at"), tz, "")),
            esc(expires),
            " · ".join(links),
        ]
        rows.append(f'<tr data-job="{job_id}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    titles = ("File", "Status", "Rows", "Size", "Started", "Available until", "")
    head = "".join(f'<th scope="col">{h}</th>' for h in titles)
    return (
        '<section class="recent-exports" aria-labelledby="recent-exports-title">'
        '<h2 id="recent-exports-title">Recent exports</h2><div class="card table-wrap">'
        f'<table class="jobs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
        "</table></div></section>"
    )
