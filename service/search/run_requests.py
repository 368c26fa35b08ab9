"""Asking the lease holder to run its work now, and reading its answer.

A lease such as ``housekeeping`` is held for as long as its holder runs: a command that wants the
work done now (``auditlog retention run``) cannot take the lease, so it asks instead. The request
is one document per kind of work, ``request:<work>`` in ``<prefix>-state``; each write of it gets
a higher sequence number from the engine, which orders requests whatever the clocks of the
machines that made them. The holder says it takes requests (``serving:<work>``, its holder name,
written when it takes the lease: an instance of an earlier version does not, and the command
says so at once). It reads the request by id (which sees every write, no refresh) each time it
checks its lease; when the request is newer than its last answer it marks it ``running``, runs
the work and stores the outcome, ``done`` with the result or ``failed`` with the reason, as
``answer:<work>`` naming the number it answers. A later request replaces an earlier one: the run
that answers it started after both were made, so it answers both. A run left ``running`` by a
holder that stopped is run again by the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch

from service.search.engine_errors import translated
from service.search.indices import IndexNames


@dataclass(frozen=True)
class Answer:
    status: str
    """``running``, ``done`` or ``failed``."""
    result: dict[str, Any]
    """The run's result when ``done``; ``{"error": reason}`` when ``failed``."""


class RunRequests:
    def __init__(self, es: AsyncElasticsearch, names: IndexNames, work: str) -> None:
        self.es, self.index, self.work = es, names.state, work

    @translated
    async def serve(self, holder: str) -> None:
        """Say that ``holder`` (the lease's new holder) takes requests."""
        await self.es.index(index=self.index, id=f"serving:{self.work}",
                            document={"kind": "serving", "holder": holder})  # fmt: skip

    @translated
    async def served_by(self) -> str | None:
        doc = await self.es.options(ignore_status=404).get(
            index=self.index, id=f"serving:{self.work}"
        )
        return str(doc["_source"]["holder"]) if doc.get("found") else None

    @translated
    async def ask(self, **options: Any) -> int:
        """Ask for a run now; the request's number (an answer names it or a later one)."""
        document = {"kind": "request", "work": self.work, "options": options,
                    "made_at": datetime.now(UTC).isoformat()}  # fmt: skip
        resp = await self.es.index(index=self.index, id=f"request:{self.work}", document=document)
        return int(resp["_seq_no"])

    @translated
    async def pending(self) -> tuple[int, dict[str, Any]] | None:
        """The request not answered yet (or whose run a stopped holder left unfinished), if
        any: its number and options."""
        ids = [f"request:{self.work}", f"answer:{self.work}"]
        request, answer = (await self.es.mget(index=self.index, ids=ids))["docs"]
        if not request.get("found"):
            return None
        number = int(request["_seq_no"])
        if answer.get("found"):
            stored = answer["_source"]
            if int(stored["answers"]) >= number and stored.get("status") != "running":
                return None
        return number, dict(request["_source"].get("options") or {})

    @translated
    async def answer(self, number: int, status: str, result: dict[str, Any]) -> None:
        document = {"kind": "answer", "work": self.work, "answers": number, "status": status,
                    "result": result, "answered_at": datetime.now(UTC).isoformat()}  # fmt: skip
        await self.es.index(index=self.index, id=f"answer:{self.work}", document=document)

    @translated
    async def answer_to(self, number: int) -> Answer | None:
        """How the run that answers request ``number`` stands, once one started."""
        doc = await self.es.options(ignore_status=404).get(
            index=self.index, id=f"answer:{self.work}"
        )
        if not doc.get("found") or int(doc["_source"]["answers"]) < number:
            return None
        stored = doc["_source"]
        return Answer(str(stored.get("status", "done")), dict(stored.get("result") or {}))
