"""``auditlog verify --heads FILE`` on the real engine: heads kept as a streaming destination
receives them (checkpoint events of the service's signed heads, read through the API after each
seal), in each file shape a receiver stores, checked against the log as it is, then as it is
after tampering done with the raw Elasticsearch client."""

from __future__ import annotations

import io
import json
import os
import re
import time
import uuid
from contextlib import redirect_stderr, redirect_stdout
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.actions.heads_file import HeadsFileError, read_heads
from service.cli import main
from service.config import Settings
from service.integrity.checkpoints import leaf_hash_of, new_checkpoint
from service.integrity.keys import create_keys, load_keys
from service.integrity.merkle import Frontier
from service.search.indices import IndexNames
from service.streaming.senders.elastic import bulk_body
from service.streaming.senders.syslog_message import MessageFormat
from tests.helpers import entry, keys_for_tests, new_account

BATCHES = (3, 4, 2)
"""Entries ingested, one batch (and one seal, one head) after another."""
Kept = tuple[str, list[dict[str, Any]]]


def _cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    """``auditlog ARGS`` in this process: exit code, standard output, standard error."""
    env = {"AUDITLOG_ES_URL": str(settings.es_url), "AUDITLOG_INDEX_PREFIX": settings.index_prefix,
           "AUDITLOG_KEYS_DIR": str(keys_for_tests())}  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env), redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _verify(settings: Settings, account_id: str, path: Path) -> tuple[int, dict[str, Any]]:
    code, out, err = _cli(settings, "verify", "--account", account_id, "--heads", str(path))
    assert code in (0, 1), err
    return code, json.loads(out)


def _sealed_head(client: TestClient, headers: dict[str, str], refresh: Any) -> Any:
    """The account's head once everything it holds is sealed (its audit entries too)."""
    deadline = time.monotonic() + 30
    while True:
        refresh()
        report = client.get("/v1/integrity/verify", headers=headers).json()
        if report.get("pending") == 0 and report.get("tree_size", 0) >= report["entries_checked"]:
            return client.get("/v1/integrity/head", headers=headers).json()
        assert time.monotonic() < deadline, report
        time.sleep(0.3)


@pytest.fixture
def kept(client: TestClient, es: Elasticsearch, settings: Settings) -> Kept:
    """A new account and its heads: :data:`BATCHES` ingested, each once the one before is
    sealed, and the head after each seal (its audit entries sealed before the first)."""
    account_id, headers = new_account(client)
    refresh = partial(es.indices.refresh, index=f"{settings.index_prefix}-*")
    before = _sealed_head(client, headers, refresh)
    heads: list[dict[str, Any]] = []
    total = 0
    for size in BATCHES:
        entries = [entry(id=f"h{total + n}") for n in range(size)]
        resp = client.post("/v1/entries", json={"entries": entries}, headers=headers)
        assert resp.json()["created"] == size, resp.text
        total += size
        heads.append(_sealed_head(client, headers, refresh))
        assert heads[-1]["tree_size"] == before["tree_size"] + total
    assert [h["seq"] for h in heads] == [before["seq"] + n for n in (1, 2, 3)]
    return account_id, heads


def _event(head: dict[str, Any]) -> dict[str, Any]:
    return {"event_type": "checkpoint", "account_id": head["account_id"], "checkpoint": head}


def _entry_event(account_id: str, position: int) -> dict[str, Any]:
    return {"event_type": "entry", "position": position, "account_id": account_id,
            "entry": {**entry(id=f"h{position - 1}"), "account_id": account_id}}  # fmt: skip


def _delete(es: Elasticsearch, index: str, query: dict[str, Any]) -> None:
    """Delete what ``query`` finds, one document at a time (as someone with write access to
    the engine would; the engine here has no delete-by-query)."""
    es.indices.refresh(index=index)
    for hit in es.search(index=index, query=query, size=1000)["hits"]["hits"]:
        es.delete(index=hit["_index"], id=hit["_id"], refresh=True)


def _ndjson(path: Path, values: list[Any]) -> Path:
    path.write_text("".join(json.dumps(v) + "\n" for v in values))
    return path


