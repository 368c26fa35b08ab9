"""The syslog sender against a real rsyslogd: RFC 5424 messages, octet-counted frames over TCP and
TLS, certificates, the address guard, receivers that restart or crash, messages over the limit.

Messages are read back as rsyslogd wrote them and parsed here, by a parser of this file (not the
sender's code); the expected values are written literally or taken from the events sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from service.streaming.guard import AddressGuard, parse_networks
from service.streaming.senders.base import DeliveryError, Event, Target
from service.streaming.senders.syslog import SyslogSender, check_target
from tests.helpers import entry
from tests.streaming.syslog_receiver import Rsyslog

LOOPBACK = AddressGuard(allowed=parse_networks("127.0.0.0/8, ::1/128"))
SEVERITY = {"error": 3, "warning": 4, "notice": 5}
AUDIT = 13
TEXT = "Zoë a payé 10 € — 東京 ✓"
ESCAPED = 'acme "eu" [x] \\'
"""An account with the three characters RFC 5424 escapes in a PARAM-VALUE (a backslash last)."""
ESCAPED_RAW = b'account="acme \\"eu\\" [x\\] \\\\"'
"""The same as the PARAM-VALUE must read on the wire."""


@dataclass
class Received:
    pri: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd_id: str
    params: dict[str, str]
    msg: Any


def parse(message: bytes) -> Received:
    """An RFC 5424 message with one SD-ELEMENT and a UTF-8 MSG (BOM and JSON)."""
    text = message.decode("utf-8")
    header = re.match(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[", text)
    assert header, text[:200]
    rest = text[header.end() :]
    sd_id, _, rest = rest.partition(" ")
    params: dict[str, str] = {}
    while True:
        name, _, rest = rest.partition('="')
        value, i = [], 0
        while rest[i] != '"':
            assert rest[i] != "]", f"an unescaped ] in {name}"
            if rest[i] == "\\" and rest[i + 1] in '"\\]':
                i += 1
            value.append(rest[i])
            i += 1
        params[name] = "".join(value)
        rest = rest[i + 1 :]
        if rest.startswith("]"):
            break
        assert rest.startswith(" "), rest[:50]
        rest = rest[1:]
    assert rest.startswith("] \ufeff"), rest[:20]
    pri, timestamp, hostname, app_name, procid, msgid = header.groups()
    return Received(int(pri), timestamp, hostname, app_name, procid, msgid, sd_id, params,
                    json.loads(rest[3:]))  # fmt: skip


def entry_events(count: int, *, start: int = 0, **fields: object) -> list[Event]:
    types = ["error", "warning", "notice"]
    events: list[Event] = []
    for n in range(count):
        wanted = {"id": f"e-{uuid.uuid4().hex}", "account_id": ESCAPED, "type": types[n % 3],
                  "message": f"{TEXT} #{start + n}", **fields}  # fmt: skip
        events.append({"event_type": "entry", "position": start + n, "account_id": ESCAPED,
                       "entry": entry(**wanted)})  # fmt: skip
    return events


def ids(events: list[Event]) -> list[str]:
    return [event["entry"]["id"] for event in events]


def received(lines: list[bytes], wanted: list[str]) -> list[Received]:
    """The messages of ``wanted`` ids, in the order received."""
    return [m for m in map(parse, lines) if m.params.get("id") in wanted]


def has_all(wanted: list[str]) -> Any:
    return lambda lines: set(wanted) <= {m.params["id"] for m in received(lines, wanted)}


def url(receiver: Rsyslog, scheme: str) -> str:
    if scheme == "tcp":
        return f"tcp://127.0.0.1:{receiver.tcp_port}"
    return f"tls://localhost:{receiver.tls_port}"


def syslog_target(address: str, receiver: Rsyslog, **settings: object) -> Target:
    ca = receiver.tls.ca.read_text()
    return Target(kind="syslog", url=address, settings={"ca_pem": ca, **settings}, secrets={})


async def send_until_delivered(sender: SyslogSender, events: list[Event]) -> int:
    """Send as the delivery loop does: again after a retried DeliveryError. The attempts made."""
    for attempt in range(1, 4):
        try:
            await sender.send(events)
        except DeliveryError as e:
            assert e.retry, e.message
            continue
        return attempt
    raise AssertionError("not delivered in 3 attempts")


def deliver(target: Target, *batches: list[Event], guard: AddressGuard = LOOPBACK) -> None:
    async def run() -> None:
        sender = SyslogSender(target, guard)
        try:
            for batch in batches:
                await sender.send(batch)
        finally:
            await sender.close()

    asyncio.run(run())


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_events_arrive_in_order_as_rfc_5424_messages(rsyslog: Rsyslog, scheme: str) -> None:
    first = entry_events(6)
    second = entry_events(5, start=6, action='say "hi" \\ [x]')
    target = syslog_target(url(rsyslog, scheme), rsyslog, host="auditlog.test")
    port = rsyslog.tcp_port if scheme == "tcp" else rsyslog.tls_port
    connections = []

    async def run() -> None:
        sender = SyslogSender(target, LOOPBACK)
        for batch in (first, second):
            await sender.send(batch)
            connections.append(rsyslog.peers(port))
        await sender.close()

    asyncio.run(run())
    assert len(connections[0]) == 1 and connections[1] == connections[0], "one connection"
    sent = first + second
    lines = rsyslog.wait_for(has_all(ids(sent)))
    ours = [line for line in lines if any(i.encode() in line for i in ids(sent))]
    assert len(ours) == len(sent) and all(ESCAPED_RAW in line for line in ours)
    found = received(lines, ids(sent))
    assert [m.params["id"] for m in found] == ids(sent)
    for message, event in zip(found, sent, strict=True):
        sent_entry = event["entry"]
        assert message.pri == AUDIT * 8 + SEVERITY[sent_entry["type"]]
        assert message.timestamp == "2026-11-20T10:15:00.123Z"
        assert message.hostname == "auditlog.test"
        assert (message.app_name, message.procid) == ("auditlog", "-")
        assert message.sd_id == "auditlog@32473"
        assert message.params == {
            "id": sent_entry["id"], "position": str(event["position"]), "account": ESCAPED,
            "category": "webhook", "type": sent_entry["type"], "action": sent_entry["action"],
        }  # fmt: skip
        assert message.msg == event
    assert {m.msgid for m in found} == {"webhook.delivery.failed", 'say_"hi"_\\_[x]'}
    assert found[-1].msg["entry"]["message"] == f"{TEXT} #10"


def test_a_checkpoint_is_an_info_message_of_the_facility_asked(rsyslog: Rsyslog) -> None:
    checkpoint = {"account_id": "acme", "genesis": "g", "key_id": "k1", "previous": "",
                  "root": "ab" * 32, "sealed_at": "2026-11-20T11:00:00.5Z", "seq": 4,
                  "tree_size": 120, "signature": "c2ln"}  # fmt: skip
    event = {"event_type": "checkpoint", "account_id": "acme", "checkpoint": checkpoint}
    target = syslog_target(url(rsyslog, "tcp"), rsyslog, facility="local3", app_name="audit-log")
    deliver(target, [event])

    wanted = ["checkpoint-acme-4"]
    message, *_ = received(rsyslog.wait_for(has_all(wanted)), wanted)
    assert message.pri == 19 * 8 + 6
    assert (message.timestamp, message.app_name) == ("2026-11-20T11:00:00.500Z", "audit-log")
    assert message.msgid == "checkpoint"
    assert message.params == {"id": "checkpoint-acme-4", "account": "acme", "type": "checkpoint",
                              "seq": "4", "tree_size": "120"}  # fmt: skip
    assert message.msg == event


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_a_100_kb_entry_arrives_whole_within_the_limit(rsyslog: Rsyslog, scheme: str) -> None:
    events = entry_events(2, message=TEXT * 4000)  # 4000 x 35 bytes: 140 KB of UTF-8
    assert all(len(json.dumps(e, ensure_ascii=False).encode()) > 100_000 for e in events)
    deliver(syslog_target(url(rsyslog, scheme), rsyslog, max_message_bytes=200_000), events)

    found = received(rsyslog.wait_for(has_all(ids(events))), ids(events))
    assert [m.msg for m in found] == events
    assert all("truncated" not in m.params for m in found)


def test_an_entry_over_the_limit_is_shortened_with_a_marker(rsyslog: Rsyslog) -> None:
    big = entry_events(1, message="é" * 50_000, metadata={"note": "n" * 30_000})
    small = entry_events(1, start=1)
    full_json = len(json.dumps(big[0], ensure_ascii=False, separators=(",", ":")).encode())
    deliver(syslog_target(url(rsyslog, "tls"), rsyslog), big + small)  # default limit: 64 KiB

    lines = rsyslog.wait_for(has_all(ids(big + small)))
    message, after = received(lines, ids(big + small))
    raw = next(raw for raw in lines if parse(raw).params["id"] == ids(big)[0])
    assert len(raw) <= 64 * 1024
    assert message.params["truncated"] == str(full_json)
    shortened = message.msg["entry"]
    assert re.fullmatch(r"é+\[truncated: \d+ bytes\]", shortened["message"])
    kept = {k: v for k, v in shortened.items() if k not in ("message", "metadata")}
    assert kept == {k: v for k, v in big[0]["entry"].items() if k not in ("message", "metadata")}
    assert after.msg == small[0], "the next message is whole and framed apart"


def test_a_certificate_for_another_name_is_refused(rsyslog: Rsyslog) -> None:
    target = syslog_target(f"tls://localhost:{rsyslog.wrong_tls_port}", rsyslog)
    with pytest.raises(DeliveryError) as caught:
        deliver(target, entry_events(1))
    assert caught.value.retry is False
    assert "certificate" in caught.value.message and "localhost" in caught.value.message


def test_a_certificate_of_an_unknown_ca_is_refused(rsyslog: Rsyslog) -> None:
    target = Target(kind="syslog", url=url(rsyslog, "tls"), settings={}, secrets={})
    with pytest.raises(DeliveryError) as caught:
        deliver(target, entry_events(1))
    assert caught.value.retry is False
    assert "certificate" in caught.value.message


def test_the_guard_refuses_loopback_without_an_allow_list(rsyslog: Rsyslog) -> None:
    events = entry_events(1)
    with pytest.raises(DeliveryError) as caught:
        deliver(syslog_target(url(rsyslog, "tcp"), rsyslog), events, guard=AddressGuard())
    assert caught.value.retry is False
    assert "loopback" in caught.value.message


@pytest.mark.parametrize(
    ("address", "settings", "field"),
    [
        ("udp://127.0.0.1:514", {}, "url"),
        ("tcp://127.0.0.1:514/path", {}, "url"),
        ("tcp://127.0.0.1:99999", {}, "url"),
        ("tcp://127.0.0.1:514", {"facility": 24}, "facility"),
        ("tcp://127.0.0.1:514", {"facility": "local8"}, "facility"),
        ("tcp://127.0.0.1:514", {"app_name": "audit log"}, "app_name"),
        ("tcp://127.0.0.1:514", {"host": "h" * 256}, "host"),
        ("tcp://127.0.0.1:514", {"max_message_bytes": 1024}, "max_message_bytes"),
        ("tls://localhost:6514", {"ca_pem": "not a certificate"}, "ca_pem"),
    ],
)
def test_settings_that_cannot_work_name_the_field(address: str, settings: dict[str, Any],
                                                  field: str) -> None:  # fmt: skip
    target = Target(kind="syslog", url=address, settings=settings, secrets={})
    with pytest.raises(ValueError, match=f"^{field}: "):
        check_target(target)
    with pytest.raises(DeliveryError) as caught:
        deliver(target, entry_events(1))
    assert caught.value.retry is False
    assert f"{field}: " in caught.value.message


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_a_receiver_restarted_between_batches_gets_every_event(new_rsyslog: Any,
                                                              scheme: str) -> None:  # fmt: skip
    receiver: Rsyslog = new_rsyslog()
    first, second = entry_events(5), entry_events(5, start=5)

    async def run() -> None:
        sender = SyslogSender(syslog_target(url(receiver, scheme), receiver), LOOPBACK)
        await sender.send(first)
        await asyncio.to_thread(receiver.restart)
        await send_until_delivered(sender, second)
        await sender.close()

    asyncio.run(run())
    found = received(receiver.wait_for(has_all(ids(first + second))), ids(first + second))
    assert set(ids(first + second)) <= {m.params["id"] for m in found}
    assert [m.params["id"] for m in found if m.params["id"] in ids(second)] == ids(second)


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_a_receiver_restarted_right_before_a_batch_gets_it(new_rsyslog: Any, scheme: str) -> None:
    """The restart blocks the event loop, so the sender has had no turn to read the end of the
    connection when the batch comes: it must notice it then, not write into the dead one."""
    receiver: Rsyslog = new_rsyslog()
    first, second = entry_events(2), entry_events(3, start=2)

    async def run() -> None:
        sender = SyslogSender(syslog_target(url(receiver, scheme), receiver), LOOPBACK)
        await sender.send(first)
        receiver.restart()
        await send_until_delivered(sender, second)
        await sender.close()

    asyncio.run(run())
    found = received(receiver.wait_for(has_all(ids(second))), ids(second))
    assert [m.params["id"] for m in found] == ids(second)


def test_a_batch_taken_by_a_receiver_that_then_crashed_is_sent_again(new_rsyslog: Any) -> None:
    """The receiver is paused, takes a batch into its socket without reading it, and is killed:
    that batch counted as delivered, and only the resend window brings it to the receiver."""
    receiver: Rsyslog = new_rsyslog()
    opening, taken, after = entry_events(2), entry_events(3, start=2), entry_events(3, start=5)

    async def run() -> None:
        sender = SyslogSender(syslog_target(url(receiver, "tcp"), receiver), LOOPBACK)
        await sender.send(opening)
        await asyncio.to_thread(receiver.pause)
        await sender.send(taken)
        await asyncio.to_thread(receiver.kill)
        await asyncio.to_thread(receiver.start)
        await send_until_delivered(sender, after)
        await sender.close()

    asyncio.run(run())
    every = ids(opening + taken + after)
    found = received(receiver.wait_for(has_all(every)), every)
    assert set(every) <= {m.params["id"] for m in found}
    assert [m.params["id"] for m in found if m.params["id"] in ids(after)] == ids(after)


def test_the_service_streams_an_account_to_rsyslog(
    rsyslog: Rsyslog, engine_url: str, es: Any
) -> None:
    """End to end: a syslog destination created through the API, entries ingested, every one
    written by rsyslogd, in position order, with the signed checkpoint."""
    from tests.streaming.deployment import create_destination, ingest_some, streaming_account

    with streaming_account(engine_url, es) as (client, headers, _):
        create_destination(client, headers, kind="syslog",
                           url=f"tcp://127.0.0.1:{rsyslog.tcp_port}", start=0)  # fmt: skip
        ids = ingest_some(client, headers, 15)

        def arrived(lines: list[bytes]) -> bool:
            text = b"\n".join(lines).decode("utf-8", "replace")
            return all(i in text for i in ids) and "checkpoint" in text

        text = b"\n".join(rsyslog.wait_for(arrived)).decode("utf-8", "replace")
        assert all(i in text for i in ids), "an entry did not reach rsyslog"
        at = [text.index(f'id="{i}"') for i in ids]
        assert at == sorted(at)  # in position order
