"""The XLSX writer moves to a new sheet at its row limit and keeps text as text."""

from __future__ import annotations

from pathlib import Path

from openpyxl import load_workbook

from service.export.writers import EXCEL_MAX_ROWS, XlsxWriter


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
