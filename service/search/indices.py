"""Index, alias, template and policy names: built here and nowhere else.

Entries are partitioned by their own timestamp (UTC): monthly indices per kept category
(``<prefix>-<category>-YYYY.MM``) and daily indices for ``integration``
(``<prefix>-integration-YYYY.MM.DD``), all behind one read alias ``<prefix>-entries``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from service.vocabulary import EXPIRING_CATEGORIES


@dataclass(frozen=True)
class IndexNames:
    prefix: str

    @property
    def entries_alias(self) -> str:
        return f"{self.prefix}-entries"

    @property
    def accounts(self) -> str:
        return f"{self.prefix}-accounts"

    @property
    def keys(self) -> str:
        return f"{self.prefix}-keys"

    @property
    def entry_ids(self) -> str:
        return f"{self.prefix}-entry-ids"

    @property
    def export_jobs(self) -> str:
        return f"{self.prefix}-export-jobs"

    @property
    def export_files(self) -> str:
        return f"{self.prefix}-export-files"

    @property
    def export_manifests(self) -> str:
        return f"{self.prefix}-export-manifests"

    @property
    def integrity(self) -> str:
        return f"{self.prefix}-integrity"

    @property
    def seal_queue(self) -> str:
        return f"{self.prefix}-seal-queue"

    @property
    def state(self) -> str:
        return f"{self.prefix}-state"

    @property
    def destinations(self) -> str:
        return f"{self.prefix}-destinations"

    def resource(self, file_stem: str) -> str:
        """The engine name of a template or policy defined in the file ``<file_stem>.json``."""
        return f"{self.prefix}-{file_stem}"

    def category_pattern(self, category: str) -> str:
        return f"{self.prefix}-{category}-*"

    def entry_index_for(self, category: str, timestamp: datetime) -> str:
        """The index an entry of ``category`` at ``timestamp`` is written to."""
        ts = timestamp.astimezone(UTC)
        if category in EXPIRING_CATEGORIES:
            return f"{self.prefix}-{category}-{ts.year:04d}.{ts.month:02d}.{ts.day:02d}"
        return f"{self.prefix}-{category}-{ts.year:04d}.{ts.month:02d}"

    def entry_index_for_stamp(self, category: str, stamp: str) -> str:
        """:meth:`entry_index_for`, read from the text of a stored timestamp (always UTC:
        ``YYYY-MM-DDTHH:MM:SS.mmmZ``) without a date-time object."""
        if category in EXPIRING_CATEGORIES:
            return f"{self.prefix}-{category}-{stamp[:4]}.{stamp[5:7]}.{stamp[8:10]}"
        return f"{self.prefix}-{category}-{stamp[:4]}.{stamp[5:7]}"

    def daily_index_date(self, category: str, index: str) -> date | None:
        """The date in a daily index's name, or None when ``index`` is not one of its family."""
        head = f"{self.prefix}-{category}-"
        if not index.startswith(head):
            return None
        try:
            return datetime.strptime(index[len(head) :], "%Y.%m.%d").date()
        except ValueError:
            return None

    def system_indices(self) -> tuple[str, ...]:
        return (
            self.accounts,
            self.keys,
            self.entry_ids,
            self.export_jobs,
            self.export_files,
            self.export_manifests,
            self.state,
            self.integrity,
            self.seal_queue,
            self.destinations,
        )
