"""Tests of the demo entry generator: contract shape, determinism, volume and a coherent story.

Expected values are written literally from the contract (``/work/shared/CONTRACT.md``), not read
from the module under test.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from service.demo.content import DEMO_ACCOUNTS, DemoAccount, Member, generate_demo_entries

NOW = datetime(2026, 11, 26, 10, 15, 30, 123456, tzinfo=UTC)
DAYS = 90
NUMBER = (int, float)
CATEGORIES = {"audit", "credits", "ai", "webhook", "signal", "integration", "api"}
TYPES = {"notice", "warning", "error"}
KNOWN_METADATA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "audit": {"target_type": str, "target_id": str, "target_name": str, "ip": str},
    "credits": {
        "credits_used": NUMBER,
        "credits_balance": NUMBER,
        "signal_name": str,
        "post_urn": str,
    },
    "ai": {
        "agent_id": str,
        "agent_name": str,
        "run_id": str,
        "status": str,
        "duration_ms": NUMBER,
        "model": str,
        "tokens_in": NUMBER,
        "tokens_out": NUMBER,
        "credits_used": NUMBER,
    },
    "webhook": {
        "webhook_id": str,
        "url": str,
        "event": str,
        "status_code": int,
        "attempt": int,
        "duration_ms": NUMBER,
        "error": str,
    },
    "signal": {
        "signal_id": str,
        "signal_name": str,
        "run_id": str,
        "processed": int,
        "post_urn": str,
        "contact_name": str,
    },
    "integration": {
        "provider": str,
        "object": str,
        "operation": str,
        "record_id": str,
        "contact_name": str,
        "status": str,
    },
    "api": {
        "method": str,
        "path": str,
        "status_code": int,
        "duration_ms": NUMBER,
        "ip": str,
        "api_key_id": str,
    },
}
ENTRY_KEYS = {"id", "account_id", "timestamp", "category", "type", "actor", "action", "message"}
ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
TIMESTAMP_PATTERN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

Entry = dict[str, Any]


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    return list(generate_demo_entries(NOW))


@pytest.fixture(scope="module")
def by_account(entries: list[Entry]) -> dict[str, list[Entry]]:
    grouped: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        grouped[entry["account_id"]].append(entry)
    return grouped


def instant(entry: Entry) -> datetime:
    return datetime.strptime(entry["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")


def test_same_arguments_give_the_same_entries(entries: list[Entry]) -> None:
    assert list(generate_demo_entries(NOW)) == entries
    assert list(generate_demo_entries(NOW, seed=8)) != entries


def test_demo_accounts() -> None:
    expected = {("acme", "Acme Corp", "Europe/Paris"), ("globex", "Globex", "America/New_York")}
    expected.add(("initech", "Initech", "UTC"))
    assert {(a.id, a.name, a.timezone) for a in DEMO_ACCOUNTS} == expected
    for account in DEMO_ACCOUNTS:
        assert 3 <= len(account.members) <= 5
        assert all(m.email.endswith(f"@{account.id}.test") for m in account.members)
    member_ids = [m.id for a in DEMO_ACCOUNTS for m in a.members]
    assert len(member_ids) == len(set(member_ids))


def test_a_busy_page_per_account(by_account: dict[str, list[Entry]]) -> None:
    assert set(by_account) == {"acme", "globex", "initech"}
    for account_entries in by_account.values():
        assert 1_500 <= len(account_entries) <= 3_000


def test_every_category_in_every_account(by_account: dict[str, list[Entry]]) -> None:
    for account_entries in by_account.values():
        assert {entry["category"] for entry in account_entries} == CATEGORIES


def test_entries_have_the_contract_shape(entries: list[Entry]) -> None:
    for entry in entries:
        assert set(entry) == ENTRY_KEYS | {"metadata"}
        assert entry["category"] in CATEGORIES
        assert entry["type"] in TYPES
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", entry["action"])
        assert isinstance(entry["message"], str) and entry["message"]
        assert TIMESTAMP_PATTERN.fullmatch(entry["timestamp"])
        actor = entry["actor"]
        assert actor["type"] in {"user", "system", "api_key"}
        expected_keys = {"type", "id", "name"} | ({"email"} if actor["type"] == "user" else set())
        assert set(actor) == expected_keys
        assert all(isinstance(value, str) and value for value in actor.values())


def test_ids_are_unique_and_well_formed(entries: list[Entry]) -> None:
    ids = [entry["id"] for entry in entries]
    assert len(ids) == len(set(ids))
    assert all(ID_PATTERN.fullmatch(entry_id) for entry_id in ids)
    assert all(e["id"].startswith(f"demo-{e['account_id']}-") for e in entries)


def test_timestamps_are_in_the_window_and_ascending(by_account: dict[str, list[Entry]]) -> None:
    for account_entries in by_account.values():
        instants = [instant(entry) for entry in account_entries]
        assert all(NOW - timedelta(days=DAYS) < ts <= NOW for ts in instants)
        assert instants == sorted(instants)
        assert instants[0] < NOW - timedelta(days=DAYS - 1)
        assert instants[-1] > NOW - timedelta(days=1)


def test_integration_entries_are_younger_than_29_days(entries: list[Entry]) -> None:
    integration = [e for e in entries if e["category"] == "integration"]
    assert integration
    assert all(instant(e) > NOW - timedelta(days=29) for e in integration)
    assert {e["metadata"]["provider"] for e in integration} == {"hubspot", "attio"}


def test_metadata_keys_are_known_and_typed(entries: list[Entry]) -> None:
    for entry in entries:
        known = KNOWN_METADATA[entry["category"]]
        assert set(entry["metadata"]) <= set(known), entry
        for key, value in entry["metadata"].items():
            assert isinstance(value, known[key]) and not isinstance(value, bool), (key, entry)
        assert entry["metadata"].get("credits_used", 0) >= 0


def test_type_proportions(entries: list[Entry], by_account: dict[str, list[Entry]]) -> None:
    counts = Counter(entry["type"] for entry in entries)
    assert 0.01 <= counts["error"] / len(entries) <= 0.03
    assert 0.02 <= counts["warning"] / len(entries) <= 0.08
    for account_entries in by_account.values():
        account_counts = Counter(entry["type"] for entry in account_entries)
        assert account_counts["notice"] / len(account_entries) >= 0.9
        assert 0.005 <= account_counts["error"] / len(account_entries) <= 0.035


def test_types_agree_with_what_happened(entries: list[Entry]) -> None:
    for entry in entries:
        meta, action, type_ = entry["metadata"], entry["action"], entry["type"]
        if action == "webhook.delivery.failed":
            assert type_ == "error" and meta["attempt"] == 3 and meta["error"]
        elif action == "webhook.delivery.retrying":
            assert type_ == "warning" and meta["attempt"] < 3 and meta["error"]
        elif action == "webhook.delivery.succeeded":
            assert meta["status_code"] in {200, 204} and "error" not in meta
            assert type_ == ("notice" if meta["attempt"] == 1 else "warning")
        elif action == "api.request":
            status = meta["status_code"]
            assert type_ == ("notice" if status < 400 else "warning" if status < 500 else "error")
        elif entry["category"] in {"integration", "ai"}:
            assert (meta["status"] == "failed") == (type_ == "error")
        elif action == "signal.run.failed":
            assert type_ == "error"


def test_webhook_failures_are_retried(entries: list[Entry]) -> None:
    attempts = Counter(
        (e["action"], e["metadata"]["attempt"]) for e in entries if e["category"] == "webhook"
    )
    assert attempts["webhook.delivery.retrying", 1] > 0
    assert attempts["webhook.delivery.succeeded", 2] > 0
    assert attempts["webhook.delivery.failed", 3] > 0
    codes = {e["metadata"].get("status_code") for e in entries if e["category"] == "webhook"}
    assert {200, 204} <= codes and any(code and code >= 500 for code in codes)


def test_credit_balance_runs_down_and_is_topped_up(by_account: dict[str, list[Entry]]) -> None:
    for account_entries in by_account.values():
        credits = [e for e in account_entries if e["category"] == "credits"]
        actions = Counter(e["action"] for e in credits)
        assert actions["credits.consumed"] > 100 and actions["credits.topped_up"] >= 1
        balance = None
        for entry in credits:
            meta = entry["metadata"]
            assert meta["credits_balance"] >= 0
            if entry["action"] == "credits.consumed" and balance is not None:
                assert meta["credits_balance"] == balance - meta["credits_used"]
            elif entry["action"] == "credits.topped_up" and balance is not None:
                assert meta["credits_balance"] > balance
            balance = meta["credits_balance"]


def test_daily_and_weekly_rhythm(by_account: dict[str, list[Entry]]) -> None:
    timezones = {account.id: ZoneInfo(account.timezone) for account in DEMO_ACCOUNTS}
    for account_id, account_entries in by_account.items():
        local = [instant(e).astimezone(timezones[account_id]) for e in account_entries]
        per_day = Counter(ts.date() for ts in local)
        days = list(per_day)[1:-1]  # the first and last days are partial
        weekdays = mean(per_day[day] for day in days if day.weekday() < 5)
        weekends = mean(per_day[day] for day in days if day.weekday() >= 5)
        assert weekends < 0.7 * weekdays
        per_hour = Counter(ts.hour for ts in local)
        night = mean(per_hour[hour] for hour in range(0, 5))
        office = mean(per_hour[hour] for hour in range(9, 18))
        assert night < office / 4


def test_realistic_details(entries: list[Entry]) -> None:
    urns = [e["metadata"]["post_urn"] for e in entries if "post_urn" in e["metadata"]]
    assert urns and all(re.fullmatch(r"urn:li:activity:\d{19}", urn) for urn in urns)
    models = {e["metadata"]["model"] for e in entries if e["category"] == "ai"}
    assert models <= {"gpt-4o-mini", "gpt-4o", "claude-sonnet-4"}
    runs = [e for e in entries if e["action"] == "signal.run.completed"]
    assert {"type": "system", "id": "scheduler", "name": "Scheduler"} in [e["actor"] for e in runs]
    assert any(e["actor"]["type"] == "user" for e in runs)  # "Run now" by a team member
    audit = [e for e in entries if e["category"] == "audit"]
    assert all(e["actor"]["type"] == "user" for e in audit)
    assert {"settings.signal.updated", "keys.created", "members.invited"} <= {
        e["action"] for e in audit
    }
    changed = next(e for e in audit if e["action"] == "settings.signal.updated")
    assert changed["message"].startswith(
        f"{changed['actor']['name']} changed the Signal '{changed['metadata']['target_name']}'"
    )
    api_actors = {e["actor"]["type"] for e in entries if e["category"] == "api"}
    assert api_actors == {"api_key"}


def test_days_limits_the_window() -> None:
    week = list(generate_demo_entries(NOW, days=7))
    assert week
    assert all(NOW - timedelta(days=7) < instant(e) <= NOW for e in week)


def test_a_custom_account() -> None:
    solo = DemoAccount("solo", "Solo", "Asia/Tokyo", (Member("u_1", "Ana Lima", "ana@solo.test"),))
    entries = list(generate_demo_entries(NOW, days=30, seed=1, accounts=[solo]))
    assert entries and {e["account_id"] for e in entries} == {"solo"}
    audit_actors = {e["actor"]["id"] for e in entries if e["category"] == "audit"}
    assert audit_actors == {"u_1"}
    assert [e["id"] for e in entries][:2] == ["demo-solo-000001", "demo-solo-000002"]


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next(generate_demo_entries(datetime(2026, 11, 26, 10, 15)))
