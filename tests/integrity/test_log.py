"""The account log on the real engine: sealed, proven, and every kind of tampering (done with
the raw Elasticsearch client) reported exactly."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from service.actions.verify import verify_account
from service.app import create_app
from service.config import Settings
from service.integrity.checkpoints import leaf_hash_of, signed_part
from service.integrity.merkle import verify_consistency, verify_inclusion
from service.runtime import Runtime
from service.search.client import make_client
from service.search.indices import IndexNames
from tests.helpers import entry, new_account

NOW = datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ingest(client: TestClient, headers: dict[str, str], entries: list[dict[str, Any]]) -> None:
    resp = client.post("/v1/entries", json={"entries": entries}, headers=headers)
    assert resp.json()["created"] == len(entries), resp.text


def _sealed(client: TestClient, headers: dict[str, str], es: Elasticsearch) -> dict[str, Any]:
    """The verification once everything the account holds is sealed."""
    deadline = time.monotonic() + 30
    while True:
        es.indices.refresh(index="*")
        report = client.get("/v1/integrity/verify", headers=headers).json()
        if report.get("pending") == 0 and report.get("tree_size", 0) >= report["entries_checked"]:
            return dict(report)
        assert time.monotonic() < deadline, report
        time.sleep(0.3)


def _verify(settings: Settings, account_id: str, now: datetime | None = None) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        es = make_client(settings, str(settings.es_url))
        try:
            runtime = Runtime(settings=settings, es=es, names=IndexNames(settings.index_prefix))
            assert runtime.ingest.keys is not None
            return (await verify_account(runtime, runtime.ingest.keys, account_id, now)).to_dict()
        finally:
            await es.close()

    return asyncio.run(run())


def _doc(es: Elasticsearch, settings: Settings, account_id: str, entry_id: str) -> Any:
    es.indices.refresh(index=f"{settings.index_prefix}-*")
    hits = es.search(
        index=IndexNames(settings.index_prefix).entries_alias,
        query={"ids": {"values": [f"{account_id}/{entry_id}"]}},
    )["hits"]["hits"]
    assert len(hits) == 1
    return hits[0]


def test_a_clean_log_verifies_and_proves_each_entry_to_a_signed_head(
    client: TestClient, es: Elasticsearch
) -> None:
    _, headers = new_account(client)
    _ingest(client, headers, [entry(id=f"c{n}") for n in range(12)])
    report = _sealed(client, headers, es)
    assert report["ok"] and report["entries_checked"] == report["tree_size"] >= 12
    keys = client.get("/v1/integrity/keys").json()
    public = {
        k["key_id"]: serialization.load_pem_public_key(k["public_key_pem"].encode())
        for k in keys["keys"]
    }
    head = client.get("/v1/integrity/head", headers=headers).json()
    signer = public[head["key_id"]]
    assert isinstance(signer, Ed25519PublicKey)
    signer.verify(base64.b64decode(head["signature"]), signed_part(head))  # raises if forged
    for n in (0, 7, 11):
        proof = client.get("/v1/integrity/proof", params={"id": f"c{n}"}, headers=headers).json()
        assert proof["checkpoint"]["tree_size"] == head["tree_size"]
        verify_inclusion(
            proof["position"],
            head["tree_size"],
            leaf_hash_of(proof["leaf"]),
            [bytes.fromhex(h) for h in proof["proof"]],
            bytes.fromhex(head["root"]),
        )
    missing = client.get("/v1/integrity/proof", params={"id": "nope"}, headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "id"


def test_a_later_head_is_consistent_with_an_earlier_one(
    client: TestClient, es: Elasticsearch
) -> None:
    _, headers = new_account(client)
    _ingest(client, headers, [entry(id=f"a{n}") for n in range(5)])
    _sealed(client, headers, es)
    first = client.get("/v1/integrity/head", headers=headers).json()
    _ingest(client, headers, [entry(id=f"b{n}") for n in range(9)])
    _sealed(client, headers, es)
    second = client.get("/v1/integrity/head", headers=headers).json()
    assert second["seq"] > first["seq"] and second["tree_size"] >= first["tree_size"] + 9
    params = {"from": first["tree_size"], "to": second["tree_size"]}
    proof = client.get("/v1/integrity/consistency", params=params, headers=headers).json()
    verify_consistency(
        first["tree_size"],
        second["tree_size"],
        bytes.fromhex(first["root"]),
        bytes.fromhex(second["root"]),
        [bytes.fromhex(h) for h in proof["proof"]],
    )
    bad = client.get("/v1/integrity/consistency", params={"from": 0, "to": 3}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "from"


def test_each_kind_of_tampering_is_reported_exactly(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account_id, headers = new_account(client)
    _ingest(client, headers, [entry(id=f"t{n}") for n in range(6)])
    assert _sealed(client, headers, es)["ok"]
    edited = _doc(es, settings, account_id, "t1")
    es.update(
        index=edited["_index"], id=edited["_id"], doc={"message": "nothing happened"}, refresh=True
    )
    gone = _doc(es, settings, account_id, "t2")
    es.delete(index=gone["_index"], id=gone["_id"], refresh=True)
    slipped = {
        **entry(id="slipped"),
        "account_id": account_id,
        "ingested_at": _stamp(NOW - timedelta(minutes=30)),
    }
    es.index(index=gone["_index"], id=f"{account_id}/slipped", document=slipped, refresh=True)
    report = _verify(settings, account_id)
    assert not report["ok"]
    assert [e["id"] for e in report["altered"]["entries"]] == ["t1"]
    assert [e["id"] for e in report["missing"]["entries"]] == ["t2"]
    assert [e["id"] for e in report["unsealed"]["entries"]] == ["slipped"]
    assert report["broken"]["count"] == 0
    time.sleep(1.5)  # the sealer ran meanwhile: what was slipped in is still not sealed
    assert _verify(settings, account_id)["unsealed"]["count"] == 1


def test_a_fresh_document_indexed_behind_the_service_is_never_sealed(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account_id, headers = new_account(client)
    _ingest(client, headers, [entry(id="real")])
    assert _sealed(client, headers, es)["ok"]
    index = _doc(es, settings, account_id, "real")["_index"]
    rows = {}
    for forged_id in ("forged", "forged2"):
        forged = {**entry(id=forged_id), "account_id": account_id, "ingested_at": _stamp(NOW),
                  "integrity": {"digest": "0" * 64, "mac": "0" * 64}}  # fmt: skip
        es.index(index=index, id=f"{account_id}/{forged_id}", document=forged, refresh=True)
        rows[forged_id] = [index, f"{account_id}/{forged_id}", forged["category"],
                           forged["timestamp"], "0" * 64, "0" * 64]  # fmt: skip
    queue = IndexNames(settings.index_prefix).seal_queue
    future = "9999-01-01T00:00:00.000Z"
    records = {  # a record claiming "created" (sealed from the record: its MAC is checked), one
        # with no outcome past its deadline (the entry is looked up: its MAC is checked), one to
        # keep the forgery "in flight" for ever, one malformed
        "q:forged": {"entries": [rows["forged"]]},
        "q:lookup": {"entries": [rows["forged2"]]},
        "q:forever": {"entries": [rows["forged"]], "write_by": future},
        "q:broken": {"entries": [["nowhere"]]},
    }
    for record_id, record in records.items():
        document = {"kind": "queued", "created_at": _stamp(NOW), "write_by": _stamp(NOW), **record}
        es.index(index=queue, id=record_id, document=document, refresh=True)
    outcome = {"kind": "written", "created": [f"{account_id}/forged"], "unsure": []}
    es.index(index=queue, id="w:forged", document=outcome, refresh=True)
    report = _verify(settings, account_id)  # at once: neither young nor queued excuses it
    assert sorted(e["id"] for e in report["unsealed"]["entries"]) == ["forged", "forged2"]
    sealed = client.get("/v1/integrity/head", headers=headers).json()["tree_size"]
    _ingest(client, headers, [entry(id="after")])  # sealing goes on past the bad records
    deadline = time.monotonic() + 30
    while client.get("/v1/integrity/head", headers=headers).json()["tree_size"] == sealed:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert client.get("/v1/integrity/head", headers=headers).json()["tree_size"] == sealed + 1
    for forged_id in ("forged", "forged2"):
        proof = client.get("/v1/integrity/proof", params={"id": forged_id}, headers=headers)
        assert proof.status_code == 404
    for record_id in records:
        assert not es.exists(index=queue, id=record_id)
    refused = re.search(r'kind="seal_refused"\} (\d+)', client.get("/metrics").text)
    assert refused is not None and int(refused.group(1)) >= 2  # both forgeries refused


def test_a_changed_checkpoint_breaks_the_chain(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account_id, headers = new_account(client)
    _ingest(client, headers, [entry(id="x1")])
    _sealed(client, headers, es)
    _ingest(client, headers, [entry(id="x2")])
    _sealed(client, headers, es)
    integrity = IndexNames(settings.index_prefix).integrity
    es.update(
        index=integrity,
        id=f"cp:{account_id}:1",
        doc={"sealed_at": "2020-01-01T00:00:00Z"},
        refresh=True,
    )
    report = _verify(settings, account_id)
    reasons = {(c["seq"], c["reason"]) for c in report["broken"]["checkpoints"]}
    assert (1, "the signature does not verify") in reasons
    assert (2, "it does not follow the checkpoint before it") in reasons
    assert report["altered"]["count"] == report["missing"]["count"] == 0


def test_lawfully_expired_integration_entries_are_not_missing(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    account_id, headers = new_account(client)
    day = NOW - timedelta(days=29)
    _ingest(
        client,
        headers,
        [
            entry(
                id="int",
                category="integration",
                timestamp=_stamp(day),
                metadata={"provider": "hubspot"},
            ),
            entry(id="kept"),
        ],
    )
    _sealed(client, headers, es)
    index = _doc(es, settings, account_id, "int")["_index"]
    es.indices.delete(index=index)  # what the retention sweeper does two days later
    later = _verify(settings, account_id, NOW + timedelta(days=2))
    assert later["ok"] and later["lawfully_deleted"] == 1 and later["missing"]["count"] == 0
    early = _verify(settings, account_id)  # before its time, the same deletion is tampering
    assert [e["id"] for e in early["missing"]["entries"]] == ["int"]


def test_a_service_without_keys_does_not_start(settings: Settings) -> None:
    from dataclasses import replace

    app = create_app(replace(settings, keys_dir=None))
    with pytest.raises(RuntimeError, match="AUDITLOG_KEYS_DIR"), TestClient(app):
        pass
