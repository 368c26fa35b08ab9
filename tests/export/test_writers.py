"""The XLSX writer moves to a new sheet at its row limit and keeps text as text; the CSV writer
writes exactly what the standard library's writer writes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from service.export.writers import EXCEL_MAX_ROWS, CsvWriter, NdjsonWriter, XlsxWriter

TRICKY = st.text(alphabet=st.sampled_from("ab ,\"\r\n\x00'=;é\t"), max_size=8)
CELL = st.one_of(TRICKY, TRICKY, TRICKY, st.none(), st.integers(), st.floats(), st.booleans())


def standard_csv(rows: list[list[Any]]) -> bytes:
    """What the standard writer writes, but for a cell holding ``;``, which it quotes too."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        if any(isinstance(cell, str) and ";" in cell for cell in row):
            buffer.write(",".join(_standard_cell(cell) for cell in row) + "\r\n")
        else:
            writer.writerow(row)
    return buffer.getvalue().encode()


def _standard_cell(cell: Any) -> str:
    """One cell as the standard writer writes it (all quoted when it holds ``;``)."""
    if cell is None or cell == "":
        return ""
    buffer = io.StringIO()
    quoting = csv.QUOTE_ALL if isinstance(cell, str) and ";" in cell else csv.QUOTE_MINIMAL
    csv.writer(buffer, lineterminator="\r\n", quoting=quoting).writerow([cell])
    return buffer.getvalue()[:-2]


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[Any]]]:
    """Columns (mostly with both free-text columns, as exports have) and rows, mostly of their
    width and of text cells (the writer's fast way), sometimes not."""
    names = ["message", "metadata_other"] if draw(st.integers(0, 4)) else []
    columns = draw(st.permutations([*names, *draw(st.lists(st.sampled_from(["id", "x"])))]))
    if not columns:
        columns = ["id"]
    width = st.just(len(columns)) if draw(st.integers(0, 4)) else st.integers(0, 7)
    cells = TRICKY if draw(st.booleans()) else CELL
    rows = draw(st.lists(width.flatmap(lambda n: st.lists(cells, min_size=n, max_size=n)),
                         max_size=6))  # fmt: skip
    return columns, rows


@settings(max_examples=500, deadline=None)
@given(tables())
def test_csv_is_what_the_standard_writer_writes(table: tuple[list[str], list[list[Any]]]) -> None:
    columns, rows = table
    writer = CsvWriter()
    written = writer.start(columns) + writer.write_rows(rows) + writer.write_rows(rows[:2])
    assert written == standard_csv([columns, *rows, *rows[:2]])


def test_csv_rows_of_text_keep_their_cells_and_quote_only_free_text() -> None:
    columns = ["id", "message", "n", "metadata_other"]
    writer = CsvWriter()
    rows = [["e1", 'said "hi", left', "", '{"a":1}'], ["e2", "plain", "3", ""]]
    out = writer.start(columns) + writer.write_rows(rows)
    assert out == (b'id,message,n,metadata_other\r\ne1,"said ""hi"", left",,"{""a"":1}"\r\n'
                   b"e2,plain,3,\r\n")  # fmt: skip
    assert rows[0] == ["e1", 'said "hi", left', "", '{"a":1}']  # the caller's rows unchanged


def test_default_sheet_limit_is_excels_minus_the_header() -> None:
    assert XlsxWriter().rows_per_sheet == EXCEL_MAX_ROWS - 1 == 1_048_575


def test_rollover_to_new_sheets_with_headers(tmp_path: Path) -> None:
    writer = XlsxWriter(rows_per_sheet=10)
    writer.start(["n", "text"])
    for numbers in (range(0, 12), range(12, 25)):
        writer.write_rows([(n, "https://x.test/?q=1") for n in numbers])
    path = tmp_path / "out.xlsx"
    path.write_bytes(b"".join(writer.finish({"row count": 25})))
    book = load_workbook(path, read_only=True)
    assert book.sheetnames == ["Entries", "Entries 2", "Entries 3", "Export info"]
    sheets = [list(book[name].iter_rows(values_only=True)) for name in book.sheetnames[:3]]
    assert [len(rows) - 1 for rows in sheets] == [10, 10, 5]
    assert all(rows[0] == ("n", "text") for rows in sheets)
    numbers = [row[0] for rows in sheets for row in rows[1:]]
    assert numbers == list(range(25))
    assert sheets[0][1][1] == "https://x.test/?q=1"


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("no text")


def test_a_csv_call_that_failed_half_way_leaves_nothing_for_the_next() -> None:
    writer = CsvWriter()
    writer.start(["id", "message", "n", "metadata_other"])
    with pytest.raises(ValueError, match="no text"):
        writer.write_rows([["a", "m", "1", "o"], ["b", "m", Unprintable(), "o"]])
    assert writer.write_rows([["c", "m", "2", "o"]]) == b"c,m,2,o\r\n"


def test_ndjson_lines_are_compact_and_carry_integers_beyond_64_bits_whole() -> None:
    entries = [{"id": "a", "metadata": {"n": 1.5, "s": "é"}},
               {"id": "b", "metadata_other": {"big": 2**70, "neg": -(2**65)}}]  # fmt: skip
    lines = NdjsonWriter().write_entries(entries).decode().splitlines()
    assert lines[0] == '{"id":"a","metadata":{"n":1.5,"s":"é"}}'
    assert [json.loads(line) for line in lines] == entries


def test_integers_excel_cannot_hold_exactly_are_written_as_their_digits(tmp_path: Path) -> None:
    """Excel keeps numbers as doubles: 2**53 + 1 would be stored as 2**53, 2**64 - 1 as
    1.8446744073709552e19."""
    exact = [2**53, -(2**53), 2**53 + 1, 2**64 - 1, -(2**63), 9223372036854775807]
    writer = XlsxWriter()
    writer.start(["n"])
    writer.write_rows([(n,) for n in exact])
    path = tmp_path / "out.xlsx"
    path.write_bytes(b"".join(writer.finish({})))
    sheet = load_workbook(path)["Entries"]
    cells = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert cells == [2**53, -(2**53), "9007199254740993", "18446744073709551615",
                     "-9223372036854775808", "9223372036854775807"]  # fmt: skip
