"""Checking an export file against its signed manifest, offline (``auditlog verify-export``).

Without the service: the manifest's signature and its head's under the public keys given, and the
file's SHA-256 and size against the manifest. A file that differs is read to say how: rows removed
or added (the row count), a cell changed (every row's ``entry_digest`` as exported), or digests
changed; an NDJSON row's content is also checked against its own ``entry_digest``.

With proofs (fetched from the service's ``/v1/integrity/proof?ids=``, 100 rows a request): every
row's id and ``entry_digest`` must be a leaf of the account's log, its audit path leading to the
root of the manifest's head — the signed head in the manifest, not one the service answers now.
"""

from __future__ import annotations

import csv
import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service.integrity.canonical import entry_digest
from service.integrity.checkpoints import leaf_hash_of
from service.integrity.keys import key_id
from service.integrity.manifests import RowDigests, manifest_problems
from service.integrity.merkle import ProofError, verify_inclusion

PROOF_BATCH = 100
SHOWN = 20
"""Rows named per kind of problem (all are counted)."""


class VerifyExportError(Exception):
    """The files or keys cannot be read, or the service cannot be asked (not a verdict)."""


class NoSuchHead(Exception):
    """The service has no checkpoint of the manifest's head's size (a verdict: the log changed)."""


@dataclass
class Row:
    number: int
    """1 for the first row after the header."""
    id: str
    digest: str
    content_digest: str | None = None
    """NDJSON only: the digest recomputed from the row's own fields."""


@dataclass
class ExportReport:
    ok: bool = True
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    proofs_checked: int = 0

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows, "problems": self.problems,
                "warnings": self.warnings, "proofs_checked": self.proofs_checked}  # fmt: skip


def load_public_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    """Key id → public key, from a PEM public key or the JSON of ``/v1/integrity/keys``."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise VerifyExportError(f"cannot read {path}: {e}") from e
    pems: list[bytes] = []
    if data.lstrip().startswith(b"{"):
        try:
            pems = [k["public_key_pem"].encode() for k in json.loads(data)["keys"]]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise VerifyExportError(f"{path}: not the JSON of /v1/integrity/keys") from e
    else:
        pems = [data]
    keys: dict[str, Ed25519PublicKey] = {}
    for pem in pems:
        try:
            public = serialization.load_pem_public_key(pem)
        except ValueError as e:
            raise VerifyExportError(f"{path}: not a PEM public key") from e
        if not isinstance(public, Ed25519PublicKey):
            raise VerifyExportError(f"{path}: not an Ed25519 public key")
        keys[key_id(public)] = public
    return keys


CSV_CELL_MAX = 1 << 28
"""The longest CSV cell read (the standard library's default, 128 KiB, is shorter than a cell an
entry may fill: its message and metadata are bounded by the body size)."""


def read_rows(path: Path, fmt: str) -> Iterator[Row]:
    """The file's rows (id and entry digest), in order; :class:`ValueError` when the file is not
    an export of ``fmt``."""
    if fmt == "ndjson":
        yield from _ndjson_rows(path)
    elif fmt == "csv":
        csv.field_size_limit(CSV_CELL_MAX)
        with path.open(encoding="utf-8-sig", newline="") as text:
            yield from _table_rows(csv.reader(text))
    elif fmt == "xlsx":
        yield from _xlsx_rows(path)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _ndjson_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as lines:
        for n, line in enumerate(lines, 1):
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("entry_digest"), str):
                raise ValueError(f"line {n} is not an exported entry")
            yield Row(n, str(entry.get("id")), entry["entry_digest"], entry_digest(entry))


def _table_rows(rows: Iterator[list[Any]], numbered_from: int = 1) -> Iterator[Row]:
    header = next(rows, None)
    if header is None or "id" not in header or "entry_digest" not in header:
        raise ValueError("no header row with id and entry_digest")
    at_id, at_digest = header.index("id"), header.index("entry_digest")
    for n, cells in enumerate(rows, numbered_from):
        if len(cells) <= max(at_id, at_digest):
            raise ValueError(f"row {n} has too few cells")
        yield Row(n, _unguarded(str(cells[at_id] or "")), str(cells[at_digest] or ""))


def _unguarded(text: str) -> str:
    """An id as written in a cell: a formula-like one has a leading apostrophe."""
    return text[1:] if text[:2] in ("'=", "'+", "'-", "'@", "'\t", "'\r") else text


def _xlsx_rows(path: Path) -> Iterator[Row]:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        count = 0
        sheets = [s for s in book.sheetnames if s == "Entries" or s.startswith("Entries ")]
        for name in sheets:
            cells = ([("" if v is None else v) for v in row]
                     for row in book[name].iter_rows(values_only=True))  # fmt: skip
            for row in _table_rows(cells, count + 1):
                count = row.number
                yield row
    finally:
        book.close()


def verify_export(
    file: Path,
    manifest: Any,
    public: dict[str, Ed25519PublicKey],
    fetch_proofs: Callable[[list[str], int], dict[str, Any]] | None = None,
) -> ExportReport:
    """The verdict on ``file`` against ``manifest``; with ``fetch_proofs`` (ids, tree size →
    the answer of ``/v1/integrity/proof?ids=``), every row is proven in the account's log."""
    report = ExportReport()
    for problem in manifest_problems(manifest, public):
        report.fail(problem)
    if not report.ok:
        return report  # nothing the manifest says can be relied on
    digest, size = hashlib.sha256(), 0
    with file.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
            size += len(block)
    try:
        rows = list(read_rows(file, manifest["format"]))
    except Exception as e:  # bad text, CSV, JSON, or a zip or XML openpyxl cannot open
        report.fail(f"the file cannot be read as {manifest['format'].upper()}: {e}")
        return report
    report.rows = len(rows)
    if digest.hexdigest() != manifest["file_sha256"] or size != manifest["file_bytes"]:
        report.fail("the file is not the one exported: its SHA-256 differs from the manifest's")
        _explain(report, rows, manifest)
    elif manifest["rows_unsealed"]:
        report.warnings.append(f"{manifest['rows_unsealed']} rows were not sealed yet when the "
                               "manifest was signed: they are not proven by its head")  # fmt: skip
    if manifest["head"] is None:
        report.warnings.append("the manifest has no head: no row is proven in the account's log")
    elif fetch_proofs is not None and report.ok:
        _prove(report, rows, manifest, fetch_proofs)
    return report


