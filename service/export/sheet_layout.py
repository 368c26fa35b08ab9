"""How an XLSX export's entry sheets look and what Excel can compute with, in write-only mode.

Every entry sheet has a bold header row that stays in view (frozen panes), an autofilter over its
header and rows, and column widths that suit the columns (the message wide, ids medium). The
contract's text columns are kept exactly; two columns follow them, :data:`TIME_COLUMNS`: the
entry's time as a real Excel date-time (sortable, filterable by date, usable in formulas), as wall
time in the export's timezone and in UTC, shown as :data:`DATETIME_FORMAT`. Excel date-times
carry no timezone: the header cells' comments say which one each column is in.

openpyxl's write-only sheets write their top (views, column widths) with the first row and their
tail (the autofilter) when the workbook is saved: :func:`lay_out` runs before the header row,
:func:`close_filter` once the sheet's last row is in. Neither holds rows in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.comments import Comment
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

TIME_COLUMNS = ("datetime_local", "datetime_utc")
"""Headers of the date-time columns, after the contract's columns."""
TIME_SOURCES = ("timestamp_local", "timestamp_utc")
"""The text columns each date-time is read from (same instant, same wall time)."""
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
WIDTHS = {
    "id": 26,
    "timestamp_local": 30,
    "timestamp_utc": 26,
    "category": 12,
    "type": 9,
    "actor_id": 22,
    "actor_name": 22,
    "actor_email": 30,
    "action": 30,
    "message": 80,
    "url": 40,
    "metadata_other": 40,
    "entry_digest": 24,
    "datetime_local": 24,
    "datetime_utc": 24,
}
"""Column widths in characters; other columns (metadata keys) take :data:`DEFAULT_WIDTH`."""
DEFAULT_WIDTH = 16
INFO_WIDTHS = (22, 100)
"""The ``Export info`` sheet: its names, its values."""
_BOLD = Font(bold=True)


def time_sources(columns: Sequence[str]) -> tuple[int, int] | None:
    """Where the date-times' text columns are among ``columns`` (None: no date-time columns)."""
    if not all(name in columns for name in TIME_SOURCES):
        return None
    local, utc = (list(columns).index(name) for name in TIME_SOURCES)
    return local, utc


def set_widths(sheet: Any, widths: Sequence[float]) -> None:
    """Column widths in characters, from the first column, of a new write-only ``sheet``."""
    for n, width in enumerate(widths, 1):
        sheet.column_dimensions[get_column_letter(n)].width = width


def lay_out(sheet: Any, header: Sequence[str]) -> None:
    """Column widths by name and the frozen header row of a new, empty write-only ``sheet``."""
    set_widths(sheet, [WIDTHS.get(name, DEFAULT_WIDTH) for name in header])
    sheet.freeze_panes = "A2"


def header_cells(sheet: Any, header: Sequence[str], zone_name: str) -> list[Cell]:
    """The header row: bold names; the date-time columns' cells say their timezone."""
    notes = {
        TIME_COLUMNS[0]: f"Excel date-time: the entry's time as wall time in {zone_name} "
        "(the same instant as timestamp_local).",
        TIME_COLUMNS[1]: "Excel date-time: the entry's time in UTC (the same instant as "
        "timestamp_utc).",
    }
    cells = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = _BOLD
        if name in notes:
            cell.comment = Comment(notes[name], "auditlog", width=260, height=70)
        cells.append(cell)
    return cells


def close_filter(sheet: Any, width: int, rows: int) -> None:
    """The autofilter over the header and the ``rows`` written below it."""
    sheet.auto_filter.ref = f"A1:{get_column_letter(width)}{rows + 1}"


class TimeCells:
    """The date-time cells of a row, from its ``timestamp_local`` and ``timestamp_utc`` text.

    The same two styled cells serve every row: a write-only sheet writes a row's cells out as
    soon as it is appended, so a cell can take the next row's value afterwards.
    """

    def __init__(self, sheet: Any) -> None:
        self.local = WriteOnlyCell(sheet)
        self.utc = WriteOnlyCell(sheet)
        self.local.number_format = self.utc.number_format = DATETIME_FORMAT

    def of(self, local_text: str, utc_text: str) -> tuple[Cell, Cell]:
        """``2026-11-26T05:15:00.123-05:00`` → 2026-11-26 05:15:00.123 (its wall time), and
        ``2026-11-26T10:15:00.123Z`` → 2026-11-26 10:15:00.123."""
        self.local.value = datetime.fromisoformat(local_text).replace(tzinfo=None)
        self.utc.value = datetime.fromisoformat(utc_text).replace(tzinfo=None)
        return self.local, self.utc
