"""A destination's lag, read live while it fails and once it caught up: in the API (``lag``) and
in ``/metrics`` for a platform admin key (per destination the instance delivers to, and the
deployment's count by status), never for anyone else (they name accounts)."""

from __future__ import annotations

import re

from service.config import Settings
from tests.helpers import ADMIN, new_account
from tests.streaming.deployment import (
    SCOPES,
    create_destination,
    ingest_some,
    start_service,
    until,
)
from tests.streaming.webhook_receiver import SECRET, Receiver


def _gauge(text: str, name: str, destination: str) -> float | None:
    found = re.search(rf'^{name}{{destination="{destination}",[^}}]*}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def test_the_lag_of_a_failing_destination_grows_and_is_gone_once_delivered(
    deployment: Settings, receiver: Receiver
) -> None:
    client = start_service(deployment)
    try:
        _, headers = new_account(client, scopes=SCOPES)
        receiver.answer = 503
        created = create_destination(client, headers, kind="webhook", url=receiver.url,
                                     secrets={"secret": SECRET})  # fmt: skip
        path = f"/v1/destinations/{created['id']}"
        ingest_some(client, headers, 12)

        def lagging() -> bool:
            found = client.get(path, headers=headers).json()
            return bool(found["lag"]["entries"] >= 12 and found["lag"]["seconds"]
                        and found["health"].get("failed"))  # fmt: skip

        until(lagging, "the failing destination's lag, live")
        listed = client.get("/v1/destinations", headers=headers).json()["destinations"]
        assert listed[0]["lag"]["entries"] >= 12 and listed[0]["lag"]["seconds"] > 0
        until(lambda: _gauge(client.get("/metrics", headers=ADMIN).text,
                             "auditlog_destination_lag_entries", created["id"]) is not None,
              "the lag in /metrics")  # fmt: skip
        metrics = client.get("/metrics", headers=ADMIN).text
        lag_entries = _gauge(metrics, "auditlog_destination_lag_entries", created["id"])
        assert lag_entries is not None and lag_entries >= 12
        lag_seconds = _gauge(metrics, "auditlog_destination_lag_seconds", created["id"])
        assert lag_seconds is not None and lag_seconds > 0
        failed = _gauge(metrics, "auditlog_destination_failed_batches_total", created["id"])
        assert failed is not None and failed >= 1
        assert re.search(r'^auditlog_destinations\{status="failing"\} [1-9]', metrics, re.M)
        for anyone in ({}, headers):  # no key, or an account's: the counters, no account named
            public = client.get("/metrics", headers=anyone).text
            assert "auditlog_events_total" in public and "auditlog_destination" not in public
        receiver.answer = 200
        until(lambda: client.get(path, headers=headers).json()["lag"]
              == {"entries": 0, "seconds": 0.0}, "caught up")  # fmt: skip
        metrics = client.get("/metrics", headers=ADMIN).text
        assert _gauge(metrics, "auditlog_destination_lag_entries", created["id"]) == 0
        delivered = _gauge(metrics, "auditlog_destination_delivered_entries_total", created["id"])
        assert delivered is not None and delivered >= 12
        assert _gauge(metrics, "auditlog_destination_last_success_timestamp_seconds",
                      created["id"])  # fmt: skip
    finally:
        client.__exit__(None, None, None)