def _explain(report: ExportReport, rows: list[Row], manifest: dict[str, Any]) -> None:
    """How the file differs from the export, as far as its rows tell."""
    expected = int(manifest["rows"])
    if len(rows) != expected:
        change = "removed" if len(rows) < expected else "added"
        report.fail(f"{_rows(abs(expected - len(rows)))} {change}: the file has {len(rows)} "
                    f"rows, the export had {expected}")  # fmt: skip
    digests = RowDigests()
    digests.add(r.digest for r in rows)
    if len(rows) == expected and digests.hexdigest() == manifest["rows_sha256"]:
        report.fail("a cell was changed: every row and its entry_digest are as exported")
    elif len(rows) == expected:
        report.fail("rows' entry_digest values were changed, or rows replaced or reordered")
    changed = [r for r in rows if r.content_digest is not None and r.content_digest != r.digest]
    for row in changed[:SHOWN]:
        report.fail(f"row {row.number} (id {row.id}): its content does not match its entry_digest")


def _rows(count: int) -> str:
    return "1 row was" if count == 1 else f"{count} rows were"


def _prove(
    report: ExportReport,
    rows: list[Row],
    manifest: dict[str, Any],
    fetch_proofs: Callable[[list[str], int], dict[str, Any]],
) -> None:
    head = manifest["head"]
    size, root = int(head["tree_size"]), bytes.fromhex(head["root"])
    failed = 0
    for start in range(0, len(rows), PROOF_BATCH):
        batch = rows[start : start + PROOF_BATCH]
        try:
            answer = fetch_proofs([r.id for r in batch], size)
        except NoSuchHead:
            report.fail(f"the service has no checkpoint of tree size {size}, the manifest's "
                        "head: the account's log was cut or rewritten")  # fmt: skip
            return
        listed = answer.get("proofs") if isinstance(answer, dict) else None
        if not isinstance(listed, list):
            report.fail("the service answered no proofs")
            return
        proofs = {p.get("id"): p for p in listed if isinstance(p, dict)}
        for row in batch:
            why = _unproven(row, proofs.get(row.id), size, root)
            report.proofs_checked += 1
            if why is not None:
                failed += 1
                if failed <= SHOWN:
                    report.fail(f"row {row.number} (id {row.id}): {why}")
    if failed > SHOWN:
        report.fail(f"{failed - SHOWN} more rows are not proven in the account's log")


def _unproven(row: Row, proof: dict[str, Any] | None, size: int, root: bytes) -> str | None:
    """Why the row is not proven under the head (``None`` when it is)."""
    if proof is None or "error" in proof:
        return "it is not in the account's log under the manifest's head"
    leaf = proof.get("leaf") or {}
    if leaf.get("id") != row.id or leaf.get("digest") != row.digest:
        return "its entry_digest is not the one sealed in the account's log"
    try:
        path = [bytes.fromhex(h) for h in proof["proof"]]
        verify_inclusion(int(proof["position"]), size, leaf_hash_of(leaf), path, root)
    except (ProofError, KeyError, TypeError, ValueError):
        return "its inclusion proof does not lead to the manifest's head"
    return None


def fetch_proofs_from(
    url: str, api_key: str, account_id: str
) -> Callable[[list[str], int], dict[str, Any]]:
    """Proofs from the service at ``url`` (``/v1/integrity/proof?ids=``) with ``api_key``."""

    def fetch(ids: list[str], size: int) -> dict[str, Any]:
        query = urllib.parse.urlencode({"ids": ",".join(ids), "tree_size": size,
                                        "account_id": account_id})  # fmt: skip
        request = urllib.request.Request(
            f"{url.rstrip('/')}/v1/integrity/proof?{query}",
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                answer: dict[str, Any] = json.load(response)
                return answer
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            if e.code == 404 and '"tree_size"' in detail:
                raise NoSuchHead(detail) from e
            raise VerifyExportError(f"the service answered {e.code}: {detail}") from e
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise VerifyExportError(f"cannot fetch proofs from {url}: {e}") from e

    return fetch
