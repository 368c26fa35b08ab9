"""Entries as OCSF 1.5.0 events (:mod:`service.streaming.ocsf`).

Every event is checked against the JSON Schema of its class that the package
``ocsf-json-schema`` generates from the OCSF schema of the pinned version (required attributes,
enums, types, no attribute the class does not have). The entries come from the demo generator
(every category, realistic metadata), each category in every type of the vocabulary, the service's
own audit actions, odd ones, and a ``missing`` stub. End to end: a destination of format ``ocsf``
delivers valid events to a webhook, each carrying the entry as the feed gives it.
"""

from __future__ import annotations

import functools
import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from service.demo.content import generate_demo_entries
from service.streaming.guard import AddressGuard
from service.streaming.ocsf import OCSF_VERSION, to_ocsf
from service.streaming.senders.base import Target
from service.streaming.senders.elastic import bulk_body
from service.streaming.senders.event_fields import document_id, entry_id, epoch_ms
from service.streaming.senders.splunk import SplunkHecSender
from service.streaming.senders.syslog_message import MessageFormat
from service.vocabulary import CATEGORIES, TYPES
from tests.helpers import entry
from tests.streaming.deployment import create_destination, streaming_account, until
from tests.streaming.test_splunk import parse_envelopes
from tests.streaming.test_syslog import parse
from tests.streaming.webhook_receiver import SECRET, Receiver

SCHEMA = get_ocsf_schema(OCSF_VERSION)
CLASS_NAMES = {int(c["uid"]): name for name, c in SCHEMA["classes"].items()}
STAMP, STAMP_MS = "2026-11-20T10:15:00.123Z", 1795169700123
"""An instant and its milliseconds since the epoch (``date -u -d 2026-11-20T10:15:00Z +%s``)."""


@functools.cache
def validator(class_uid: int) -> Draft202012Validator:
    schema = OcsfJsonSchemaEmbedded(SCHEMA).get_class_schema(CLASS_NAMES[class_uid])
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems(event: dict[str, Any]) -> list[str]:
    """What the class's JSON Schema finds wrong with ``event``."""
    found = validator(int(event["class_uid"])).iter_errors(event)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in found]


def fed(raw: dict[str, Any], position: int, account_id: str = "acme") -> dict[str, Any]:
    """An entry as the feed gives it: its position, account, digest and local time added."""
    return {"position": position, "account_id": account_id, **raw, "entry_digest": "ab" * 32,
            "local_time": str(raw["timestamp"]).replace("Z", "+00:00")}  # fmt: skip


def audit(action: str, target_type: str | None, **more: Any) -> dict[str, Any]:
    target = {"target_type": target_type, "target_id": "t_1", "target_name": "Target"}
    return entry(category="audit", type="notice", action=action, message=f"did {action}",
                 actor={"type": "user", "id": "u_1", "name": "Jane Doe",
                        "email": "jane@acme.test"},
                 metadata={**(target if target_type else {}), **more})  # fmt: skip


SERVICE_AUDIT = [
    audit("account.created", "account"), audit("account.updated", "account"),
    audit("keys.created", "api_key"), audit("keys.revoked", "api_key"),
    audit("destination.created", "destination"), audit("destination.changed", "destination"),
    audit("destination.paused", "destination"), audit("destination.resumed", "destination"),
    audit("destination.deleted", "destination"), audit("destination.disabled", "destination"),
    audit("export.completed", "export"), audit("retention.deleted", "index"),
    audit("audit_log.viewed", None), audit("members.invited", "invitation"),
    audit("members.role_changed", "member"), audit("auth.logout", "member", ip="2001:db8::7"),
    audit("users.password_reset", "user"),
]  # fmt: skip
"""The service's own audit actions and a few a product would write."""
ODD = [
    entry(metadata={}),
    entry(category="api", type="notice", action="api.request", metadata={}),
    entry(category="api", type="error", action="api.request",
          actor={"type": "api_key", "id": "key_1"},
          metadata={"method": "brew", "path": "/pot", "status_code": 418, "ip": "not an ip",
                    "duration_ms": -5}),
    entry(metadata={"url": "http://[2001:db8::1]:8080/x?a=1", "method": "put",
                    "status_code": 201, "duration_ms": 3}),
    entry(metadata={"url": "not a url at all", "error": "connection refused"}),
    audit("auth.login.failed", "member", ip="::ffff:192.0.2.1"),
    entry(category="audit", action="settings.updated", metadata={},
          actor={"type": "user", "id": "u_2", "email": "root@localhost"}),
    entry(category="signal", actor={"type": "system", "id": "scheduler"}, metadata={}),
]  # fmt: skip
"""Missing or odd metadata and actors: still valid events."""
MISSING = {
    "position": 9, "id": "e-gone", "account_id": "acme", "timestamp": STAMP,
    "category": "api", "type": "error",
    "actor": {"type": "system", "id": "auditlog", "name": "auditlog"},
    "action": "auditlog.entry_missing", "message": "The entry e-gone is in the account's log but "
    "no longer stored: it was deleted or altered outside the service",
    "metadata": {}, "missing": True, "entry_digest": "cd" * 32, "local_time": STAMP,
}  # fmt: skip
"""What the feed gives for an entry the log holds and the engine does not."""


