"""Retention where the engine has no ILM: the sweeper applies the same policy files.

Several instances run one sweeper between them (the lease of :mod:`service.actions.retention`);
the journal here lets a sweep that stopped half-way be finished by the next.

Index templates name their lifecycle policy in ``_meta.lifecycle_policy``; the policy's delete
phase ``min_age`` is counted from the date in a daily index's name, exactly as ILM does with
``index.lifecycle.parse_origination_date``. Kept categories have no policy and are never touched.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from service.config import Settings
from service.search.engine_errors import translated
from service.search.indices import IndexNames
from service.search.setup import load_json_files

_DURATION = re.compile(r"^(\d+)(d|h|m|s|ms)\Z")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds", "ms": "milliseconds"}
ACCOUNTS_PAGE = 1000
"""Accounts counted per request when a deleted index's entries are counted."""


@dataclass(frozen=True)
class DeletedIndex:
    index: str
    day: date
    entries_by_account: dict[str, int]
    deletion: str = ""
    """Names this deletion (an index deleted, recreated by late entries and deleted again is
    two deletions, each reported)."""


@dataclass
class RetentionReport:
    deleted: list[DeletedIndex] = field(default_factory=list)
    """Every deletion not reported yet (this run's and a stopped run's)."""
    kept: list[str] = field(default_factory=list)
    deleted_now: int = 0
    """Indices this run deleted."""


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"unsupported duration {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def expiring_families(settings: Settings) -> dict[str, timedelta]:
    """Category → delete age, from the index templates that name a lifecycle policy."""
    policies = load_json_files(settings.policies_dir)
    families: dict[str, timedelta] = {}
    for raw in load_json_files(settings.templates_dir).values():
        meta = raw.get("_meta", {})
        policy_name = meta.get("lifecycle_policy")
        if not policy_name:
            continue
        stem = policy_name.removeprefix("{prefix}-")
        delete_phase = policies[stem]["phases"]["delete"]
        families[meta["category"]] = parse_duration(delete_phase["min_age"])
    return families


async def _count_by_account(es: AsyncElasticsearch, index: str) -> dict[str, int]:
    """Entries of ``index`` by account, every account (a composite aggregation, paged)."""
    await es.indices.refresh(index=index)  # every write acknowledged before the block counts
    counts: dict[str, int] = {}
    after: dict[str, Any] | None = None
    while True:
        source = {"account": {"terms": {"field": "account_id"}}}
        composite: dict[str, Any] = {"size": ACCOUNTS_PAGE, "sources": [source]}
        if after is not None:
            composite["after"] = after
        resp = await es.search(index=index, size=0, aggs={"accounts": {"composite": composite}})
        found = resp["aggregations"]["accounts"]
        for bucket in found["buckets"]:
            counts[str(bucket["key"]["account"])] = int(bucket["doc_count"])
        after = found.get("after_key")
        if after is None or len(found["buckets"]) < ACCOUNTS_PAGE:
            return counts


@translated
async def sweep_expired(
    es: AsyncElasticsearch,
    settings: Settings,
    now: datetime | None = None,
    fence: Callable[[], Awaitable[None]] | None = None,
) -> RetentionReport:
    """Delete every daily index whose date plus its policy's delete age has passed.

    Before an index is deleted, ``fence`` runs (the sweeper lease's renewal: it raises when
    another instance took the lease over), writes into the index are blocked and its entry
    counts by account go to the retention journal (in ``<prefix>-state``); ``fence`` runs again
    right before the deletion. A block a stopped sweep left on an index that is no longer
    expired (its policy was lengthened) is lifted. The report's ``deleted`` lists
    every deletion not reported yet, a stopped run's too, so a crash between deleting and
    reporting loses no report; reporting each one (an audit entry per account, under an id of
    its own) and then :func:`mark_reported` makes a repeat a no-op."""
    now = now or datetime.now(UTC)
    names = IndexNames(settings.index_prefix)
    report = RetentionReport()
    for category, max_age in expiring_families(settings).items():
        found = await es.indices.get(
            index=names.category_pattern(category), allow_no_indices=True, expand_wildcards="open"
        )
        for index in sorted(found.body):
            day = names.daily_index_date(category, index)
            if day is None:
                continue
            origin = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if origin + max_age > now:
                report.kept.append(index)
                if _write_blocked(found.body[index]):
                    await _unblock_if_ours(es, names, index, fence)
                continue
            if await _delete(es, names, index, day, fence):
                report.deleted_now += 1
    report.deleted = await _unreported(es, names)
    return report


