"""Export writers behind one interface: CSV, XLSX (openpyxl write-only) and NDJSON.

A writer receives the column list once, then slices of rows (CSV, XLSX: shaped rows; NDJSON:
entries as the API returns them), and returns the bytes to send after each call; ``finish``
returns the tail. ``slice_rows`` is how many rows a call should take for it to last a few
milliseconds (the caller lets other requests run between two calls). CSV and NDJSON stream as
they go; a CSV file may start with a UTF-8 byte-order mark (``bom``: Excel then reads it as
UTF-8; off by default, so the API's files stay as they were). XLSX is written by openpyxl's
write-only workbook to a temporary file (rows never accumulate in memory) and sent when the
workbook is closed; it moves to a new sheet before Excel's 1,048,576-row limit and ends with an
``Export info`` sheet. Its entry sheets are laid out for people (:mod:`.sheet_layout`: frozen
header, autofilter, column widths) and end with the entry's time as real date-times. Every writer
stores text as text: no formula, URL or date conversion.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

import orjson
from openpyxl import Workbook

from service.export.sheet_layout import (
    INFO_WIDTHS,
    TIME_COLUMNS,
    TimeCells,
    close_filter,
    header_cells,
    lay_out,
    set_widths,
    time_sources,
)

EXCEL_MAX_ROWS = 1_048_576
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class CsvWriter:
    """RFC 4180 lines (CRLF; a cell quoted only where needed), as the standard library's C writer
    writes them; None is an empty cell. A cell holding ``;`` is quoted too, so that a spreadsheet
    whose locale separates with semicolons never splits it into cells (one of which could start
    a formula).

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

    def __init__(self, bom: bool = False) -> None:
        self.bom = bom
        self.width = 0
        self.free: tuple[int, int] | None = None
        self.lines = _Lines()
        self.standard = csv.writer(self.lines, lineterminator="\r\n")

    def start(self, columns: list[str]) -> bytes:
        self.width = len(columns)
        free = [i for i, name in enumerate(columns) if name in FREE_TEXT_COLUMNS]
        self.free = (free[0], free[1]) if len(free) == 2 else None
        return (UTF8_BOM if self.bom else b"") + self.write_rows([columns])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        lines, standard = self.lines, self.standard
        lines.clear()  # whatever a call that failed half-way left
        if self.free is None:
            for row in rows:
                _write_row(standard, lines, row)
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
                    if (
                        line.count(",") == commas
                        and line.count(_MARK) == 2
                        and '"' not in line
                        and "\n" not in line
                        and "\r" not in line
                        and ";" not in line
                        and type(one) is str
                        and type(two) is str
                    ):
                        head, middle, tail = line.split(_MARK)
                        lines.append(head + _quoted(one) + middle + _quoted(two) + tail)
                        continue
                _write_row(standard, lines, row)
        lines.append("")  # the last line's terminator
        text = "\r\n".join(lines)
        lines.clear()
        return text.encode()

    def write_entries(self, entries: list[dict[str, Any]]) -> bytes:
        raise NotImplementedError("CSV is written from shaped rows")

    def finish(self, info: dict[str, Any]) -> Iterator[bytes]:
        return iter(())


UTF8_BOM = b"\xef\xbb\xbf"
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
    """A cell quoted as the standard writer quotes it (only when it must be), and when it holds
    a semicolon."""
    if "," in value or '"' in value or "\n" in value or "\r" in value or ";" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _write_row(standard: Any, lines: _Lines, row: Sequence[Any]) -> None:
    """One row by the standard writer; by :func:`_quoted` when a cell holds a semicolon (which
    the standard writer would leave bare)."""
    if any(type(cell) is str and ";" in cell for cell in row):
        lines.append(",".join(_quoted("" if cell is None else str(cell)) for cell in row))
    else:
        standard.writerow(row)


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
        """One compact JSON line per entry (orjson; an integer beyond 64 bits, which it does not
        write, through the standard library)."""
        try:
            return b"".join([orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in entries])
        except TypeError:
            return "".join(_line(e) for e in entries).encode()

    def finish(self, info: dict[str, Any]) -> Iterator[bytes]:
        return iter(())


def _line(entry: dict[str, Any]) -> str:
    try:
        return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE).decode()
    except TypeError:
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


EXCEL_MAX_CELL = 32_767
"""The most text a cell holds, in UTF-16 code units (Excel counts them, not characters)."""
CUT_NOTE = (
    "Cells longer than Excel's limit of 32,767 characters are cut; each ends with a marker "
    "saying how many characters were cut. CSV and NDJSON exports carry every value whole."
)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut_marker(count: int) -> str:
    return (
        f" [… {count:,} characters cut: Excel's cell limit; CSV and NDJSON carry the whole value]"
    )


