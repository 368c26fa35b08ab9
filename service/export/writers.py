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
    text_cells: bool
    """Wants rows of text cells (``RowShaper(text=True)``)."""
    slice_rows: int

    def start(self, columns: list[str]) -> bytes: ...

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> bytes: ...

    def write_entries(self, entries: list[dict[str, Any]]) -> bytes: ...

    def finish(self, info: dict[str, Any]) -> Iterator[bytes]: ...


class CsvWriter:
    """RFC 4180 lines (CRLF; a cell quoted only where needed), exactly as the standard library's
    C writer writes them; None is an empty cell.

    Rows of text cells take a faster way (most export rows): the row joined with commas, its
    free-text cells (``message``, ``metadata_other``: commas and quotes are common there) left
    out and quoted on their own. A row where any other cell would need quoting, or a cell is
    not text, goes through the standard writer.
    """

    media_type = "text/csv; charset=utf-8"
    extension = "csv"
    shaped = True
    text_cells = True
    slice_rows = 500

    def __init__(self) -> None:
        self.width = 0
        self.free: tuple[int, int] | None = None
        self.lines = _Lines()
        self.standard = csv.writer(self.lines, lineterminator="\r\n")

    def start(self, columns: list[str]) -> bytes:
        self.width = len(columns)
        free = [i for i, name in enumerate(columns) if name in FREE_TEXT_COLUMNS]
        self.free = (free[0], free[1]) if len(free) == 2 else None
        return self.write_rows([columns])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        lines, standard = self.lines, self.standard
        lines.clear()  # whatever a call that failed half-way left
        if self.free is None:
            standard.writerows(rows)  # one line each
        else:
            first, second = self.free
            commas = self.width - 1
            for row in rows:
                if type(row) is list and len(row) == self.width:
                    one, two = row[first], row[second]
                    row[first] = row[second] = _MARK
                    try:
                        line = ",".join(row)
                    except TypeError:  # not all text
                        line = ""
                    row[first], row[second] = one, two
                    if (line.count(",") == commas and line.count(_MARK) == 2 and '"' not in line
                            and "\n" not in line and "\r" not in line
                            and type(one) is str and type(two) is str):  # fmt: skip
                        head, middle, tail = line.split(_MARK)
                        lines.append(head + _quoted(one) + middle + _quoted(two) + tail)
                        continue
                standard.writerow(row)
        lines.append("")  # the last line's terminator
        text = "\r\n".join(lines)
        lines.clear()
        return text.encode()

    def write_entries(self, entries: list[dict[str, Any]]) -> bytes:
        raise NotImplementedError("CSV is written from shaped rows")

    def finish(self, info: dict[str, Any]) -> Iterator[bytes]:
        return iter(())


FREE_TEXT_COLUMNS = frozenset({"message", "metadata_other"})
_MARK = "\x00"
"""Stands for a free-text cell in the joined row (a row with it anywhere else takes the
standard writer)."""


class _Lines(list[str]):
    """A file for ``csv.writer``: keeps each line it writes, without the terminator (which must
    be the real one: the writer quotes a cell holding one of its characters)."""

    def write(self, line: str) -> None:
        self.append(line[:-2])


def _quoted(value: str) -> str:
    """A cell quoted as the standard writer quotes it (only when it must be)."""
    if "," in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


class NdjsonWriter:
    media_type = "application/x-ndjson"
    extension = "ndjson"
    shaped = False
    text_cells = False
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
    text_cells = False
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
