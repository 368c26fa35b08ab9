"""``auditlog export``: an account's filtered view to a file, as ``GET /v1/export`` makes it.

The same parameters (:func:`service.search.filters.parse_view_filters`, so the same messages for
bad ones), the same plan and writers (:mod:`service.export.stream`), the same ``export.completed``
audit entry (actor: the command line) and the same signed manifest, kept at
``/v1/exports/<id>/manifest``. The file is written under a temporary name next to the target and
renamed once complete: a failed export never leaves a partial file under the final name. The
manifest is signed once the file is complete, after waiting (as a download's does) for rows still
in the seal queue to be sealed by the running service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from service.actions.delivery import manifest_path, record_export
from service.actions.keys import Principal
from service.actions.manifests import keep_pending, seal_wait_s, sign_export
from service.cli.plumbing import (
    CLI_ACTOR,
    EXIT_FAILED,
    CliError,
    account_id,
    account_store,
    from_service_error,
    print_json,
    with_client,
)
from service.cli.progress import ProgressLine, duration_text
from service.config import Settings
from service.errors import EngineUnavailable, ServiceError, bad_request
from service.export.stream import ExportPlan, export_bytes, new_export_id, plan_export
from service.export.writers import WRITERS
from service.runtime import Runtime
from service.search.client import Engine
from service.search.filters import parse_view_filters
from service.search.indices import IndexNames
from service.search.manifests import ManifestStore
from service.web.view_request import order_of

HOW = "command line"
"""How the export was made, in its audit entry (the API's say ``download`` or ``export job``)."""
SIGNED = "signed"
NO_KEYS = "not signed: this service has no integrity keys"
"""A deployment without integrity keys: the export is complete, it has no manifest."""


@dataclass(frozen=True)
class CliPrincipal(Principal):
    """The command line as the exporter: its audit entries name :data:`CLI_ACTOR`."""

    def actor(self) -> dict[str, str]:
        return dict(CLI_ACTOR)


def filter_params(args: argparse.Namespace) -> dict[str, list[str]]:
    """The options as the API's query parameters: name → every value given."""
    params: dict[str, list[str]] = {}
    for name in ("category", "type", "actor", "action", "provider"):
        for value in getattr(args, name) or ():
            params.setdefault(name, []).append(value)
    for name, value in (("q", args.q), ("range", args.range), ("from", args.from_),
                        ("to", args.to), ("tz", args.tz), ("order", args.order)):  # fmt: skip
        if value is not None:
            params[name] = [value]
    return params


def _target(output: str | None) -> Path | None:
    """Where the file goes: ``None`` for stdout; a directory gets the export's own filename."""
    if output == "-":
        return None
    path = Path(output or ".")
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        raise CliError(f"no directory {folder} for the export")
    return path


async def _plan(
    runtime: Runtime, account: str, fmt: str, params: dict[str, list[str]], bom: bool = False
) -> ExportPlan:
    """The export's plan, its first page read; a bad parameter is the API's 400, as a usage
    error naming it."""
    found = await account_store(runtime.es, runtime.settings).get_account(account)
    if found is None:
        raise CliError(f"no account '{account}'")
    try:
        if fmt not in WRITERS:
            raise bad_request(f"format must be one of {', '.join(WRITERS)}", field="format")
        order = order_of(params)
        filters = parse_view_filters(params, found.id, found.timezone, datetime.now(UTC))
        return await plan_export(
            runtime.es, runtime.names, filters, fmt, order, runtime.settings.templates_dir,
            sealing=runtime.settings.sealing, bom=bom,
        )  # fmt: skip
    except EngineUnavailable:
        raise
    except ServiceError as e:
        raise from_service_error(e) from e


def _rows_text(plan: ExportPlan, line: ProgressLine, *, last: bool = False) -> str:
    total = max(plan.total, plan.rows)
    fraction = plan.rows / total if total else 1.0
    done = f"rows {plan.rows:,} of {total:,} ({int(fraction * 100)}%)"
    if last:
        return f"{done} in {duration_text(line.elapsed())}"
    return f"{done} · {line.rate_and_eta(plan.rows, fraction, 'rows')}"


async def _write(
    plan: ExportPlan,
    out: BinaryIO,
    record: Callable[[], Coroutine[Any, Any, None]],
    line: ProgressLine,
) -> None:
    async for chunk in export_bytes(plan, record):
        out.write(chunk)
        total = max(plan.total, plan.rows)
        line.update(plan.rows / total if total else 1.0, _rows_text(plan, line))
    out.flush()
    line.finish(_rows_text(plan, line, last=True))


async def _write_file(
    plan: ExportPlan,
    target: Path,
    record: Callable[[], Coroutine[Any, Any, None]],
    line: ProgressLine,
) -> Path:
    """Write the export under a temporary name in the target's directory, then rename it (a
    device or a pipe, such as /dev/stdout, is written to directly)."""
    final = target / plan.filename() if target.is_dir() else target
    if final.exists() and not final.is_file():
        with final.open("wb") as out:
            await _write(plan, out, record, line)
        return final
    handle, temporary = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            await _write(plan, out, record, line)
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as a file the user writes (mkstemp's is 0600)
        os.replace(temporary, final)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return final


async def _manifest(runtime: Runtime, plan: ExportPlan) -> tuple[dict[str, Any] | None, str]:
    """Sign the complete export's manifest (or record why it has none): it and its status."""
    store = ManifestStore(runtime.es, runtime.names)
    account = plan.filters.account_id
    if runtime.ingest.keys is None:
        await store.incomplete(plan.export_id, account, NO_KEYS)
        return None, NO_KEYS
    if plan.awaiting:
        wait = f"at most {seal_wait_s(runtime):.0f} s"
        print(f"signing the manifest once {len(plan.awaiting):,} rows are sealed ({wait})...",
              file=sys.stderr)  # fmt: skip
    try:
        return await sign_export(runtime, plan), SIGNED
    except ServiceError as e:
        with contextlib.suppress(ServiceError):
            await store.incomplete(plan.export_id, account, f"not signed: {e.message}")
        return None, f"not signed: {e.message}"


async def _reserve_id(runtime: Runtime, plan: ExportPlan) -> None:
    """Record the export's manifest as pending under an id of its own."""
    store = ManifestStore(runtime.es, runtime.names)
    try:
        while not await store.pending(plan.export_id, plan.filters.account_id):
            plan.export_id = new_export_id()
    except BaseException:
        await plan.scan.close()
        raise


async def _export(
    runtime: Runtime, args: argparse.Namespace, target: Path | None
) -> dict[str, Any]:
    plan = await _plan(runtime, args.account, args.format, filter_params(args), bool(args.bom))
    await _reserve_id(runtime, plan)
    principal = CliPrincipal(key_id="cli", account_id=None, scopes=frozenset({"export"}))

    async def record() -> None:
        await record_export(runtime, principal, plan, HOW)

    alive = asyncio.create_task(keep_pending(runtime, plan.export_id))
    line, written = ProgressLine(), False
    try:
        try:
            if target is None:
                await _write(plan, sys.stdout.buffer, record, line)
            else:
                target = await _write_file(plan, target, record, line)
        except OSError as e:  # the disk is full, the pipe was closed, ...
            raise CliError(f"cannot write the export: {e}", EXIT_FAILED) from e
        written = True
        manifest, status = await _manifest(runtime, plan)
    except BaseException:  # cut short (Ctrl-C too): the manifest says so at once
        line.abandon()
        reason = "not signed: interrupted" if written else "the export did not complete"
        with contextlib.suppress(ServiceError):
            await plan.scan.close()  # when the file could not even be created
        with contextlib.suppress(ServiceError):
            await ManifestStore(runtime.es, runtime.names).incomplete(
                plan.export_id, plan.filters.account_id, reason
            )
        raise
    finally:
        alive.cancel()
    service = os.environ.get("AUDITLOG_URL", "").rstrip("/")
    if manifest is not None and args.manifest:
        try:
            Path(args.manifest).write_text(_json(manifest))
        except OSError as e:
            where = f"{service}{manifest_path(plan.export_id)}"
            raise CliError(f"cannot write the manifest ({e}); it is at {where}", 1) from e
    summary = {
        "export_id": plan.export_id,
        "account_id": plan.filters.account_id,
        "format": plan.fmt,
        "file": "-" if target is None else str(target),
        "rows": plan.rows,
        "bytes": plan.file_bytes,
        "file_sha256": plan.file_hash.hexdigest(),
        "manifest": f"{service}{manifest_path(plan.export_id)}",
        "manifest_status": status,
    }
    if manifest is not None and args.manifest:
        summary["manifest_file"] = args.manifest
    return summary


def _json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def cmd_export(args: argparse.Namespace) -> int:
    account_id(args.account)
    target = _target(args.output)  # a missing directory is refused before anything is read
    if args.manifest and not Path(args.manifest).parent.is_dir():
        raise CliError(f"no directory {Path(args.manifest).parent} for the manifest")

    async def run(es: Engine, settings: Settings) -> dict[str, Any]:
        runtime = Runtime(settings=settings, es=es, names=IndexNames(settings.index_prefix))
        return await _export(runtime, args, target)

    summary = with_client(run, ensure_setup=True)
    if summary["file"] == "-":
        print(_json(summary), end="", file=sys.stderr)
    else:
        print_json(summary)
    status = summary["manifest_status"]
    if status != SIGNED:
        print(f"warning: the export is complete but has no manifest ({status})", file=sys.stderr)
    return 0 if status in (SIGNED, NO_KEYS) else EXIT_FAILED
