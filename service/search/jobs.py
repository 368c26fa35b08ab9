"""Export jobs as documents in ``<prefix>-export-jobs``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from service.search.engine_errors import translated
from service.search.indices import IndexNames

JOB_ID = re.compile(r"^exp_[0-9a-f]{24}\Z")


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


FINISH_ATTEMPTS = 5
"""How often a job's change is tried again when another change of the job landed meanwhile."""


class JobStore:
    def __init__(self, es: AsyncElasticsearch, names: IndexNames) -> None:
        self.es, self.names = es, names

    @translated
    async def create(self, job: dict[str, Any]) -> bool:
        """Store a new job; False if its id is taken."""
        try:
            await self.es.create(
                index=self.names.export_jobs, id=job["id"], document=job, refresh=True
            )
        except ConflictError:
            return False
        return True

    @translated
    async def update(self, job_id: str, changes: dict[str, Any]) -> None:
        await self.es.update(
            index=self.names.export_jobs,
            id=job_id,
            doc={**changes, "updated_at": now_text()},
            retry_on_conflict=FINISH_ATTEMPTS,
        )

    @translated
    async def finish(self, job_id: str, changes: dict[str, Any]) -> bool:
        """Apply ``changes`` if the job is still running (False when it was declared failed).
        A progress report that lands in between is no reason to fail: the job is read again."""
        for _ in range(FINISH_ATTEMPTS):
            current = await self.es.get(index=self.names.export_jobs, id=job_id)
            if current["_source"].get("status") != "running":
                return False
            try:
                await self.es.index(
                    index=self.names.export_jobs,
                    id=job_id,
                    document={**current["_source"], **changes, "updated_at": now_text()},
                    if_seq_no=current["_seq_no"],
                    if_primary_term=current["_primary_term"],
                )
            except ConflictError:
                continue
            return True
        return False

    @translated
    async def get(self, job_id: str) -> dict[str, Any] | None:
        if not JOB_ID.match(job_id):
            return None
        try:
            resp = await self.es.get(index=self.names.export_jobs, id=job_id)
        except NotFoundError:
            return None
        return dict(resp["_source"])

    @translated
    async def recent(self, account_id: str, limit: int) -> list[dict[str, Any]]:
        """The account's newest jobs, newest first, each as it is now (a job is created with a
        refresh, so the search finds it; its progress is read in real time)."""
        resp = await self.es.options(ignore_status=404).search(
            index=self.names.export_jobs,
            query={"term": {"account_id": account_id}},
            sort=[{"created_at": "desc"}],
            size=limit,
            source=False,
        )
        ids = [h["_id"] for h in resp.get("hits", {}).get("hits", [])]
        if not ids:
            return []
        docs = await self.es.mget(index=self.names.export_jobs, ids=ids)
        return [dict(d["_source"]) for d in docs["docs"] if d.get("found")]

    @translated
    async def unfinished_or_expired(self, now: str) -> list[dict[str, Any]]:
        """Jobs still queued or running, and finished ones whose file has expired."""
        query = {
            "bool": {
                "should": [
                    {"terms": {"status": ["queued", "running"]}},
                    {
                        "bool": {
                            "filter": [
                                {"term": {"status": "done"}},
                                {"range": {"expires_at": {"lte": now}}},
                            ]
                        }
                    },
                ],
                "minimum_should_match": 1,
            }
        }
        resp = await self.es.search(index=self.names.export_jobs, size=1000, query=query)
        return [dict(h["_source"]) for h in resp["hits"]["hits"]]