def _journal_id(index: str) -> str:
    return f"retention:{index}"


async def _delete(
    es: AsyncElasticsearch,
    names: IndexNames,
    index: str,
    day: date,
    fence: Callable[[], Awaitable[None]] | None,
) -> bool:
    """Block writes into ``index``, count its entries by account into the journal and delete
    it; whether it was deleted (not when an earlier deletion of the same name still waits for
    its report, when the block did not take, or when the index went meanwhile: a later run
    tries again)."""
    journal_id = _journal_id(index)
    earlier = await es.options(ignore_status=404).get(index=names.state, id=journal_id)
    if earlier.meta.status == 200 and earlier["_source"].get("state") == "deleted":
        return False  # reported at the end of this run, before the journal is written again
    if fence is not None:
        await fence()  # still the deployment's sweeper: nobody else blocks or deletes meanwhile
    begun = {"kind": "retention", "state": "blocking", "index": index, "day": day.isoformat()}
    await es.index(index=names.state, id=journal_id, document=begun, refresh=True)
    # no write lands between the count and the deletion: the report's count is exact (a write
    # refused here is answered "failed", and its retry lands in a new index)
    blocked = await es.options(ignore_status=404).indices.add_block(index=index, block="write")
    if blocked.meta.status == 404 or not _took(blocked.body):
        return False
    try:
        counts = await _count_by_account(es, index)
    except NotFoundError:
        return False  # deleted meanwhile
    journal = {**begun, "deletion": uuid.uuid4().hex[:12], "state": "deleting",
               "entries_by_account": counts}  # fmt: skip
    await es.index(index=names.state, id=journal_id, document=journal, refresh=True)
    if fence is not None:
        await fence()
    await es.options(ignore_status=404).indices.delete(index=index)
    await es.update(index=names.state, id=journal_id, doc={"state": "deleted"}, refresh=True)
    return True


def _took(answer: dict[str, Any]) -> bool:
    """The write block is on every shard of the index."""
    indices = answer.get("indices") or []
    return bool(answer.get("acknowledged") and answer.get("shards_acknowledged") and indices
                and all(i.get("blocked") for i in indices))  # fmt: skip


def _write_blocked(info: dict[str, Any]) -> bool:
    blocks = info.get("settings", {}).get("index", {}).get("blocks", {})
    return str(blocks.get("write")).lower() == "true"


async def _unblock_if_ours(
    es: AsyncElasticsearch,
    names: IndexNames,
    index: str,
    fence: Callable[[], Awaitable[None]] | None,
) -> None:
    """Lift the write block a sweep left on an index that is no longer expired (its policy was
    lengthened since): the journal says the sweep blocked it and did not delete it."""
    journal = await es.options(ignore_status=404).get(index=names.state, id=_journal_id(index))
    state = journal["_source"].get("state") if journal.meta.status == 200 else None
    if state not in ("blocking", "deleting"):
        return  # blocked by someone else: left as it is
    if fence is not None:
        await fence()
    await es.indices.put_settings(index=index, settings={"index.blocks.write": False})
    await es.delete(index=names.state, id=_journal_id(index), refresh=True)


async def _unreported(es: AsyncElasticsearch, names: IndexNames) -> list[DeletedIndex]:
    """Deletions not reported yet: this run's, and those of a run that stopped before it
    reported them (a journal entry still ``deleting`` whose index is gone was deleted)."""
    resp = await es.search(
        index=names.state,
        size=10_000,
        sort=[{"_doc": "asc"}],
        query={
            "bool": {
                "filter": [
                    {"term": {"kind": "retention"}},
                    {"terms": {"state": ["deleting", "deleted"]}},
                ]
            }
        },
    )
    deleted = []
    for hit in resp["hits"]["hits"]:
        done = hit["_source"]
        if done["state"] == "deleting" and await es.indices.exists(index=done["index"]):
            continue  # not deleted: the next run deletes it if it is still expired
        day = date.fromisoformat(done["day"])
        deletion = str(done.get("deletion", "")) or hit["_id"]
        deleted.append(DeletedIndex(done["index"], day, dict(done["entries_by_account"]), deletion))
    return sorted(deleted, key=lambda d: d.index)


@translated
async def mark_reported(es: AsyncElasticsearch, names: IndexNames, index: str) -> None:
    """Every account touched by the deletion of ``index`` has its audit entry."""
    await es.update(
        index=names.state, id=_journal_id(index), doc={"state": "reported"}, refresh=True
    )