def test_kept_heads_match_the_log_in_every_file_shape(
    kept: Kept, settings: Settings, tmp_path: Path
) -> None:
    account_id, heads = kept
    events = [_event(h) for h in heads]
    entry_a, entry_b = _entry_event(account_id, 1), _entry_event(account_id, 2)
    other = {**heads[0], "account_id": "someone-else"}
    syslog = MessageFormat(hostname="receiver")
    hec = [{"time": 1, "host": "h", "source": "auditlog", "event": e} for e in events]
    shapes = {  # file → (values ignored, duplicates)
        _ndjson(tmp_path / "events.ndjson",
                [entry_a, events[0], entry_b, events[1], events[2], events[1]]): (2, 1),
        tmp_path / "array.json": (1, 0),
        tmp_path / "batches.json": (1, 0),
        tmp_path / "syslog.log": (2, 0),
        tmp_path / "hec.json": (0, 0),
        tmp_path / "bulk.ndjson": (3, 0),
        _ndjson(tmp_path / "bare.ndjson", [*heads, _event(other)]): (0, 0),
    }  # fmt: skip
    (tmp_path / "array.json").write_text(json.dumps([entry_a, *events], indent=2))
    (tmp_path / "batches.json").write_text(
        json.dumps({"events": [events[0], entry_a, events[1], events[2]]}, indent=2)
    )
    lines = [syslog.encode(e) for e in (events[0], entry_a, events[1], events[2])]
    (tmp_path / "syslog.log").write_bytes(b"\n".join([*lines, b"-- MARK --"]) + b"\n")
    (tmp_path / "hec.json").write_text("".join(json.dumps(h) for h in hec))  # one line
    (tmp_path / "bulk.ndjson").write_bytes(bulk_body(events, "siem-audit"))
    for path, (ignored, duplicates) in shapes.items():
        code, report = _verify(settings, account_id, path)
        assert code == 0 and report["ok"], (path.name, report)
        assert report["heads"] == {
            "ok": True, "checked": 3, "matching": 3,
            "contradicted": {"count": 0, "heads": []},
            "not_signed_by_us": {"count": 0, "heads": []}, "none_verified": None,
            "duplicates": duplicates, "ignored": ignored,
            "unreadable": {"count": 0, "lines": []},
            "other_accounts": {"someone-else": 1} if path.name == "bare.ndjson" else {},
        }, path.name  # fmt: skip
    code, out, _ = _cli(settings, "verify", "--account", account_id)
    assert code == 0 and "heads" not in json.loads(out)  # without --heads: as before


def test_a_head_changed_in_the_kept_file_is_not_ours_not_a_contradiction(
    kept: Kept, settings: Settings, tmp_path: Path
) -> None:
    account_id, heads = kept
    changed = {**heads[1], "root": "ab" * 32}
    unknown_key = {**heads[2], "key_id": "0123456789abcdef"}
    garbled = {**heads[0], "seq": str(heads[0]["seq"])}
    copies = [_event(h) for h in (heads[0], changed, unknown_key, garbled)]
    path = _ndjson(tmp_path / "kept.ndjson", copies)
    code, report = _verify(settings, account_id, path)
    assert code == 0 and report["ok"], report
    assert report["heads"]["checked"] == 4 and report["heads"]["matching"] == 1
    assert report["heads"]["none_verified"] is None  # one head checked: enough
    assert report["heads"]["contradicted"]["count"] == 0
    assert report["heads"]["not_signed_by_us"] == {"count": 3, "heads": [
        {"seq": heads[1]["seq"],
         "reason": "the signature does not verify: a damaged or forged copy"},
        {"seq": heads[2]["seq"],
         "reason": "its key 0123456789abcdef is not one of the service's keys"},
        {"seq": str(heads[0]["seq"]),
         "reason": "not a checkpoint: its seq is missing or not an integer"},
    ]}  # fmt: skip


