"""File import: NDJSON or CSV files (gzip too), streamed through the one ingest path.

A file is read record by record and handed to :func:`ingest.pipeline.ingest_items` in chunks of
``AUDITLOG_BULK_BATCH_SIZE``, so validation, routing and idempotency are those of the HTTP API and
memory stays flat however large the file. Each record keeps its physical line number, which the
summary reports with the first rejections.

Re-running an import adds nothing: an entry's ``id`` is its idempotency key, and a record without
one gets ``import-<digest>-<line>``, where ``<digest>`` starts the SHA-256 of the file's
(decompressed) content. The same file therefore always yields the same ids; an edited file gives
its id-less records new ids.

CSV files use the export columns (see the README): ``id``, ``timestamp_utc`` (or ``timestamp``,
or ``timestamp_local``), ``category``, ``type``, ``actor_id``, ``actor_name``, ``actor_email``,
``actor_type``, ``action``, ``message``, known metadata keys, ``metadata_other`` (a JSON object) and
``account_id``. An empty cell is an absent value.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import orjson

from ingest import json_input
from ingest.pipeline import EntryResult, IngestContext, Item, ingest_items
from ingest.schema import INT_BOUNDS, metadata_rules
from ingest.validation import Rejected
from service.errors import EngineUnavailable
from service.search.accounts import AccountStore

FORMATS = ("ndjson", "csv")
SUFFIX_FORMATS = {".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "ndjson", ".csv": "csv"}
GZIP_MAGIC = b"\x1f\x8b"
MAX_REPORTED = 20
CHUNK_MAX_BYTES = 16 * 1024 * 1024
"""Input read per chunk at most (besides ``AUDITLOG_BULK_BATCH_SIZE`` entries): memory stays
bounded even when every line is near the 256 KB limit."""
OUTPUT_ONLY_FIELDS = ("local_time", "ingested_at", "entry_digest")
"""Fields the API adds to entries it returns: dropped so an NDJSON export imports as is."""

CSV_BASE_COLUMNS = (
    "id",
    "account_id",
    "timestamp_utc",
    "timestamp",
    "timestamp_local",
    "category",
    "type",
    "actor_id",
    "actor_name",
    "actor_email",
    "actor_type",
    "action",
    "message",
    "metadata_other",
    "entry_digest",
)
"""The columns a CSV import reads (``entry_digest``, which an export carries, is ignored: the
service computes an entry's digest itself)."""
CSV_REQUIRED_COLUMNS = ("category", "action")
SPREADSHEET_ESCAPED = re.compile(r"^'[=+\-@\t\r]")
INTEGER = re.compile(r"^[+-]?\d+$")  # "$": a cell ending in a newline is read, as int() reads it
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class ImportUsageError(Exception):
    """The import cannot start or go on: a missing file, an unknown format, account or column."""


@dataclass
class ImportSummary:
    """Counts so far, the first rejections and failures, and where an interrupted import stopped."""

    file: str
    format: str
    lines: int = 0
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    stopped_at_line: int | None = None
    file_bytes: int = 0
    """The file's size on disk (compressed, for a gzip file)."""
    bytes_read: int = 0
    """How much of the file on disk was read so far (for progress: ``bytes_read / file_bytes``)."""

    def add(self, results: list[EntryResult]) -> None:
        for result in results:
            if result.status == "created":
                self.created += 1
            elif result.status == "duplicate":
                self.duplicates += 1
            else:
                counted = self.rejections if result.status == "rejected" else self.failures
                if result.status == "rejected":
                    self.rejected += 1
                else:
                    self.failed += 1
                if len(counted) < MAX_REPORTED:
                    counted.append(
                        {
                            "line": result.line,
                            "id": result.id,
                            "field": result.field,
                            "message": result.message,
                        }
                    )

    def progress_line(self) -> str:
        return (
            f"lines {self.lines:,} · created {self.created:,} · duplicates {self.duplicates:,}"
            f" · rejected {self.rejected:,} · failed {self.failed:,}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "lines": self.lines,
            "created": self.created,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "failed": self.failed,
            "complete": self.stopped_at_line is None,
            "stopped_at_line": self.stopped_at_line,
            "rejections": self.rejections,
            "failures": self.failures,
        }


# --- the file ---------------------------------------------------------------------------------


def is_gzip(path: Path) -> bool:
    """By the ``.gz`` suffix or, failing that, the gzip magic bytes."""
    if path.suffix.lower() == ".gz":
        return True
    with path.open("rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_binary(path: Path) -> BinaryIO:
    """The file's (decompressed) bytes."""
    return cast(BinaryIO, gzip.open(path, "rb")) if is_gzip(path) else path.open("rb")


def detect_format(path: Path, explicit: str | None) -> str:
    """``explicit`` when given, else from the suffix before any ``.gz``."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise ImportUsageError(f"unknown format '{explicit}': use {' or '.join(FORMATS)}")
        return explicit
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    found = SUFFIX_FORMATS.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise ImportUsageError(f"cannot tell the format of {path.name}: give --format ndjson|csv")
    return found


def content_digest(path: Path) -> str:
    """The SHA-256 of the file's decompressed content, read in blocks."""
    digest = hashlib.sha256()
    try:
        with open_binary(path) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except (OSError, EOFError) as e:
        raise ImportUsageError(f"cannot read {path}: {e}") from e
    return digest.hexdigest()


class IdSource:
    """Deterministic ids for records without one; the file is hashed only when first needed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._digest: str | None = None

    def for_line(self, line: int) -> str:
        if self._digest is None:
            self._digest = content_digest(self.path)[:20]
        return f"import-{self._digest}-{line}"


# --- NDJSON -----------------------------------------------------------------------------------


def _physical_lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) pairs; ``None`` for a line longer than ``limit``, never held whole."""
    number = 0
    while line := stream.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            rest = line
            while rest and not rest.endswith(b"\n"):
                rest = stream.readline(1 << 20)
            yield number, None
        else:
            yield number, line


def ndjson_items(stream: BinaryIO, limit: int, ids: IdSource) -> Iterator[Item]:
    """One item per non-blank line; bad lines carry their rejection."""
    for number, line in _physical_lines(stream, limit):
        if line is None:
            yield Item(None, number, Rejected(None, f"line {number} is longer than {limit} bytes"))
            continue
        if not line.strip():
            continue
        try:
            raw = json_input.loads(line)  # as POST /v1/entries/_bulk reads a line
        except ValueError as e:  # not JSON, invalid UTF-8, an integer past 64 bits
            yield Item(None, number, Rejected(None, f"line {number}: invalid JSON: {e}"))
            continue
        if isinstance(raw, dict):
            for name in OUTPUT_ONLY_FIELDS:
                raw.pop(name, None)
            if raw.get("id") is None:
                raw["id"] = ids.for_line(number)
        yield Item(raw, number, size=len(line))


# --- CSV --------------------------------------------------------------------------------------


def _metadata_columns(templates_dir: Path) -> set[str]:
    return {key for rules in metadata_rules(templates_dir).values() for key in rules}


def check_csv_header(header: list[str], templates_dir: Path) -> None:
    known = set(CSV_BASE_COLUMNS) | _metadata_columns(templates_dir)
    unknown = [c for c in header if c not in known]
    if unknown:
        raise ImportUsageError(f"unknown CSV column '{unknown[0]}' (see the README for columns)")
    missing = [c for c in CSV_REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ImportUsageError(f"the CSV header lacks the '{missing[0]}' column")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise ImportUsageError(f"the CSV header has the column '{duplicated[0]}' twice")


def _unescape(cell: str) -> str:
    """Undo the export's spreadsheet protection: a ``'`` before ``= + - @``, tab or CR."""
    return cell[1:] if SPREADSHEET_ESCAPED.match(cell) else cell


def _typed(value: str, rule_type: str | None, field: str) -> object:
    """A numeric string as int or float where the metadata rule is numeric; else the string.
    An integer outside 64 bits is refused, as the JSON ways in refuse it."""
    if rule_type in INT_BOUNDS and INTEGER.match(value):
        return int(value)
    if rule_type == "double" and NUMBER.match(value):
        if not INTEGER.match(value):
            return float(value)
        number = int(value)
        if not -(2**63) <= number < 2**64:
            raise Rejected(field, "is an integer that does not fit in 64 bits")
        return number
    return value


def csv_row_to_entry(cells: dict[str, str], templates_dir: Path) -> dict[str, Any]:
    """An entry as the API takes it from one CSV row (empty cells are absent)."""
    row = {k: _unescape(v) for k, v in cells.items() if v != ""}
    entry: dict[str, Any] = {
        k: row[k] for k in ("id", "account_id", "category", "type", "action") if k in row
    }
    entry["message"] = row.get("message", "")
    for column in ("timestamp_utc", "timestamp", "timestamp_local"):
        if column in row:
            entry["timestamp"] = row[column]
            break
    email = row.get("actor_email")
    actor = {
        "type": row.get("actor_type", "user" if email else "system"),
        "id": row.get("actor_id"),
        "name": row.get("actor_name"),
        "email": email,
    }
    entry["actor"] = {k: v for k, v in actor.items() if v is not None}
    metadata: dict[str, Any] = {}
    if "metadata_other" in row:
        try:
            metadata = json_input.loads(row["metadata_other"])
        except ValueError as e:
            raise Rejected("metadata_other", f"is not valid JSON: {e}") from e
        if not isinstance(metadata, dict):
            raise Rejected("metadata_other", "must be a JSON object")
    category = entry.get("category")
    rules = metadata_rules(templates_dir).get(category, {}) if isinstance(category, str) else {}
    for key in _metadata_columns(templates_dir) & row.keys():
        rule = rules.get(key)
        metadata[key] = _typed(row[key], rule.type if rule else None, f"metadata.{key}")
    entry["metadata"] = metadata
    return entry


CSV_CELL_MAX = 1 << 28
"""The longest CSV cell read (the csv module's default, 128 KiB, is shorter than a cell an entry
stored under an earlier or a larger limit may fill): a longer row is rejected by its size."""


def csv_items(
    stream: BinaryIO, templates_dir: Path, ids: IdSource, max_entry_bytes: int
) -> Iterator[Item]:
    """One item per CSV record after the header; its line is where the record starts. An entry
    longer than ``max_entry_bytes`` as compact JSON is rejected, as an NDJSON line or an entry
    of a JSON body is (a cell is read whole up to :data:`CSV_CELL_MAX`)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    csv.field_size_limit(max(csv.field_size_limit(), CSV_CELL_MAX))
    reader = csv.reader(text)
    try:
        header = next(reader, None)
        if header is None:
            return
        check_csv_header(header, templates_dir)
        start = reader.line_num + 1
        for record in reader:
            line, start = start, reader.line_num + 1
            if not record or record == [""]:
                continue
            if len(record) > len(header):
                message = f"line {line} has {len(record)} cells; the header has {len(header)}"
                yield Item(None, line, Rejected(None, message))
                continue
            try:
                raw = csv_row_to_entry(dict(zip(header, record, strict=False)), templates_dir)
            except Rejected as e:
                yield Item(None, line, e)
                continue
            raw.setdefault("id", ids.for_line(line))
            yield _sized(raw, line, max_entry_bytes, size=sum(map(len, record)))
    except (csv.Error, UnicodeDecodeError) as e:
        raise ImportUsageError(f"line {reader.line_num}: unreadable CSV: {e}") from e


def _sized(raw: dict[str, Any], line: int, max_entry_bytes: int, size: int) -> Item:
    try:
        long = len(orjson.dumps(raw)) > max_entry_bytes
    except orjson.JSONEncodeError:  # nested past orjson's limit: validation names the key
        long = False
    if long:
        message = f"the entry is longer than {max_entry_bytes} bytes (as compact JSON)"
        return Item(raw, line, Rejected(None, message))  # its id is shown with the rejection
    return Item(raw, line, size=size)


# --- the import -------------------------------------------------------------------------------


class _Accounts:
    """Which account each record goes to; named accounts are looked up once."""

    def __init__(self, store: AccountStore, fixed: str | None) -> None:
        self.store, self.fixed = store, fixed
        self.known: dict[str, bool] = {}

    async def exists(self, account_id: str) -> bool:
        if account_id not in self.known:
            self.known[account_id] = await self.store.get_account(account_id) is not None
        return self.known[account_id]

    async def of(self, raw: object) -> str | Rejected:
        named = raw.get("account_id") if isinstance(raw, dict) else None
        if self.fixed is not None:
            if named is not None and named != self.fixed:
                return Rejected("account_id", f"is '{named}' but --account is '{self.fixed}'")
            return self.fixed
        if not isinstance(raw, dict):
            return ""  # validation rejects the record itself
        if named is None:
            return Rejected("account_id", "is required: give --account or an account_id field")
        if not isinstance(named, str) or not await self.exists(named):
            return Rejected("account_id", f"no account '{named}'")
        return named


async def _ingest_chunk(
    ctx: IngestContext, accounts: _Accounts, chunk: list[Item], summary: ImportSummary
) -> bool:
    """Ingest one chunk into ``summary``; False when the engine was unavailable for it."""
    account_of = {i: await accounts.of(item.raw) for i, item in enumerate(chunk)}
    available = True
    try:
        results = await ingest_items(ctx, chunk, account_of)
    except EngineUnavailable as e:
        available, message = False, f"the engine is unavailable ({e}); run the import again"
        results = [
            EntryResult(
                item.raw.get("id") if isinstance(item.raw, dict) else None,
                "failed",
                None,
                message,
                item.line,
            )
            for item in chunk
        ]
    summary.lines = chunk[-1].line or summary.lines
    summary.add(results)
    return available


async def import_file(
    ctx: IngestContext,
    path: Path,
    *,
    account: str | None = None,
    file_format: str | None = None,
    max_line_bytes: int = 256 * 1024,
    progress: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Import ``path`` chunk by chunk; stop at the first chunk the engine could not take."""
    if not path.is_file():
        raise ImportUsageError(f"no such file: {path}")
    fmt = detect_format(path, file_format)
    accounts = _Accounts(AccountStore(ctx.es, ctx.names), account)
    if account is not None and not await accounts.exists(account):
        raise ImportUsageError(
            f"no account '{account}' (create it with `auditlog accounts create`)"
        )
    summary, ids = ImportSummary(str(path), fmt, file_bytes=path.stat().st_size), IdSource(path)
    with open_binary(path) as stream:
        on_disk: BinaryIO = getattr(stream, "fileobj", stream)  # a gzip file's compressed bytes
        items = (
            ndjson_items(stream, max_line_bytes, ids)
            if fmt == "ndjson"
            else csv_items(stream, ctx.templates_dir, ids, max_line_bytes)
        )
        for chunk in _chunks(items, ctx.batch_size, CHUNK_MAX_BYTES):
            if not await _ingest_chunk(ctx, accounts, chunk, summary):
                summary.stopped_at_line = chunk[-1].line
                break
            # closed once read to the end (the CSV reader's text wrapper closes it)
            summary.bytes_read = summary.file_bytes if on_disk.closed else on_disk.tell()
            if progress is not None:
                progress(summary)
    return summary


def _chunks(items: Iterator[Item], size: int, max_bytes: int) -> Iterator[list[Item]]:
    """Lists of ``size`` items, or fewer when they took ``max_bytes`` of input."""
    chunk: list[Item] = []
    taken = 0
    try:
        for item in items:
            chunk.append(item)
            taken += item.size
            if len(chunk) >= size or taken >= max_bytes:
                yield chunk
                chunk, taken = [], 0
    except (OSError, EOFError, zlib.error) as e:  # a truncated or corrupt gzip stream
        raise ImportUsageError(f"cannot read the file further: {e}") from e
    if chunk:
        yield chunk
