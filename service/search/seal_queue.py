"""The sealer's queue: each ingest batch's leaves, recorded before they are written, and the
batch's outcome, recorded after.

Before it writes a batch, the ingest path records every entry's ``(index, document id)`` and its
leaf (id, category, timestamp, digest) with the leaf's MAC, so an entry can never be stored without
the sealer learning of it: the record is created in the request that claims the entries' ids,
and no entry is written unless the engine created it. Once the engine answered, it records the
outcome: which entries it **created**, and which it is **unsure** of (the engine failed them,
they may have been written).
The sealer seals a created entry straight from its record: it reads no entry back (except from a
record naming its entries only, below). An unsure
entry, and every entry of a record with no outcome (the process stopped in between), is looked up
in the engine once the write deadline passed, and sealed only if it is there and authentic.

A record's rows are ``[index number, account/id, category, timestamp, digest]``, the numbers
pointing into the record's list of index names, under one MAC for the whole record (the leaves,
the record's id and its creation time). Records of earlier versions are still read: format 2
leaves the time out of the MAC; the earliest (``format`` absent) name the index in each row and
carry a MAC per row.

A process that holds the sealer's lease also keeps the records it writes, and their outcomes, in
memory (:class:`KeptRecords`): its sealer seals them from there, and reads and decodes only the
records other processes wrote (see below for when it lists the queue). The engine's copy of a
record kept in memory names the entries only (``kind: queued_ids``, rows ``[index number,
account/id]``, no MAC): it serves only should the process stop or lose the lease before sealing
it, and then each of its entries is looked up and sealed only if it checks out, as an entry with
no known outcome is (one the outcome says was created and that is gone is reported). Deferred
records take that form too. A sealer of an earlier version does not list that kind: it never
takes such a record for a malformed one, but neither seals it nor counts its entries as in
flight (its verify calls them unsealed) until every instance runs this version.

A settled holder lists the queue in the engine only when a record may be there that it does not
keep: another process wrote one (each record written by a process whose sealer does not keep it
rewrites :data:`WRITERS` in ``<prefix>-state``, in the same request, and the holder reads that
document by id each round: no refresh), a record of its own is not kept (no room, past its write
deadline, or its creation unknown), a record it deferred reaches its deadline, or its last
listing is ``LIST_EVERY_S`` old (the sealer's: records of an instance of an earlier version,
which says nothing). Otherwise it seals its records from memory and the queue's index is not
refreshed: the records are still created and removed, so a process that stops loses none.

Records are documents ``kind: queued`` or ``queued_ids`` (``q:<uuid>``) and outcomes
``kind: written`` (``w:<uuid>``, the same uuid) in ``<prefix>-seal-queue``; the sealer reads
records in the order they were made and deletes both once every entry of the record is sealed or
given up. The queue has an index of its own, apart from the accounts' logs: its large documents
are deleted seconds after they are written, and the engine would otherwise merge the logs'
segments again and again with them. Records made before it had one, in ``<prefix>-integrity``,
are read and removed there."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from elasticsearch import AsyncElasticsearch

from service.errors import engine_unavailable
from service.search.engine_errors import translated
from service.search.indices import IndexNames
from service.search.writer import CLAIM_LEASE_S, Preceding, create_op, index_op

PAGE = 200
KINDS = ["queued", "queued_ids"]
"""A record with its leaves under a MAC, and one naming its entries only (see the module)."""
FORMAT = 3
"""Rows of index numbers under one MAC per record, over its creation time too (see the module);
format 2 records, whose MAC leaves the time out, are still read."""
ALL = "all"
"""An outcome's ``created`` when the engine created every entry of the record."""
WRITE_DEADLINE_S = CLAIM_LEASE_S
"""No entry of a batch is written later than this after its record (the writer's claim lease)."""
WRITERS = "seal-queue-writers"
"""The document of ``<prefix>-state`` that a record written by a process whose sealer does not
keep it rewrites (see the module)."""
_WRITTEN = {"kind": "queue-writers"}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class QueuedEntry:
    index: str
    doc_id: str
    """``<account>/<id>``."""
    leaf: dict[str, str]
    """id, category, timestamp, digest: what the sealer appends."""
    mac: str = ""
    """The leaf's MAC under the service's key (:meth:`IntegrityKeys.mac`), in a record of an
    earlier version; empty in a record with a MAC of its own (:attr:`Queued.mac`)."""