def test_heads_none_of_which_the_keys_signed_fail_the_verification(
    kept: Kept, settings: Settings, tmp_path: Path
) -> None:
    """Heads signed by keys the service does not hold (another deployment's; or the log sealed
    again under new keys, the old ones dropped from previous/): nothing was checked, and that
    is not a pass."""
    account_id, heads = kept
    create_keys(tmp_path / "other-keys")
    other = load_keys(tmp_path / "other-keys")
    theirs = [new_checkpoint(other, account_id, h["seq"], h["tree_size"], bytes.fromhex(h["root"]),
                             h["previous"], h["sealed_at"]) for h in heads]  # fmt: skip
    path = _ndjson(tmp_path / "kept.ndjson", [_event(h) for h in theirs])
    code, out, _ = _cli(settings, "verify", "--account", account_id)
    assert code == 0 and json.loads(out)["ok"]  # the log alone verifies
    code, report = _verify(settings, account_id, path)
    assert code == 1 and not report["ok"] and not report["heads"]["ok"], report
    assert (report["heads"]["checked"], report["heads"]["matching"]) == (3, 0)
    assert report["heads"]["contradicted"]["count"] == 0
    assert report["heads"]["not_signed_by_us"]["heads"][0] == {
        "seq": heads[0]["seq"], "reason": f"its key {other.key_id} is not one of the service's keys"
    }  # fmt: skip
    why = report["heads"]["none_verified"]
    assert why.startswith("no head of the account could be checked (3 in the file): none is "
                          "signed by the service's keys"), why  # fmt: skip
    assert "another deployment's" in why and "previous/" in why
    ours_too = _ndjson(tmp_path / "mixed.ndjson", [_event(theirs[0]), _event(heads[1])])
    code, report = _verify(settings, account_id, ours_too)
    assert code == 0 and report["ok"] and report["heads"]["none_verified"] is None
    assert (report["heads"]["matching"], report["heads"]["not_signed_by_us"]["count"]) == (1, 1)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_lines_a_syslog_receiver_cut_are_counted_and_the_rest_is_checked(
    kept: Kept, settings: Settings, tmp_path: Path
) -> None:
    """rsyslog keeps 8 KiB of a message by default: long entry events arrive cut, in the middle
    of their JSON or of a character; a cut checkpoint is unreadable too, and nothing more."""
    account_id, heads = kept
    syslog = MessageFormat(hostname="receiver")
    long_entry = {**_entry_event(account_id, 1), "entry": {
        **entry(id="h0", message="x" * 10_000), "account_id": account_id}}  # fmt: skip
    wide = syslog.encode({**long_entry, "entry": {**long_entry["entry"], "message": "é" * 5000}})
    lines = [
        syslog.encode(_event(heads[0])),
        syslog.encode(long_entry)[:8192],  # line 2: JSON cut short
        syslog.encode(_event(heads[1])),
        wide[:8191],  # lines 4 and 5: one of them has a character cut (not UTF-8)
        wide[:8192],
        syslog.encode(_event(heads[2]))[:300],  # line 6: a checkpoint cut
        syslog.encode(_event(heads[2])),
    ]
    assert len({_utf8(wide[:8191]), _utf8(wide[:8192])}) == 2
    path = tmp_path / "syslog.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, report = _verify(settings, account_id, path)
    assert code == 0 and report["ok"], report
    assert (report["heads"]["checked"], report["heads"]["matching"]) == (3, 3)
    assert report["heads"]["unreadable"] == {"count": 4, "lines": [2, 4, 5, 6]}
    assert report["heads"]["ignored"] == 0
    ndjson = [json.dumps(v).encode() for v in (_event(heads[0]), long_entry, _event(heads[1]))]
    first_cut = tmp_path / "first-cut.ndjson"  # its first line cut: not a document's start
    first_cut.write_bytes(b"\n".join([ndjson[1][:8192], *ndjson]) + b"\n")
    code, report = _verify(settings, account_id, first_cut)
    assert code == 0 and (report["heads"]["matching"], report["heads"]["ignored"]) == (2, 1)
    assert report["heads"]["unreadable"] == {"count": 1, "lines": [1]}


