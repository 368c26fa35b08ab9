"""Export writers behind one interface: CSV, XLSX (openpyxl write-only) and NDJSON.

A writer receives the column list once, then slices of rows (CSV, XLSX: shaped rows; NDJSON:
entries as the API returns them), and returns the bytes to send after each call; ``finish``
returns the tail. ``slice_rows`` is how many rows a call should take for it to last a few
milliseconds (the caller lets other requests run between two calls). CSV and NDJSON stream as
they go. XLSX is written by openpyxl's write-only workbook to a temporary file (rows never
accumulate in memory) and sent when the workbook is closed; it moves to a new sheet before
Excel's 1,048,576-row limit and ends with an ``Export info`` sheet. Every writer stores text as
text: no formula, URL or date conversion.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any, Protocol

from openpyxl import Workbook

EXCEL_MAX_ROWS = 1_048_576
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class ExportWriter(Protocol):
    media_type: str
    extension: str
    shaped: bool
    slice_rows: int

    def start(self, columns: list[str]) -> bytes: ...

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> bytes: ...

    def write_entries(self, entries: list[dict[str, Any]]) -> bytes: ...

    def finish(self, info: dict[str, Any]) -> Iterator[bytes]: ...


class CsvWriter:
    media_type = "text/csv; charset=utf-8"
    extension = "csv"
    shaped = True
    slice_rows = 500

    def start(self, columns: list[str]) -> bytes:
        return self.write_rows([columns])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        """RFC 4180 lines (CRLF; quoted only where needed); None is an empty cell."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(rows)
        return buffer.getvalue().encode()

    def write_entries(self, entries: list[dict[str, Any]]) -> bytes:
        raise NotImplementedError("CSV is written from shaped rows")

    def finish(self, info: dict[str, Any]) -> Iterator[bytes]:
        return iter(())


class NdjsonWriter:
    media_type = "application/x-ndjson"
    extension = "ndjson"
    shaped = False
    slice_rows = 500

    def start(self, columns: list[str]) -> bytes:
        return b""

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        raise NotImplementedError("NDJSON is written from entries as the API returns them")

    def write_entries(self, entries: list[dict[str, Any]]) -> bytes:
        return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode()

    def finish(self, info: dict[str, Any]) -> Iterator[bytes]:
        return iter(())


def _xlsx_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return _ILLEGAL_XML.sub("\ufffd", value)
    return value


class XlsxWriter:
    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    extension = "xlsx"
    shaped = True
    slice_rows = 50

    def __init__(self, rows_per_sheet: int = EXCEL_MAX_ROWS - 1) -> None:
        self.rows_per_sheet = rows_per_sheet
        self.workbook = Workbook(write_only=True)
        self.columns: list[str] = []
        self.sheet: Any = None
        self.sheet_rows = 0
        self.sheets = 0

    def _new_sheet(self) -> None:
        self.sheets += 1
        self.sheet = self.workbook.create_sheet(f"Entries {self.sheets}" if self.sheets > 1
                                                else "Entries")  # fmt: skip
        self.sheet.append(self.columns)
        self.sheet_rows = 0

    def start(self, columns: list[str]) -> bytes:
        self.columns = columns
        self._new_sheet()
        return b""

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        for row in rows:
            if self.sheet_rows >= self.rows_per_sheet:
                self._new_sheet()
            self.sheet.append([_xlsx_value(v) for v in row])
            self.sheet_rows += 1
        return b""

    def write_entries(self, entries: list[dict[str, Any]]) -> bytes:
        raise NotImplementedError("XLSX is written from shaped rows")

    def finish(self, info: dict[str, Any]) -> Iterator[bytes]:
        sheet = self.workbook.create_sheet("Export info")
        for key, value in info.items():
            text = value if isinstance(value, str | int | float) else json.dumps(value)
            sheet.append([key, _xlsx_value(text)])
        spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _chunks)
        self.workbook.save(spool)
        spool.seek(0)
        return _chunks(spool)


def _chunks(stream: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    try:
        while block := stream.read(size):
            yield block
    finally:
        stream.close()


WRITERS: dict[str, type[CsvWriter] | type[XlsxWriter] | type[NdjsonWriter]] = {
    "csv": CsvWriter,
    "xlsx": XlsxWriter,
    "ndjson": NdjsonWriter,
}