@dataclass(frozen=True)
class Queued:
    record_id: str
    index: str
    """Where the record is stored (the queue's index; the log's for a record made before)."""
    entries: list[QueuedEntry]
    """In ingest order."""
    created_at: str
    write_by: datetime
    created: list[str] | None = None
    """Document ids the engine created; ``None`` while the batch's outcome is not recorded."""
    unsure: list[str] = field(default_factory=list)
    """Document ids the engine failed or found already there: written by this batch or not."""
    outcome_mac: str = ""
    """The outcome's MAC (the sealer checks it: an outcome forged in the engine counts as
    none)."""
    signed: bytes = b""
    """What the record's MAC covers (:func:`signed_part`), as read back."""
    format: int = 0
    """The record's format: :data:`FORMAT`, 2, or 0 for the earliest (a MAC per row), for one
    naming its entries only and for one kept in memory."""
    mac: str = ""
    """The record's MAC over :attr:`signed` (empty in a record of an earlier version, in one
    naming its entries only and in a deferred one: their entries are looked up)."""
    local: bool = False
    """As this process wrote it, from memory (:class:`KeptRecords`): its leaves and outcome
    need no MAC."""


@dataclass(frozen=True)
class Recording:
    """A batch's record, as the writer sends it and as the sealer reads it."""

    queued: Queued
    stored: Preceding

    @property
    def record_id(self) -> str:
        return self.queued.record_id


def signed_part(
    record_id: str, indices: list[str], rows: list[list[Any]], created_at: str | None = None
) -> bytes:
    """The bytes a record's MAC covers: JSON ``["queued", record id, creation time, index
    names, rows]`` (a format 2 record's leave the time out)."""
    if created_at is None:
        return orjson.dumps(["queued", record_id, indices, rows])
    return orjson.dumps(["queued", record_id, created_at, indices, rows])


def _rows(entries: list[QueuedEntry]) -> tuple[list[str], list[list[Any]]]:
    """The index names of ``entries`` and their rows (see the module)."""
    numbers: dict[str, int] = {}
    rows = []
    for e in entries:
        number = numbers.setdefault(e.index, len(numbers))
        leaf = e.leaf
        rows.append([number, e.doc_id, leaf["category"], leaf["timestamp"], leaf["digest"]])
    return list(numbers), rows


def _id_rows(entries: list[QueuedEntry]) -> tuple[list[str], list[list[Any]]]:
    """The index names of ``entries`` and their rows naming them only (``queued_ids``)."""
    numbers: dict[str, int] = {}
    rows = [[numbers.setdefault(e.index, len(numbers)), e.doc_id] for e in entries]
    return list(numbers), rows


KEPT_MAX_ENTRIES = 100_000
"""Entries of the records a process keeps in memory for its sealer, at most (about 60 MB; a
record past it is read back from the engine)."""