def test_a_checkpoint_changed_in_the_engine_contradicts_the_kept_head(
    kept: Kept, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account_id, heads = kept
    path = _ndjson(tmp_path / "kept.ndjson", [_event(h) for h in heads])
    integrity = IndexNames(settings.index_prefix).integrity
    seq, size = heads[1]["seq"], heads[1]["tree_size"]
    es.update(index=integrity, id=f"cp:{account_id}:{seq}", doc={"root": "cd" * 32}, refresh=True)
    code, report = _verify(settings, account_id, path)
    assert code == 1 and not report["ok"]
    assert report["heads"]["matching"] == 2
    assert report["heads"]["contradicted"] == {"count": 1, "heads": [
        {"seq": seq, "tree_size": size,
         "reason": f"the service's checkpoint {seq} differs in root"},
    ]}  # fmt: skip
    assert report["heads"]["not_signed_by_us"]["count"] == 0


def test_a_log_rolled_back_in_the_engine_contradicts_the_newer_kept_heads(
    kept: Kept, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account_id, heads = kept
    path = _ndjson(tmp_path / "kept.ndjson", [_event(h) for h in heads])
    names = IndexNames(settings.index_prefix)
    # the newest entries removed with their segment and checkpoint: the log is shorter, clean
    last = [f"{account_id}/h{n}" for n in range(7, 9)]
    _delete(es, names.entries_alias, {"ids": {"values": last}})
    _delete(es, names.integrity, {"bool": {"filter": [
        {"term": {"account_id": account_id}},
        {"bool": {"should": [{"range": {"seq": {"gte": heads[2]["seq"]}}},
                             {"range": {"start": {"gte": heads[1]["tree_size"]}}}]}},
    ]}})  # fmt: skip
    code, out, _ = _cli(settings, "verify", "--account", account_id)
    assert code == 0 and json.loads(out)["tree_size"] == heads[1]["tree_size"]  # alone: clean
    code, report = _verify(settings, account_id, path)
    assert code == 1 and not report["ok"]
    assert report["heads"]["matching"] == 2
    (seq, size), (latest, sealed) = ((h["seq"], h["tree_size"]) for h in (heads[2], heads[1]))
    assert report["heads"]["contradicted"] == {"count": 1, "heads": [{
        "seq": seq, "tree_size": size,
        "reason": "rolled back: the service's log ends before this head (its latest checkpoint "
                  f"is seq {latest}); its tree size {size} is past the service's sealed log "
                  f"({sealed} entries)",
    }]}  # fmt: skip


def test_a_log_sealed_again_with_the_service_keys_contradicts_every_kept_head(
    kept: Kept, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    """Whoever holds the keys and the engine removes an entry and seals what is left as a new
    history: the log verifies on its own, and no head handed out before agrees with it."""
    account_id, heads = kept
    path = _ndjson(tmp_path / "kept.ndjson", [_event(h) for h in heads])
    names = IndexNames(settings.index_prefix)
    es.indices.refresh(index=names.integrity)
    mine = {"bool": {"filter": [{"term": {"account_id": account_id}},
                                {"term": {"kind": "segment"}}]}}  # fmt: skip
    segments = es.search(index=names.integrity, query=mine, sort=[{"start": "asc"}], size=100)
    leaves = [item for hit in segments["hits"]["hits"] for item in hit["_source"]["leaves"]]
    leaves = [item for item in leaves if item["id"] != "h1"]
    _delete(es, names.entries_alias, {"ids": {"values": [f"{account_id}/h1"]}})
    _delete(es, names.integrity, {"term": {"account_id": account_id}})
    frontier = Frontier()
    for item in leaves:
        frontier.append(leaf_hash_of(item))
    keys = load_keys(keys_for_tests())
    forged = new_checkpoint(keys, account_id, 1, frontier.size, frontier.root(), "",
                            "2026-01-01T00:00:00.000Z")  # fmt: skip
    segment = {"kind": "segment", "account_id": account_id, "start": 0,
               "ids": [item["id"] for item in leaves], "leaves": leaves}  # fmt: skip
    stored = {**forged, "kind": "checkpoint", "frontier": [h.hex() for h in frontier.hashes]}
    es.index(index=names.integrity, id=f"seg:{account_id}:0", document=segment)
    es.index(index=names.integrity, id=f"cp:{account_id}:1", document=stored, refresh=True)
    sealed = heads[2]["tree_size"] - 1
    code, out, _ = _cli(settings, "verify", "--account", account_id)
    assert code == 0 and json.loads(out)["tree_size"] == sealed  # alone, the log verifies
    code, report = _verify(settings, account_id, path)
    assert code == 1 and report["heads"]["matching"] == 0
    contradicted = report["heads"]["contradicted"]["heads"]
    assert [(h["seq"], h["tree_size"]) for h in contradicted] == [
        (h["seq"], h["tree_size"]) for h in heads
    ]
    rolled_back = "rolled back: the service's log ends before this head (its latest checkpoint "
    for head, found in zip(heads[:2], contradicted, strict=False):
        assert found["reason"] == (
            f"{rolled_back}is seq 1); the service's first {head['tree_size']} leaves do not hash "
            "to its root: the log no longer extends this head"
        )
    assert contradicted[2]["reason"] == (
        f"{rolled_back}is seq 1); its tree size {heads[2]['tree_size']} is past the service's "
        f"sealed log ({sealed} entries)"
    )


def test_a_file_without_the_accounts_heads_is_a_usage_error(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    account_id, _ = new_account(client)
    entries = _ndjson(tmp_path / "entries.ndjson", [_entry_event(account_id, n) for n in (1, 2)])
    broken = tmp_path / "broken.ndjson"
    broken.write_text(json.dumps(_entry_event(account_id, 1)) + "\n\n{not json\n")
    fake = {"account_id": "other-acct", "genesis": False, "key_id": "k", "previous": "",
            "root": "0" * 64, "sealed_at": "2026-01-01T00:00:00Z", "seq": 1, "tree_size": 1,
            "signature": "c2ln"}  # fmt: skip
    others = _ndjson(tmp_path / "others.ndjson", [_event(fake)])
    expected = {
        entries: f"{entries} holds no checkpoint of account '{account_id}' (2 other values "
        "ignored): give the checkpoint events a streaming destination received",
        broken: f"{broken} holds no checkpoint of account '{account_id}' (1 other value "
        "ignored; 1 line unreadable, the first: line 3: not JSON (Expecting property name "
        "enclosed in double quotes)): give",
        others: "it holds checkpoints of other-acct",
        tmp_path / "absent.ndjson": "cannot read",
    }
    for path, message in expected.items():
        code, out, err = _cli(settings, "verify", "--account", account_id, "--heads", str(path))
        assert code == 2 and out == "" and message in err, err
    unknown = f"acct-{uuid.uuid4().hex[:10]}"
    code, _, err = _cli(settings, "verify", "--account", unknown, "--heads", str(others))
    assert code == 2 and "holds no checkpoint" in err  # the file is read before the engine


def test_each_wrapper_a_receiver_stores_is_read_and_a_bad_line_is_named(tmp_path: Path) -> None:
    head = {"account_id": "acme", "genesis": False, "key_id": "k", "previous": "",
            "root": "0" * 64, "sealed_at": "2026-01-01T00:00:00.000Z", "seq": 4,
            "tree_size": 9, "signature": "c2ln"}  # fmt: skip
    event = _event(head)
    wrapped = [
        {"preview": False, "result": {"_raw": json.dumps(event), "sourcetype": "x"}},
        {"_raw": json.dumps(head)},
        {"hits": {"total": 1, "hits": [{"_index": "siem", "_source": event}]}},
        {"events": [[event]]},
    ]
    for n, value in enumerate(wrapped):
        path = _ndjson(tmp_path / f"wrapped{n}.ndjson", [value, {"_raw": "not json"}])
        found = read_heads(path, "acme")
        assert (found.heads, found.ignored) == ([head], 1), value
    failures = {
        b'{"event_type": "entry"}\n\xff\n': "line 2: not UTF-8 text",
        b'[\n{"event_type": "entry"},\n{]\n': "line 3: not JSON",
        b"<110>1 2026-01-01T00:00:00.000Z h auditlog - checkpoint - \xef\xbb\xbf{oops\n": (
            "line 1: not JSON"
        ),
        b"[" * 100_000: "not JSON (JSON nested too deeply)",
    }
    for content, message in failures.items():
        path = tmp_path / "bad.txt"
        path.write_bytes(content)
        with pytest.raises(HeadsFileError, match=re.escape(message)):
            read_heads(path, "acme")
    path.write_bytes(b"[\n" + json.dumps(event).encode() + b",\n{]\n")  # a head in a cut array
    found = read_heads(path, "acme")  # read as lines too: the reading that finds more heads
    assert (found.heads, found.unreadable, found.unreadable_lines) == ([head], 3, [1, 2, 3])
