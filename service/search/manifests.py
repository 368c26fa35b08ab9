"""Export manifests as documents in ``<prefix>-export-manifests``, by export id.

A manifest is ``pending`` from the moment its export starts until its file is complete and its
rows are sealed, then ``ready`` with the signed manifest; an export that did not complete (the
client left, the engine failed) leaves it ``incomplete``, with the reason.
"""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from service.search.engine_errors import translated
from service.search.indices import IndexNames
from service.search.jobs import JOB_ID, now_text


class ManifestStore:
    def __init__(self, es: AsyncElasticsearch, names: IndexNames) -> None:
        self.es, self.index = es, names.export_manifests

    @translated
    async def pending(self, export_id: str, account_id: str) -> bool:
        """Record a new export's manifest as pending; False if the id is taken."""
        document = {"account_id": account_id, "status": "pending", "created_at": now_text()}
        try:
            await self.es.create(index=self.index, id=export_id, document=document)
        except ConflictError:
            return False
        return True

    @translated
    async def touch(self, export_id: str) -> None:
        """The export is still running: its pending manifest is not abandoned."""
        await self.es.update(index=self.index, id=export_id, doc={"touched_at": now_text()})

    @translated
    async def ready(self, export_id: str, manifest: dict[str, Any]) -> None:
        document = {"account_id": manifest["account_id"], "status": "ready",
                    "created_at": manifest["created_at"], "manifest": manifest}  # fmt: skip
        await self.es.index(index=self.index, id=export_id, document=document)

    @translated
    async def incomplete(self, export_id: str, account_id: str, reason: str) -> None:
        document = {"account_id": account_id, "status": "incomplete", "created_at": now_text(),
                    "reason": reason}  # fmt: skip
        await self.es.index(index=self.index, id=export_id, document=document)

    @translated
    async def get(self, export_id: str) -> dict[str, Any] | None:
        if not JOB_ID.match(export_id):
            return None
        try:
            resp = await self.es.get(index=self.index, id=export_id)
        except NotFoundError:
            return None
        return dict(resp["_source"])
