"""The sealer's queue: each ingest batch's entries, recorded before they are written.

The ingest path records ``(index, document id)`` of every entry of a batch before it writes them,
so an entry can never be stored without the sealer learning of it (a crash in between leaves a
record of entries that do not exist: the sealer drops those once their write deadline passed).
Records are documents ``kind: queued`` in ``<prefix>-integrity``; the sealer reads them in the
order they were made and deletes each once every entry of it is sealed or given up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import AsyncElasticsearch

from service.search.engine_errors import translated
from service.search.indices import IndexNames
from service.search.writer import CLAIM_LEASE_S

WRITE_DEADLINE_S = CLAIM_LEASE_S
"""No entry of a batch is written later than this after its record (the writer's claim lease)."""


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Queued:
    record_id: str
    entries: list[tuple[str, str]]
    """``(index, document id)`` of each entry, in ingest order."""
    write_by: datetime


class SealQueue:
    def __init__(self, es: AsyncElasticsearch, names: IndexNames) -> None:
        self.es, self.index = es, names.integrity

    @translated
    async def add(self, entries: list[tuple[str, str]]) -> None:
        now = datetime.now(UTC)
        record = {
            "kind": "queued",
            "created_at": _stamp(now),
            "write_by": _stamp(now + timedelta(seconds=WRITE_DEADLINE_S)),
            "entries": [list(e) for e in entries],
        }
        await self.es.index(index=self.index, id=f"q:{uuid.uuid4().hex}", document=record)

    @translated
    async def oldest(self, limit: int) -> tuple[list[Queued], int]:
        """The oldest records, oldest first (after a refresh: every record made so far), and how
        many malformed ones were found and removed (not written by this service)."""
        await self.es.indices.refresh(index=self.index)
        resp = await self.es.search(
            index=self.index,
            query={"term": {"kind": "queued"}},
            sort=[{"created_at": "asc"}],
            size=limit,
        )
        records, malformed = [], []
        for hit in resp["hits"]["hits"]:
            record = _queued(hit)
            if record is None:
                malformed.append(hit["_id"])
            else:
                records.append(record)
        await self.remove(malformed)
        return records, len(malformed)

    @translated
    async def pending_ids(self) -> set[str]:
        """Document ids of every entry still queued (verification treats them as in flight)."""
        out: set[str] = set()
        records, _ = await self.oldest(10_000)
        for record in records:
            out |= {doc_id for _, doc_id in record.entries}
        return out

    @translated
    async def remove(self, record_ids: list[str]) -> None:
        if record_ids:
            operations = [{"delete": {"_index": self.index, "_id": r}} for r in record_ids]
            await self.es.bulk(operations=operations, refresh=True)


def _queued(hit: dict[str, Any]) -> Queued | None:
    """The record, or ``None`` when it is not one this service wrote: an entry that is not an
    ``(index, account/id)`` pair, or a write deadline beyond :data:`WRITE_DEADLINE_S`."""
    try:
        source = hit["_source"]
        created = datetime.fromisoformat(str(source["created_at"]).replace("Z", "+00:00"))
        write_by = datetime.fromisoformat(str(source["write_by"]).replace("Z", "+00:00"))
        entries = [(str(i), str(d)) for i, d in source["entries"]]
    except (KeyError, TypeError, ValueError):
        return None
    deadline_ok = write_by - created <= timedelta(seconds=WRITE_DEADLINE_S + 1)
    if not deadline_ok or any("/" not in doc_id for _, doc_id in entries):
        return None
    return Queued(hit["_id"], entries, write_by)
