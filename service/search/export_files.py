"""Export job files in the engine: any instance of a deployment serves any job's download.

A file is stored as documents ``<job id>:<n>`` in ``<prefix>-export-files``, chunks of at most
:data:`CHUNK_BYTES` (far below the engine's ``http.max_content_length``), each with its job,
account, size and the job's expiry. A download reads them back one by one, in order. A job's
chunks are deleted when it fails or expires; chunks left behind by a job whose instance died are
deleted once past their expiry.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from service.errors import ServiceError, engine_unavailable
from service.search.engine_errors import engine_failures, translated
from service.search.indices import IndexNames

CHUNK_BYTES = 1024 * 1024
DELETE_PAGE = 1000


def file_gone() -> ServiceError:
    return ServiceError(410, "expired", "this export's file is gone; start a new one")


class ExportFiles:
    def __init__(self, es: AsyncElasticsearch, names: IndexNames) -> None:
        self.es, self.index = es, names.export_files

    @translated
    async def put(self, job_id: str, account_id: str, n: int, data: bytes, expires_at: str) -> None:
        """Store chunk ``n`` of the job's file."""
        document = {
            "job_id": job_id,
            "account_id": account_id,
            "n": n,
            "size": len(data),
            "expires_at": expires_at,
            "chunk": base64.b64encode(data).decode(),
        }
        await self.es.index(index=self.index, id=f"{job_id}:{n}", document=document)

    async def read(self, job_id: str, chunks: int) -> AsyncIterator[bytes]:
        """The file's bytes, chunk by chunk; 410 when a chunk is missing (expired meanwhile)."""
        for n in range(chunks):
            with engine_failures():
                try:
                    resp = await self.es.get(index=self.index, id=f"{job_id}:{n}")
                except NotFoundError as e:
                    raise file_gone() from e
            yield base64.b64decode(resp["_source"]["chunk"])

    @translated
    async def stored_bytes(self, account_id: str, now: str) -> int:
        """Bytes the account's unexpired files hold (chunks being written by running jobs too)."""
        await self.es.indices.refresh(index=self.index)
        resp = await self.es.search(
            index=self.index,
            size=0,
            query={
                "bool": {
                    "filter": [
                        {"term": {"account_id": account_id}},
                        {"range": {"expires_at": {"gt": now}}},
                    ]
                }
            },
            aggs={"bytes": {"sum": {"field": "size"}}},
        )
        return int(resp["aggregations"]["bytes"]["value"] or 0)

    async def _delete_matching(self, query: dict[str, Any]) -> int:
        """Delete the chunks ``query`` matches, a page of ids at a time (by bulk deletes: the
        engine may lack delete-by-query, as the local integ-test node does)."""
        deleted = 0
        while True:
            await self.es.indices.refresh(index=self.index)
            found = await self.es.search(
                index=self.index, query=query, size=DELETE_PAGE, source=False
            )
            ids = [hit["_id"] for hit in found["hits"]["hits"]]
            if not ids:
                return deleted
            operations = [{"delete": {"_index": self.index, "_id": i}} for i in ids]
            answer = await self.es.bulk(operations=operations, filter_path="errors")
            if answer.get("errors"):
                raise engine_unavailable("the engine did not delete every chunk")
            deleted += len(ids)

    @translated
    async def delete(self, job_id: str) -> None:
        await self._delete_matching({"term": {"job_id": job_id}})

    @translated
    async def delete_expired(self, before: str) -> int:
        """Delete every chunk whose expiry is before ``before`` (jobs that expired, failed or
        whose instance died)."""
        return await self._delete_matching({"range": {"expires_at": {"lt": before}}})