def cut_to_cell(text: str) -> tuple[str, int]:
    """``text`` as a cell holds it, and how many characters were cut (0: it fits whole). A cut
    text ends with :func:`_cut_marker`, inside the limit, never splitting a surrogate pair."""
    if len(text) * 2 <= EXCEL_MAX_CELL or _utf16_units(text) <= EXCEL_MAX_CELL:
        return text, 0
    room = EXCEL_MAX_CELL - _utf16_units(_cut_marker(len(text)))  # the longest marker it can need
    units = text.encode("utf-16-le")[: 2 * room]
    if 0xD800 <= int.from_bytes(units[-2:], "little") <= 0xDBFF:  # half a pair
        units = units[:-2]
    kept = units.decode("utf-16-le")
    cut = len(text) - len(kept)
    return kept + _cut_marker(cut), cut


EXACT_IN_EXCEL = 2**53
"""Excel keeps numbers as doubles: an integer beyond this is written as text, digit for digit."""


def _xlsx_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return _ILLEGAL_XML.sub("\ufffd", value)
    if type(value) is int and not -EXACT_IN_EXCEL <= value <= EXACT_IN_EXCEL:
        return str(value)
    return value


class XlsxWriter:
    """Entry sheets of at most ``rows_per_sheet`` rows: the columns given to :meth:`start`, then
    (when they hold ``timestamp_local`` and ``timestamp_utc``) :data:`TIME_COLUMNS`, the entry's
    time as Excel date-times, wall time in ``zone_name`` (the export's timezone) and UTC."""

    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    extension = "xlsx"
    shaped = True
    text_cells = False
    slice_rows = 50

    def __init__(self, rows_per_sheet: int = EXCEL_MAX_ROWS - 1, zone_name: str = "UTC") -> None:
        self.rows_per_sheet = rows_per_sheet
        self.zone_name = zone_name
        self.workbook = Workbook(write_only=True)
        self.columns: list[str] = []
        self.header: list[str] = []
        self.times: tuple[int, int] | None = None
        self.time_cells: TimeCells | None = None
        self.sheet: Any = None
        self.sheet_rows = 0
        self.sheets = 0
        self.cut_cells = 0

    def _new_sheet(self) -> None:
        self._close_sheet()
        self.sheets += 1
        self.sheet = self.workbook.create_sheet(
            f"Entries {self.sheets}" if self.sheets > 1 else "Entries"
        )
        lay_out(self.sheet, self.header)  # before the first row: written with it
        self.sheet.append(header_cells(self.sheet, self.header, self.zone_name))
        self.time_cells = TimeCells(self.sheet) if self.times else None
        self.sheet_rows = 0

    def _close_sheet(self) -> None:
        if self.sheet is not None:
            close_filter(self.sheet, len(self.header), self.sheet_rows)

    def start(self, columns: list[str]) -> bytes:
        self.columns = columns
        self.times = time_sources(columns)
        self.header = [*columns, *TIME_COLUMNS] if self.times else list(columns)
        self._new_sheet()
        return b""

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        times = self.times
        for row in rows:
            if self.sheet_rows >= self.rows_per_sheet:
                self._new_sheet()
            cells = [_xlsx_value(v) for v in row]
            for i, cell in enumerate(cells):
                if type(cell) is str and len(cell) * 2 > EXCEL_MAX_CELL:
                    cells[i], cut = cut_to_cell(cell)
                    self.cut_cells += bool(cut)
            if times is not None and self.time_cells is not None:
                cells += self.time_cells.of(row[times[0]], row[times[1]])
            self.sheet.append(cells)
            self.sheet_rows += 1
        return b""

    def write_entries(self, entries: list[dict[str, Any]]) -> bytes:
        raise NotImplementedError("XLSX is written from shaped rows")

    def finish(self, info: dict[str, Any]) -> Iterator[bytes]:
        self._close_sheet()
        sheet = self.workbook.create_sheet("Export info")
        set_widths(sheet, INFO_WIDTHS)
        info = {**info, "cut cells": self.cut_cells}
        if self.cut_cells:
            info["cut cells note"] = CUT_NOTE
        for key, value in info.items():
            text = value if isinstance(value, str | int | float) else json.dumps(value)
            sheet.append(
                [key, cut_to_cell(_xlsx_value(text))[0] if isinstance(text, str) else text]
            )
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


def writer_for(
    fmt: str, *, bom: bool = False, zone_name: str = "UTC"
) -> CsvWriter | XlsxWriter | NdjsonWriter:
    """A writer of ``fmt``: a CSV one starts with a byte-order mark when ``bom``; an XLSX one
    names ``zone_name`` as its local date-times' timezone."""
    if fmt == "csv":
        return CsvWriter(bom=bom)
    if fmt == "xlsx":
        return XlsxWriter(zone_name=zone_name)
    return WRITERS[fmt]()
