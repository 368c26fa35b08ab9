"""How far behind each destination is, read live: in entries and in seconds.

A destination's ``health`` (:mod:`service.actions.streaming`) holds ``lag_entries`` as of its
last successful batch, so it stands still while the destination fails or is paused, which is
when the lag matters. The API (``lag`` of ``GET /v1/destinations``), the page and ``/metrics``
read it live instead, from the destination's ``position`` and the log's head (``tree_size``):

- **entries**: ``head - position``, the positions the destination has not taken yet (entries
  its filter leaves out included: it reads past them too);
- **seconds**: how long the oldest of them has been waiting, ``now - sealed_at`` of the
  checkpoint that first covered position ``position + 1`` (when it could first be delivered).
  That checkpoint is found through the log's segments (a segment ends at the tree size of the
  checkpoint that sealed it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.errors import ServiceError
from service.runtime import Runtime
from service.search.destinations import DestinationStore
from service.search.integrity_log import IntegrityLog

log = logging.getLogger("auditlog")


@dataclass(frozen=True)
class Lag:
    entries: int
    """Positions of the log past the destination's (0: caught up)."""
    waiting_since: datetime | None
    """When the oldest of them could first be delivered (``None``: caught up, or unknown)."""


def instant(text: object) -> datetime | None:
    """An ISO 8601 instant of the API (``…Z``), ``None`` when absent or not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


async def _sealed_at(
    log: IntegrityLog, account_id: str, position: int, head: dict[str, Any]
) -> datetime | None:
    """When the checkpoint that first covered position ``position + 1`` was signed."""
    # as of the last scheduled refresh, as the head itself: a read, never a forced refresh
    starts = await log.segments_from(account_id, position + 1, fresh=False, size=1)
    end = starts[0] if starts else int(head["tree_size"])  # where its segment ends
    if end >= int(head["tree_size"]):
        return instant(head.get("sealed_at"))
    checkpoint = await log.checkpoint_at_size(account_id, end)
    return instant(checkpoint.get("sealed_at")) if checkpoint else None


async def destination_lags(
    runtime: Runtime, account_id: str, destinations: list[dict[str, Any]]
) -> dict[str, Lag]:
    """Each destination's lag by its id (destinations at one position share one lookup)."""
    log = IntegrityLog(runtime.es, runtime.names)
    head = await log.latest_checkpoint(account_id, fresh=False)
    size = int(head["tree_size"]) if head else 0
    since: dict[int, datetime | None] = {}
    lags: dict[str, Lag] = {}
    for destination in destinations:
        position = int(destination.get("position") or 0)
        behind = max(0, size - position)
        if behind and head is not None and position not in since:
            since[position] = await _sealed_at(log, account_id, position, head)
        lags[str(destination["id"])] = Lag(behind, since.get(position) if behind else None)
    return lags


def seconds_waiting(lag: Lag, now: datetime) -> float | None:
    """How long the oldest undelivered entry has waited; 0 when caught up, ``None`` unknown."""
    if lag.entries == 0:
        return 0.0
    if lag.waiting_since is None:
        return None
    return max(0.0, (now - lag.waiting_since).total_seconds())


async def lags_if_known(
    runtime: Runtime, account_id: str, destinations: list[dict[str, Any]]
) -> dict[str, Lag]:
    """:func:`destination_lags`, or none when the engine cannot tell now (the destinations are
    still shown, and managed, without it)."""
    try:
        return await destination_lags(runtime, account_id, destinations)
    except ServiceError as e:
        log.warning("the lag of %s's destinations cannot be read: %s", account_id, e)
        return {}


async def with_lag(
    runtime: Runtime, account_id: str, destinations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The destinations with ``lag``: ``{"entries": n, "seconds": s}`` (``seconds`` rounded to
    a tenth, ``null`` when the log cannot tell), or ``null`` when the log cannot be read."""
    lags = await lags_if_known(runtime, account_id, destinations)
    now = datetime.now(UTC)
    shown = []
    for destination in destinations:
        lag = lags.get(str(destination["id"]))
        if lag is None:
            shown.append({**destination, "lag": None})
            continue
        seconds = seconds_waiting(lag, now)
        shown.append(
            {
                **destination,
                "lag": {
                    "entries": lag.entries,
                    "seconds": None if seconds is None else round(seconds, 1),
                },
            }
        )
    return shown


@dataclass(frozen=True)
class Figures:
    """What ``/metrics`` says of the streaming: each destination this process delivers to, with
    its live lag, and how many destinations of the deployment are in each status."""

    delivering: list[tuple[dict[str, Any], Lag]]
    statuses: dict[str, int]


async def metrics_figures(runtime: Runtime) -> Figures:
    store = DestinationStore(runtime.es, runtime.names)
    found = await store.some(sorted(runtime.delivering))
    by_account: dict[str, list[dict[str, Any]]] = {}
    for destination in found:
        by_account.setdefault(str(destination["account_id"]), []).append(destination)
    delivering = []
    for account_id, destinations in sorted(by_account.items()):
        lags = await destination_lags(runtime, account_id, destinations)
        delivering += [(d, lags[str(d["id"])]) for d in destinations]
    return Figures(delivering, await store.count_by_status())