class KeptRecords:
    """The records this process wrote to the queue, with their outcomes, while its sealer holds
    the lease: the sealer takes each from here (once the engine created it, or when it lists it
    in the engine), instead of reading it back. A record is kept from the moment it is made (a
    listing may show it before the batch's entries are written) and dropped should the engine
    not create it; once removed
    or deferred; or past its write deadline (then read back, naming its entries only: they are
    looked up). All are dropped when the lease is lost (another process seals, from the
    engine)."""

    def __init__(self, max_entries: int = KEPT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.active = False
        self._records: dict[str, Queued] = {}
        self._stored: set[str] = set()
        """The records the engine created (the others are being written)."""
        self._entries = 0
        self.missing = False
        """A record this process wrote while its sealer held the lease may be in the engine's
        queue without being kept here (no room, past its write deadline, or its creation
        unknown): the sealer lists the queue (and clears this)."""

    def __len__(self) -> int:
        return len(self._records)

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False
        self._records.clear()
        self._stored.clear()
        self._entries = 0
        self.missing = False

    def room(self, entries: int) -> bool:
        """Whether a record of that many entries written now would be kept."""
        return self.active and self._entries + entries <= self.max_entries

    def keep(self, record: Queued, stored: bool) -> None:
        """Keep ``record``; ``stored``: the engine created it (else :meth:`stored` tells)."""
        if not self.active:
            return
        # a record still kept past its write deadline was removed some other way (by a sealer
        # of this process that had lost the lease, say): were it still queued, it is read back
        now = datetime.now(UTC)
        while self._records and (oldest := next(iter(self._records.values()))).write_by < now:
            self.drop([oldest.record_id])
            self.missing = True
        if self._entries + len(record.entries) <= self.max_entries:
            self._records[record.record_id] = record
            self._entries += len(record.entries)
            if stored:
                self._stored.add(record.record_id)
        else:
            self.missing = True

    def stored(self, record_id: str) -> None:
        """The engine created the record."""
        if record_id in self._records:
            self._stored.add(record_id)

    def outcome(self, record_id: str, created: list[str], unsure: list[str], mac: str) -> None:
        """The record's outcome, once the engine stored it."""
        record = self._records.get(record_id)
        if record is not None:
            self._records[record_id] = replace(
                record, created=created, unsure=unsure, outcome_mac=mac
            )

    def get(self, record_id: str) -> Queued | None:
        return self._records.get(record_id)

    def oldest(self, limit: int, max_entries: int) -> list[Queued]:
        """The oldest records the engine created, oldest first, as :meth:`SealQueue.oldest`
        takes them: as many as ``limit`` and, past the first, ``max_entries`` entries allow."""
        records: list[Queued] = []
        total = 0
        for record_id, record in self._records.items():
            if record_id not in self._stored:
                continue  # being written: a later record may be sealed before it
            size = max(len(record.entries), 1)
            if records and total + size > max_entries:
                break
            records.append(record)
            total += size
            if len(records) == limit:
                break
        return records

    def drop(self, record_ids: list[str]) -> None:
        for record_id in record_ids:
            record = self._records.pop(record_id, None)
            if record is not None:
                self._entries -= len(record.entries)
                self._stored.discard(record_id)


class SealQueue:
    def __init__(
        self, es: AsyncElasticsearch, names: IndexNames, kept: KeptRecords | None = None
    ) -> None:
        self.es, self.index, self.state = es, names.seal_queue, names.state
        self.kept = kept
        self.read_from = f"{names.seal_queue},{names.integrity}"
        """Records made before the queue had an index of its own are in the log's."""

    def record(self, entries: list[QueuedEntry], mac: Callable[[bytes], str]) -> Recording:
        """The record of a batch about to be written, under ``mac`` of its :func:`signed_part`:
        the writer creates it before any entry (see :class:`Preceding`). One this process's
        sealer will take from memory is stored naming the entries only (see the module)."""
        now = datetime.now(UTC)
        token = uuid.uuid4().hex
        created_at = _stamp(now)
        write_by = _stamp(now + timedelta(seconds=WRITE_DEADLINE_S))
        if self.kept is not None and self.kept.room(len(entries)):
            indices, rows = _id_rows(entries)
            record = {"kind": "queued_ids", "created_at": created_at, "write_by": write_by,
                      "count": len(rows), "indices": indices, "entries": rows}  # fmt: skip
            queued = Queued(token, self.index, entries, created_at,
                            datetime.fromisoformat(write_by), local=True)  # fmt: skip
            # kept from now on: the sealer may take it as soon as the engine created it, before
            # the batch's entries are written (it then waits for the outcome); a record the
            # engine did not create is never listed, and :meth:`forget` drops it
            self.kept.keep(queued, stored=False)
            return Recording(queued, Preceding(create_op(self.index, f"q:{token}", record)))
        indices, rows = _rows(entries)
        signed = signed_part(token, indices, rows, created_at)
        record_mac = mac(signed)
        record = {"kind": "queued", "format": FORMAT, "created_at": created_at,
                  "write_by": write_by, "count": len(rows), "indices": indices, "entries": rows,
                  "mac": record_mac}  # fmt: skip
        queued = Queued(
            token,
            self.index,
            entries,
            created_at,
            datetime.fromisoformat(write_by),
            signed=signed,
            mac=record_mac,
            format=FORMAT,
        )  # as the sealer reads it
        op = create_op(self.index, f"q:{token}", record)
        if self.kept is not None and self.kept.active:  # kept once created, or said missing
            return Recording(queued, Preceding(op))
        # the holder, elsewhere, learns of it without refreshing the queue (see the module)
        return Recording(queued, Preceding(op, also=index_op(self.state, WRITERS, _WRITTEN)))

    def recorded(self, recording: Recording) -> None:
        """The engine created the record: this process's sealer may take it from memory."""
        if self.kept is None:
            return
        if recording.queued.local:  # kept already
            self.kept.stored(recording.record_id)
        else:
            self.kept.keep(recording.queued, stored=True)

    def forget(self, recording: Recording) -> None:
        """The engine did not create the record (or it is unknown whether it did: the sealer
        then reads it from the engine, if it is there)."""
        if self.kept is not None:
            self.kept.missing = self.kept.missing or self.kept.active
            self.kept.drop([recording.record_id])

    @translated
    async def writers(self) -> tuple[int, int] | None:
        """Where :data:`WRITERS` stands (sequence number, primary term), read by id: it moves
        each time a process whose sealer does not keep its records writes one."""
        resp = await self.es.options(ignore_status=404).get(
            index=self.state, id=WRITERS, source=False
        )
        if not resp.get("found"):
            return None
        return int(resp["_seq_no"]), int(resp["_primary_term"])

    @translated
    async def written(self, record_id: str, created: list[str], unsure: list[str],
                      mac: str, everything: bool = False) -> None:  # fmt: skip
        """Record the outcome of the batch recorded as ``record_id``, with its MAC.
        ``everything``: ``created`` is every entry of the record, in its order, and is stored as
        ``"all"`` (the usual outcome, a few bytes instead of every document id again)."""
        outcome = {"kind": "written", "created_at": _stamp(datetime.now(UTC)),
                   "created": ALL if everything and not unsure else created, "unsure": unsure,
                   "mac": mac}  # fmt: skip
        await self.es.index(index=self.index, id=f"w:{record_id}", document=outcome)
        if self.kept is not None:  # once stored: the sealer then removes both
            self.kept.outcome(record_id, created, unsure, mac)

    @translated
    async def defer(self, record: Queued, entries: list[QueuedEntry]) -> None:
        """Keep only ``entries`` of the record (those to look up), out of the way until its
        write deadline: the queue's head moves on meanwhile."""
        if self.kept is not None:
            self.kept.drop([record.record_id])
        indices, rows = _id_rows(entries)  # the sealer looks each of them up
        document = {"kind": "queued_ids", "created_at": record.created_at,
                    "write_by": _stamp(record.write_by), "count": len(rows), "deferred": True,
                    "indices": indices, "entries": rows}  # fmt: skip
        if record.index == self.index:  # the outcome first: stopped in between, the record is
            # looked up at its deadline; the other way round the batch's outcome would be read
            # with the deferred record
            await self.es.options(ignore_status=404).delete(
                index=self.index, id=f"w:{record.record_id}"
            )
        await self.es.index(index=self.index, id=f"q:{record.record_id}", document=document)
        if record.index != self.index:  # moved out of the log's index
            await self.remove([record])

    @translated
    async def oldest(
        self, limit: int, max_entries: int | None = None, earlier: bool = True
    ) -> tuple[list[Queued], int]:
        """The oldest records with their outcomes, oldest first (after a refresh: every record
        made so far), as many as ``limit`` and, past the first, ``max_entries`` entries allow;
        and how many malformed ones were found and removed (not written by this service).
        Records are listed by their counts first and read whole only once chosen, so a long
        queue costs no more than the records taken. ``earlier``: records made before the queue
        had an index of its own are read too (the logs' index is then refreshed as well)."""
        read_from = self.read_from if earlier else self.index
        await self.es.indices.refresh(index=read_from)
        waiting = {"bool": {"filter": [{"term": {"deferred": True}},
                                       {"range": {"write_by": {"gt": "now"}}}]}}  # fmt: skip
        resp = await self.es.search(
            index=read_from,
            query={"bool": {"filter": [{"terms": {"kind": KINDS}}], "must_not": [waiting]}},
            sort=[{"created_at": "asc"}],
            size=limit,
            source_includes=["count", "deferred"],
        )
        chosen: list[tuple[str, str]] = []
        kept: dict[tuple[str, str], Queued] = {}
        total = 0
        for hit in resp["hits"]["hits"]:
            count = hit["_source"].get("count")
            size = count if isinstance(count, int) and count > 0 else 1
            if chosen and max_entries is not None and total + size > max_entries:
                break
            chosen.append((hit["_index"], hit["_id"]))
            total += size
            if (record := self._kept(hit)) is not None:
                kept[chosen[-1]] = record
        if not chosen:
            return [], 0
        read = [c for c in chosen if c not in kept]
        wanted = [*read, *((index, f"w:{c[2:]}") for index, c in read)]
        docs = (
            (await self.es.mget(docs=[{"_index": i, "_id": d} for i, d in wanted]))["docs"]
            if wanted
            else []
        )
        pairs = zip(docs[: len(read)], docs[len(read) :], strict=True)
        fetched = dict(zip(read, pairs, strict=True))
        records: list[Queued] = []
        malformed: list[Queued] = []
        for listed in chosen:
            if listed in kept:
                records.append(kept[listed])
                continue
            doc, outcome = fetched[listed]
            if not doc.get("found"):
                continue  # removed meanwhile (another sealer finished it)
            record = _queued(doc)
            if record is None:
                malformed.append(Queued(doc["_id"][2:], doc["_index"], [], "", _EPOCH))
            else:
                records.append(_with_outcome(record, outcome))
        await self.remove(malformed)
        return records, len(malformed)

    def _kept(self, hit: dict[str, Any]) -> Queued | None:
        """The record of ``hit`` as this process wrote it, when it keeps it: a record the queue
        lists as it was written (not deferred since)."""
        if self.kept is None or hit["_index"] != self.index or hit["_source"].get("deferred"):
            return None
        return self.kept.get(hit["_id"][2:])

    @translated
    async def pending_ids(self) -> set[str]:
        """Document ids of every entry still queued, deferred ones too (verification treats
        them as in flight; an export's manifest waits for them)."""
        await self.es.indices.refresh(index=self.read_from)
        out: set[str] = set()
        queued = {"terms": {"kind": KINDS}}
        if not (await self.es.count(index=self.read_from, query=queued))["count"]:
            return out  # the usual answer between batches: no point in time to open and close
        pit = (await self.es.open_point_in_time(index=self.read_from, keep_alive="1m"))["id"]
        try:
            after: list[Any] | None = None
            while True:
                resp = await self.es.search(
                    query=queued, size=PAGE, sort=[{"_shard_doc": "asc"}],
                    pit={"id": pit, "keep_alive": "1m"}, search_after=after,
                    source_includes=["entries"],
                )  # fmt: skip
                pit = resp.get("pit_id", pit)
                hits = resp["hits"]["hits"]
                for hit in hits:
                    rows = hit["_source"].get("entries")
                    if isinstance(rows, list):
                        out |= {str(r[1]) for r in rows if isinstance(r, list) and len(r) > 1}
                if len(hits) < PAGE:
                    return out
                after = hits[-1]["sort"]
        finally:
            await self.es.options(ignore_status=404).close_point_in_time(id=pit)

    @translated
    async def remove(self, records: list[Queued]) -> None:
        """Delete the records (and their outcomes); :class:`EngineUnavailable` unless each is
        gone (a record left behind would be read again)."""
        if self.kept is not None:
            self.kept.drop([r.record_id for r in records])
        if records:
            operations = [{"delete": {"_index": r.index, "_id": f"{kind}:{r.record_id}"}}
                          for r in records for kind in ("q", "w")]  # fmt: skip
            resp = await self.es.bulk(operations=operations)  # the next read refreshes
            failed = [i["delete"] for i in resp["items"] if i["delete"]["status"] not in (200, 404)]
            if failed:
                raise engine_unavailable(detail=f"removing seal queue records: {failed[0]}")


def _queued(hit: dict[str, Any]) -> Queued | None:
    """The record, or ``None`` when it is not one this service wrote: rows that are not as the
    module describes them, or a write deadline beyond :data:`WRITE_DEADLINE_S`."""
    try:
        if not hit["_id"].startswith("q:"):
            return None
        source = hit["_source"]
        created = datetime.fromisoformat(str(source["created_at"]).replace("Z", "+00:00"))
        write_by = datetime.fromisoformat(str(source["write_by"]).replace("Z", "+00:00"))
        if created.tzinfo is None or write_by.tzinfo is None:
            return None  # compared with the sealer's aware clock
        form = source.get("format")
        if source.get("kind") == "queued_ids":
            entries, signed, mac, form = _id_entries(source), b"", "", 0
        elif form in (2, FORMAT):
            entries, signed, mac = _current_rows(hit["_id"][2:], source, form == FORMAT)
        else:
            entries, signed, mac, form = _earlier_rows(source), b"", "", 0
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if write_by - created > timedelta(seconds=WRITE_DEADLINE_S + 1):
        return None
    return Queued(hit["_id"][2:], hit["_index"], entries, str(source["created_at"]), write_by,
                  signed=signed, mac=mac, format=form)  # fmt: skip


def _current_rows(
    record_id: str, source: dict[str, Any], timed: bool
) -> tuple[list[QueuedEntry], bytes, str]:
    """The entries of a record of this version (or of format 2: not ``timed``), the bytes its
    MAC covers and the MAC (an empty one for a deferred record); ``ValueError`` when
    malformed."""
    indices, rows, mac = source["indices"], source["entries"], source.get("mac", "")
    if not isinstance(indices, list) or not all(type(i) is str for i in indices):
        raise ValueError("index names")
    if not _is_mac(mac, blank=True):
        raise ValueError("mac")
    entries = []
    for number, doc_id, category, timestamp, digest in rows:
        if type(number) is not int or not 0 <= number < len(indices):
            raise ValueError("index number")
        if not type(doc_id) is type(category) is type(timestamp) is type(digest) is str:
            raise ValueError("row")
        entries.append(_entry(indices[number], doc_id, category, timestamp, digest, ""))
    created_at = str(source["created_at"]) if timed else None
    return entries, signed_part(record_id, indices, rows, created_at), mac


def _id_entries(source: dict[str, Any]) -> list[QueuedEntry]:
    """The entries a ``queued_ids`` record names, each leaf holding its id only (the sealer
    looks them up); ``ValueError`` when malformed."""
    indices = source["indices"]
    if not isinstance(indices, list) or not all(type(i) is str for i in indices):
        raise ValueError("index names")
    entries = []
    for number, doc_id in source["entries"]:
        if type(number) is not int or not 0 <= number < len(indices) or type(doc_id) is not str:
            raise ValueError("row")
        _, slash, entry_id = doc_id.partition("/")
        if not slash:
            raise ValueError("document id")
        entries.append(QueuedEntry(indices[number], doc_id, {"id": entry_id}))
    return entries


def _earlier_rows(source: dict[str, Any]) -> list[QueuedEntry]:
    """The entries of a record of an earlier version: ``(index, account/id, category,
    timestamp, digest, mac)`` rows of strings; ``ValueError`` when malformed."""
    entries = []
    for index, doc_id, category, timestamp, digest, mac in source["entries"]:
        if not (type(index) is type(doc_id) is type(category) is type(timestamp)
                is type(digest) is str) or not _is_mac(mac, blank=True):  # fmt: skip
            raise ValueError("row")
        entries.append(_entry(index, doc_id, category, timestamp, digest, mac))
    return entries


def _entry(index: str, doc_id: str, category: str, timestamp: str, digest: str,
           mac: str) -> QueuedEntry:  # fmt: skip
    _, slash, entry_id = doc_id.partition("/")
    if not slash:
        raise ValueError("document id")
    leaf = {"id": entry_id, "category": category, "timestamp": timestamp, "digest": digest}
    return QueuedEntry(index, doc_id, leaf, mac)


def _is_mac(value: object, blank: bool = False) -> bool:
    """An HMAC-SHA256 as the service writes it, 64 lowercase hex digits (``blank``: or none);
    anything else would make the comparison fail, not just differ."""
    if type(value) is not str:
        return False
    return (blank and value == "") or (len(value) == 64 and all(c in _HEX for c in value))


_HEX = frozenset("0123456789abcdef")


def _with_outcome(record: Queued, doc: dict[str, Any]) -> Queued:
    """The record with its outcome; an outcome that is not lists of strings and a MAC counts as
    none (every entry is then looked up once the deadline passed)."""
    if not doc.get("found"):
        return record
    source = doc["_source"]
    created, unsure, mac = source.get("created"), source.get("unsure"), source.get("mac")
    if created == ALL:
        created = [e.doc_id for e in record.entries]
    lists = isinstance(created, list) and isinstance(unsure, list) and _is_mac(mac)
    if not lists or not all(isinstance(d, str) for d in [*created, *unsure]):
        return record
    return replace(record, created=created, unsure=unsure, outcome_mac=mac)
