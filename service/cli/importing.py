"""``auditlog import``: a file through the one ingest path, with its progress on stderr.

The progress shows how much of the file is read (on disk: a gzip file's compressed bytes), the
entries a second, the time left and the counts so far; the summary goes to stdout as JSON.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from service.cli.plumbing import EXIT_FAILED, CliError, account_id, print_json, with_client
from service.cli.progress import ProgressLine, duration_text, size_text
from service.config import Settings
from service.search.client import Engine

if TYPE_CHECKING:
    from ingest.importer import ImportSummary


def _processed(summary: ImportSummary) -> int:
    return summary.created + summary.duplicates + summary.rejected + summary.failed


def _fraction(summary: ImportSummary) -> float:
    return summary.bytes_read / summary.file_bytes if summary.file_bytes else 1.0


def progress_text(summary: ImportSummary, line: ProgressLine, *, last: bool = False) -> str:
    """``42% of 33.1 MB · 5,120 entries/s · ETA 0:12 · lines ... · failed 0`` (the last: the time
    it took instead of the ETA)."""
    fraction = _fraction(summary)
    done = f"{int(fraction * 100)}% of {size_text(summary.file_bytes)}"
    if last:
        processed = _processed(summary)
        speed = f"{processed / line.elapsed():,.0f} entries/s"
        timing = f"{processed:,} entries in {duration_text(line.elapsed())} ({speed})"
    else:
        timing = line.rate_and_eta(_processed(summary), fraction, "entries")
    return f"{done} · {timing} · {summary.progress_line()}"


def cmd_import(args: argparse.Namespace) -> int:
    from ingest.importer import ImportUsageError, import_file
    from ingest.pipeline import IngestContext

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    if args.account is not None:
        account_id(args.account)
    line = ProgressLine()

    def show(summary: ImportSummary) -> None:
        line.update(_fraction(summary), progress_text(summary, line))

    async def run(es: Engine, settings: Settings) -> ImportSummary:
        return await import_file(
            replace(IngestContext.for_settings(es, settings), restoring=True),
            path,
            account=args.account,
            file_format=args.format,
            max_line_bytes=settings.max_line_bytes,
            progress=show,
        )

    try:
        summary: ImportSummary = with_client(run, ensure_setup=True)
    except ImportUsageError as e:
        line.abandon()
        raise CliError(str(e)) from e
    except CliError:
        line.abandon()
        raise
    line.finish(progress_text(summary, line, last=True))
    print_json(summary.to_dict())
    return EXIT_FAILED if summary.failed else 0