def demo() -> list[dict[str, Any]]:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    return list(generate_demo_entries(now=now, days=14, seed=11))


def every_category_in_every_type(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each category, its first demo entry once in each type of the vocabulary."""
    first = {e["category"]: e for e in reversed(entries)}
    return [
        {**first[c], "type": t, "id": f"{c}-{t}"} for c, t in itertools.product(CATEGORIES, TYPES)
    ]


def sample() -> list[dict[str, Any]]:
    entries = demo()
    raw = entries + every_category_in_every_type(entries) + SERVICE_AUDIT + ODD
    return [fed(e, n) for n, e in enumerate(raw, start=1)] + [MISSING]


def test_every_entry_is_a_valid_event_of_its_class() -> None:
    entries = sample()
    assert {(e["category"], e["type"]) for e in entries} >= set(
        itertools.product(CATEGORIES, TYPES)
    )
    classes = set()
    for one in entries:
        event = to_ocsf(one)
        assert problems(event) == [], (one, event)
        assert event["metadata"]["uid"] == one["id"] and event["unmapped"]["entry"] == one
        assert event["metadata"]["version"] == "1.5.0" and event["type_uid"] == (
            event["class_uid"] * 100 + event["activity_id"]
        )
        classes.add(event["class_uid"])
    assert classes == {0, 3001, 3002, 3004, 4002, 6003}


def _api(method: str, status: int, kind: str = "notice") -> dict[str, Any]:
    return entry(category="api", type=kind, action="api.request",
                 actor={"type": "api_key", "id": "key_9", "name": "Zapier"},
                 metadata={"method": method, "path": "/v1/signals", "status_code": status,
                           "ip": "203.0.113.7", "duration_ms": 80})  # fmt: skip


CASES = [
    (_api("GET", 200), {"class_uid": 6003, "activity_id": 2, "type_uid": 600302,
     "severity_id": 1, "status_id": 1, "status_code": "200", "duration": 80,
     "api": {"operation": "GET /v1/signals"}, "src_endpoint": {"ip": "203.0.113.7"},
     "http_request": {"http_method": "GET", "url": {"path": "/v1/signals"}},
     "http_response": {"code": 200},
     "actor": {"user": {"uid": "key_9", "name": "Zapier", "type_id": 99, "type": "API Key"}}}),
    (_api("PATCH", 429, "warning"), {"activity_id": 3, "severity_id": 3, "status_id": 2}),
    (_api("DELETE", 503, "error"), {"activity_id": 4, "severity_id": 4, "status_id": 2}),
    (_api("POST", 201), {"activity_id": 1, "type_name": "API Activity: Create"}),
    (entry(), {"class_uid": 4002, "category_uid": 4, "activity_id": 6, "type_uid": 400206,
     "severity_id": 4, "status_id": 2, "http_response": {"code": 502},
     "http_request": {"http_method": "POST", "url": {"url_string": "https://hooks.acme.test/x",
                      "scheme": "https", "hostname": "hooks.acme.test", "path": "/x"}},
     "dst_endpoint": {"hostname": "hooks.acme.test"}}),
    (entry(type="notice", action="webhook.delivery.succeeded", metadata={"status_code": 200}),
     {"class_uid": 4002, "severity_id": 1, "status_id": 1}),
    (audit("settings.signal.updated", "signal"), {"class_uid": 3004, "activity_id": 3,
     "type_uid": 300403, "entity": {"uid": "t_1", "name": "Target", "type": "signal",
     "type_id": 99}, "actor": {"user": {"uid": "u_1", "name": "Jane Doe",
     "email_addr": "jane@acme.test", "type_id": 1, "type": "User"}}}),
    (audit("destination.paused", "destination"), {"class_uid": 3004, "activity_id": 12}),
    (audit("export.completed", "export"), {"class_uid": 3004, "activity_id": 99,
     "activity_name": "export.completed"}),
    (audit("keys.revoked", "api_key"), {"class_uid": 3001, "activity_id": 6, "type_uid": 300106,
     "user": {"uid": "t_1", "name": "Target", "type_id": 99, "type": "API Key"}}),
    (audit("members.invited", "invitation"), {"class_uid": 3001, "activity_id": 1}),
    (audit("auth.login", "member", ip="198.51.100.4"), {"class_uid": 3002, "activity_id": 1,
     "status_id": 1, "src_endpoint": {"ip": "198.51.100.4"}, "service": {"uid": "acme"},
     "user": {"uid": "u_1", "name": "Jane Doe", "email_addr": "jane@acme.test"}}),
    ({**audit("auth.login.failed", "member"), "type": "warning"}, {"class_uid": 3002,
     "activity_id": 1, "status_id": 2, "severity_id": 3}),
    (entry(category="credits", type="notice", action="credits.consumed"), {"class_uid": 0,
     "category_uid": 0, "activity_id": 99, "type_uid": 99, "activity_name": "credits.consumed"}),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_each_class_maps_the_fields_it_has(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    one = fed({**raw, "id": "e-1", "timestamp": STAMP}, 42)
    event = to_ocsf(one)
    assert problems(event) == []
    for name, value in expected.items():
        if isinstance(value, dict):
            assert {k: event[name].get(k) for k in value} == value, name
        else:
            assert event[name] == value, name
    assert event["time"] == STAMP_MS and event["message"] == one["message"]
    assert event["metadata"] == {
        "version": "1.5.0", "product": {"name": "auditlog", "vendor_name": "auditlog",
                                        "version": event["metadata"]["product"]["version"]},
        "uid": "e-1", "tenant_uid": "acme", "sequence": 42, "log_name": one["category"],
        "event_code": one["action"],
    }  # fmt: skip


def test_a_missing_entry_is_a_failed_base_event_that_says_so() -> None:
    event = to_ocsf(MISSING)
    assert problems(event) == []
    assert (event["class_uid"], event["activity_id"], event["activity_name"]) == (
        0, 99, "auditlog.entry_missing")  # fmt: skip
    assert (event["severity_id"], event["status_id"]) == (4, 2)
    assert event["unmapped"]["entry"]["missing"] is True
    assert event["metadata"]["uid"] == "e-gone" and event["metadata"]["sequence"] == 9


def test_the_schemas_refuse_what_a_class_does_not_allow() -> None:
    """The validation is not vacuous: a required attribute missing, an attribute the class does
    not have, a wrong enum value are all found."""
    event = to_ocsf(fed(_api("GET", 200), 1))
    assert problems({k: v for k, v in event.items() if k != "api"})
    assert problems({**event, "entry": {}})
    assert problems({**event, "type_uid": 600305})
    assert problems({**event, "metadata": {**event["metadata"], "product": {}}})


def ocsf_event() -> dict[str, Any]:
    return to_ocsf(fed({**entry(), "id": "e-7", "timestamp": STAMP}, 7))


def test_every_sender_keys_and_dates_an_ocsf_event() -> None:
    event = ocsf_event()
    assert entry_id(event) == "e-7" and epoch_ms(event) == STAMP_MS
    splunk = Target("splunk_hec", "https://hec.example.com", {}, {"token": "t"})
    text = SplunkHecSender(splunk, AddressGuard(), host_name="h").envelope(event).decode()
    [envelope] = parse_envelopes(text)
    assert envelope["time"] == STAMP_MS / 1000 and envelope["event"] == event
    message = parse(MessageFormat().encode(event))
    assert message.params["id"] == "e-7" and message.timestamp == STAMP
    assert message.msg == event
    action, source = map(json.loads, bulk_body([event], "siem").splitlines())
    assert action["create"]["_id"].endswith("e-7") and source["@timestamp"] == STAMP
    assert {k: v for k, v in source.items() if k != "@timestamp"} == event


def test_an_ocsf_event_is_one_document_per_account_in_a_shared_index() -> None:
    """Entry ids are unique within an account only: two accounts' events are two documents."""
    event = ocsf_event()
    other = {**event, "metadata": {**event["metadata"], "tenant_uid": "globex"}}
    assert document_id(event) == "acme/e-7" and document_id(other) == "globex/e-7"


def _demo_for_ingest() -> list[dict[str, Any]]:
    """Recent demo entries, a few of each category, type and family of actions (``auth``,
    ``members``...: each OCSF class is there whatever the time of day), with ids of their
    own."""
    recent = generate_demo_entries(now=datetime.now(UTC), days=3, seed=5)
    taken: dict[tuple[str, str, str], int] = {}
    out = []
    for one in recent:
        key = (one["category"], one["type"], one["action"].split(".", 1)[0])
        if taken.get(key, 0) < 2:
            taken[key] = taken.get(key, 0) + 1
            body = {k: v for k, v in one.items() if k != "account_id"}
            out.append({**body, "id": f"o-{uuid.uuid4().hex[:12]}"})
    return out


@pytest.fixture
def deployment(engine_url: str, es: Elasticsearch) -> Iterator[tuple[Any, dict[str, str], str]]:
    with streaming_account(engine_url, es) as deployed:
        yield deployed


def test_an_ocsf_destination_delivers_valid_events(
    deployment: tuple[Any, dict[str, str], str], receiver: Receiver
) -> None:
    client, headers, account_id = deployment
    bad = {"name": "x", "kind": "webhook", "url": receiver.url, "secrets": {"secret": SECRET}}
    for fmt in ("OCSF", "cef", 1):
        refused = client.post("/v1/destinations", json={**bad, "format": fmt}, headers=headers)
        assert refused.status_code == 400 and refused.json()["error"]["field"] == "format"
    created = create_destination(client, headers, kind="webhook", url=receiver.url, start=0,
                                 format="ocsf", secrets={"secret": SECRET})  # fmt: skip
    assert created["format"] == "ocsf"
    sent = _demo_for_ingest()
    answer = client.post("/v1/entries", json={"entries": sent}, headers=headers).json()
    assert answer["created"] == len(sent), answer

    def ocsf_events() -> list[dict[str, Any]]:
        return [e for batch in receiver.batches for e in batch if "class_uid" in e]

    wanted = {e["id"] for e in sent}
    until(lambda: wanted <= {e["metadata"]["uid"] for e in ocsf_events()}, "every entry")
    until(lambda: any(e.get("event_type") == "checkpoint" for b in receiver.batches for e in b),
          "the checkpoint, in its own form")  # fmt: skip
    events = ocsf_events()
    assert all(problems(e) == [] for e in events), [problems(e) for e in events if problems(e)]
    sequences = [e["metadata"]["sequence"] for e in events]
    assert sequences == sorted(sequences) and sequences[0] == 1
    assert all(e["metadata"]["tenant_uid"] == account_id for e in events)
    feed = client.get("/v1/feed", params={"after": 0, "limit": 1000, "tz": "UTC"},
                      headers=headers).json()["entries"]  # fmt: skip
    by_id = {e["id"]: e for e in feed}
    assert all(e["unmapped"]["entry"] == by_id[e["metadata"]["uid"]] for e in events)
    assert {e["class_uid"] for e in events} >= {0, 3002, 3004, 4002, 6003}
    checkpoint = next(e for b in receiver.batches for e in b if e.get("event_type") == "checkpoint")
    assert checkpoint["account_id"] == account_id and checkpoint["checkpoint"]["signature"]
    assert receiver.bad_signatures == 0
