"""Exports a customer can verify offline: every export path yields a signed manifest, and
`auditlog verify-export` passes on untouched files and names what is wrong with changed ones."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from elasticsearch import AsyncElasticsearch, Elasticsearch
from openpyxl import load_workbook
from starlette.testclient import TestClient

from service.actions.verify_export import load_public_keys, verify_export
from service.config import Settings
from service.integrity.keys import IntegrityKeys, key_id
from service.integrity.manifests import FIELDS, sign_manifest
from service.search.indices import IndexNames
from tests.helpers import entry, new_account, with_engine

ROOT = Path(__file__).resolve().parents[2]


def _ingest(client: TestClient, headers: dict[str, str], entries: list[dict[str, Any]],
            es: Elasticsearch) -> None:  # fmt: skip
    """Store ``entries`` and make them searchable (as the next scheduled refresh would)."""
    resp = client.post("/v1/entries", json={"entries": entries}, headers=headers)
    assert resp.json()["created"] == len(entries), resp.text
    es.indices.refresh(index="*")


def _account_with_entries(client: TestClient, es: Elasticsearch, prefix: str) -> tuple[str, Any]:
    """A new account holding :func:`_entries`, and its key's headers."""
    account_id, headers = new_account(client)
    _ingest(client, headers, _entries(prefix), es)
    return account_id, headers


def _entries(prefix: str) -> list[dict[str, Any]]:
    """Entries whose cells an export rewrites: a formula-like message, numbers, a float."""
    credits = {"credits_used": 1.5, "credits_balance": 10}
    webhook = {"url": "https://a.test", "status_code": 500, "ratio": 0.25, "big": 2**60}
    return [
        entry(id=f"{prefix}1", message='=HYPERLINK("http://x")'),
        entry(id=f"{prefix}2", metadata=webhook),
        entry(id=f"{prefix}3", category="credits", type="notice", metadata=credits),
        entry(id=f"{prefix}4", message="-1 day"),
    ]


def _manifest(client: TestClient, headers: dict[str, str], export_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        resp = client.get(f"/v1/exports/{export_id}/manifest", headers=headers)
        if resp.status_code == 200:
            return dict(resp.json())
        assert resp.status_code == 202, resp.text
        assert resp.headers["retry-after"]
        assert time.monotonic() < deadline
        time.sleep(0.3)


def _keys_file(client: TestClient, directory: Path) -> Path:
    path = directory / "keys.json"
    path.write_text(client.get("/v1/integrity/keys").text)
    return path


def _prover(client: TestClient, headers: dict[str, str]) -> Any:
    """Proofs from the service itself, as `--proofs` fetches them."""

    def fetch(ids: list[str], size: int) -> dict[str, Any]:
        resp = client.get("/v1/integrity/proof", headers=headers,
                          params={"ids": ",".join(ids), "tree_size": size})  # fmt: skip
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    return fetch


def _download(client: TestClient, headers: dict[str, str], fmt: str,
              tmp_path: Path) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    resp = client.get("/v1/export", params={"format": fmt, "range": "all"}, headers=headers)
    assert resp.status_code == 200, resp.text
    export_id = resp.headers["x-export-id"]
    assert resp.headers["link"] == f'</v1/exports/{export_id}/manifest>; rel="describedby"'
    path = tmp_path / f"export.{fmt}"
    path.write_bytes(resp.content)
    return path, _manifest(client, headers, export_id)


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "ndjson"])
def test_a_downloaded_export_verifies_with_its_manifest_and_proofs(
    client: TestClient, es: Elasticsearch, tmp_path: Path, fmt: str
) -> None:
    account_id, headers = _account_with_entries(client, es, "d")
    path, manifest = _download(client, headers, fmt, tmp_path)
    assert manifest["account_id"] == account_id and manifest["format"] == fmt
    assert manifest["rows"] == 6  # four entries, the account's creation and its key's
    assert manifest["rows_unsealed"] == 0 and manifest["head"]["tree_size"] >= 6
    keys = load_public_keys(_keys_file(client, tmp_path))
    report = verify_export(path, manifest, keys, _prover(client, headers))
    assert report.ok, report.to_dict()
    assert report.proofs_checked == 6 and report.rows == 6
    if fmt == "xlsx":
        info = {row[0]: row[1] for row in load_workbook(path)["Export info"].values}
        assert info["export id"] == manifest["export_id"]
        assert info["rows sha256"] == manifest["rows_sha256"]
    if fmt == "ndjson":
        first = json.loads(path.read_bytes().splitlines()[0])
        assert len(first["entry_digest"]) == 64


def test_a_csv_with_a_byte_order_mark_verifies(
    client: TestClient, es: Elasticsearch, tmp_path: Path
) -> None:
    """The page's CSV starts with a byte-order mark (for Excel): it is part of the signed file
    and ``verify-export`` reads past it."""
    _, headers = _account_with_entries(client, es, "b")
    resp = client.get("/v1/export", params={"format": "csv", "range": "all", "bom": "true"},
                      headers=headers)  # fmt: skip
    assert resp.content.startswith(b"\xef\xbb\xbfid,")
    path = tmp_path / "export.csv"
    path.write_bytes(resp.content)
    manifest = _manifest(client, headers, resp.headers["x-export-id"])
    report = verify_export(path, manifest, load_public_keys(_keys_file(client, tmp_path)))
    assert report.ok and report.rows == 6, report.to_dict()


def _csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def test_verify_export_names_what_was_changed(
    client: TestClient, es: Elasticsearch, tmp_path: Path
) -> None:
    _, headers = _account_with_entries(client, es, "t")
    path, manifest = _download(client, headers, "csv", tmp_path)
    keys = load_public_keys(_keys_file(client, tmp_path))
    rows = _csv_rows(path)
    message = rows[0].index("message")

    def problems(changed_rows: list[list[str]] | None = None,
                 changed_manifest: dict[str, Any] | None = None) -> list[str]:  # fmt: skip
        target = tmp_path / "changed.csv"
        if changed_rows is None:
            target.write_bytes(path.read_bytes())
        else:
            _write_csv(target, changed_rows)
        report = verify_export(target, changed_manifest or manifest, keys)
        assert not report.ok
        return report.problems

    cell = [list(r) for r in rows]
    cell[2][message] = "nothing happened"
    assert any("a cell was changed" in p for p in problems(cell))
    removed = [r for n, r in enumerate(rows) if n != 3]
    assert any("1 row was removed" in p for p in problems(removed))
    added = [*rows, list(rows[1])]
    assert any("1 row was added" in p for p in problems(added))
    changed = {**manifest, "rows": manifest["rows"] - 1}
    assert problems(changed_manifest=changed) == [
        "the manifest's signature does not verify: a field was changed"
    ]
    other = Ed25519PrivateKey.generate()
    forger = IntegrityKeys(other, key_id(other.public_key()), b"0" * 32, {})
    forged = sign_manifest(forger, {k: v for k, v in manifest.items() if k in FIELDS})
    assert problems(changed_manifest=forged) == [
        f"the manifest is signed by key {forger.key_id}, not one of the keys given"
    ]
    # given only the forger's key, the manifest verifies but its head (ours) does not
    only_other = {forger.key_id: other.public_key()}
    report = verify_export(path, forged, only_other)
    assert report.problems == [
        f"the manifest's head is signed by key {manifest['head']['key_id']}, "
        "not one of the keys given"
    ]


def test_an_ndjson_row_whose_content_was_changed_is_named(
    client: TestClient, es: Elasticsearch, tmp_path: Path
) -> None:
    _, headers = _account_with_entries(client, es, "n")
    path, manifest = _download(client, headers, "ndjson", tmp_path)
    lines = path.read_bytes().splitlines()
    row = json.loads(lines[1])
    row["message"] = "rewritten"
    lines[1] = json.dumps(row).encode()
    changed = tmp_path / "changed.ndjson"
    changed.write_bytes(b"\n".join(lines) + b"\n")
    keys = load_public_keys(_keys_file(client, tmp_path))
    report = verify_export(changed, manifest, keys)
    assert f"row 2 (id {row['id']}): its content does not match its entry_digest" in (
        report.problems
    )


def test_an_entry_changed_in_the_engine_is_not_proven(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    """The export carries the digest of what the engine holds: a row changed behind the
    service's back exports faithfully, and its proof fails."""
    account_id, headers = _account_with_entries(client, es, "p")
    _download(client, headers, "csv", tmp_path)  # once its manifest is signed, all is sealed
    names = IndexNames(settings.index_prefix)
    es.indices.refresh(index=names.entries_alias)
    hit = es.search(index=names.entries_alias, query={"ids": {"values": [f"{account_id}/p2"]}})
    doc = hit["hits"]["hits"][0]
    es.update(index=doc["_index"], id=doc["_id"], doc={"message": "edited"}, refresh=True)
    path, manifest = _download(client, headers, "csv", tmp_path)
    keys = load_public_keys(_keys_file(client, tmp_path))
    report = verify_export(path, manifest, keys, _prover(client, headers))
    number = next(n for n, r in enumerate(_csv_rows(path)[1:], 1) if r[0] == "p2")
    assert report.problems == [
        f"row {number} (id p2): its entry_digest is not the one sealed in the account's log"
    ]


def test_an_export_job_is_done_with_its_manifest(
    client: TestClient, es: Elasticsearch, tmp_path: Path
) -> None:
    _, headers = _account_with_entries(client, es, "j")
    started = client.post("/v1/exports", params={"format": "xlsx", "range": "all"},
                          headers=headers)  # fmt: skip
    assert started.status_code == 202, started.text
    job_url = started.headers["location"]
    deadline = time.monotonic() + 60
    while (job := client.get(job_url, headers=headers).json())["status"] != "done":
        assert job["status"] == "running" and time.monotonic() < deadline, job
        time.sleep(0.3)
    assert job["manifest"] == f"{job_url}/manifest"
    path = tmp_path / "job.xlsx"
    path.write_bytes(client.get(job["download"], headers=headers).content)
    manifest = client.get(job["manifest"], headers=headers).json()  # signed before "done"
    assert manifest["export_id"] == job["id"] and manifest["file_sha256"] == job["sha256"]
    keys = load_public_keys(_keys_file(client, tmp_path))
    assert verify_export(path, manifest, keys, _prover(client, headers)).ok


def test_the_command_line_exits_by_its_verdict(
    client: TestClient, es: Elasticsearch, tmp_path: Path
) -> None:
    _, headers = _account_with_entries(client, es, "c")
    path, manifest = _download(client, headers, "csv", tmp_path)
    manifest_file = tmp_path / "export.manifest.json"
    manifest_file.write_text(json.dumps(manifest))
    keys = _keys_file(client, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITLOG_")}

    def run(*args: str) -> tuple[int, Any]:
        done = subprocess.run([sys.executable, "-m", "service.cli", "verify-export", *args],
                              capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
        return done.returncode, json.loads(done.stdout) if done.stdout else done.stderr

    code, report = run(str(path), str(manifest_file), "--public-key", str(keys))
    assert code == 0 and report["ok"] and report["rows"] == manifest["rows"]
    path.write_bytes(path.read_bytes().replace(b"c1", b"c9", 1))
    code, report = run(str(path), str(manifest_file), "--public-key", str(keys))
    assert code == 1 and not report["ok"]
    code, text = run(str(path), str(manifest_file))  # no key given, none configured
    assert code == 2 and "--public-key" in text


def test_manifests_belong_to_their_account(
    client: TestClient, es: Elasticsearch, tmp_path: Path
) -> None:
    _, headers = new_account(client)
    _, other = new_account(client)
    _ingest(client, headers, _entries("o"), es)
    resp = client.get("/v1/export", params={"format": "csv"}, headers=headers)
    export_id = resp.headers["x-export-id"]
    _manifest(client, headers, export_id)
    assert client.get(f"/v1/exports/{export_id}/manifest", headers=other).status_code == 404
    unknown = client.get("/v1/exports/exp_000000000000000000000000/manifest", headers=headers)
    assert unknown.status_code == 404


def test_a_resent_entry_is_not_counted_unsealed_once_its_first_write_is_sealed(
    client: TestClient, es: Elasticsearch, tmp_path: Path
) -> None:
    """The resend's batch lists the entry until the write deadline (ten minutes): the manifest
    must not wait for it, nor count it unsealed, once the first write is under a checkpoint."""
    _, headers = new_account(client)
    _ingest(client, headers, [entry(id="resent")], es)
    again = client.post("/v1/entries", json=entry(id="resent"), headers=headers)
    assert again.json()["results"][0]["status"] == "duplicate", again.text
    deadline = time.monotonic() + 30
    while client.get("/v1/integrity/proof", params={"id": "resent"},
                     headers=headers).status_code != 200:  # fmt: skip
        assert time.monotonic() < deadline, "the first write was never sealed"
        time.sleep(0.3)
    resp = client.get("/v1/export", params={"format": "ndjson", "range": "all", "q": "id:resent"},
                      headers=headers)  # fmt: skip
    assert resp.status_code == 200, resp.text
    manifest = _manifest(client, headers, resp.headers["x-export-id"])
    assert manifest["rows"] == 1 and manifest["rows_unsealed"] == 0, manifest
    path = tmp_path / "export.ndjson"
    path.write_bytes(resp.content)
    keys = load_public_keys(_keys_file(client, tmp_path))
    report = verify_export(path, manifest, keys, _prover(client, headers))
    assert report.ok and report.proofs_checked == 1, report.to_dict()


def test_a_csv_with_a_cell_longer_than_128_kib_verifies(
    client: TestClient, es: Elasticsearch, tmp_path: Path
) -> None:
    """A cell as long as an entry may make it, past the csv module's default field limit."""
    _, headers = new_account(client)
    _ingest(client, headers, [entry(id="long-cell", metadata={"x_notes": "n" * 200_000})], es)
    path, manifest = _download(client, headers, "csv", tmp_path)
    report = verify_export(path, manifest, load_public_keys(_keys_file(client, tmp_path)))
    assert report.ok and report.rows == manifest["rows"] == 3, report.to_dict()


def test_a_queued_row_counts_sealed_only_with_the_digest_its_sealed_leaf_holds(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    """A second copy of an id (stored again with other content) is not proven by the first
    copy's leaf: only the id's sealed leaf with the row's own digest covers the row."""
    from service.actions.manifests import _under_checkpoints
    from service.search.integrity_log import IntegrityLog

    account_id, headers = new_account(client)
    _ingest(client, headers, [entry(id="copied")], es)
    deadline = time.monotonic() + 30
    while (proof := client.get("/v1/integrity/proof", params={"id": "copied"},
                               headers=headers)).status_code != 200:  # fmt: skip
        assert time.monotonic() < deadline, "never sealed"
        time.sleep(0.3)
    digest, doc_id = proof.json()["leaf"]["digest"], f"{account_id}/copied"

    async def under(engine: AsyncElasticsearch, rows: dict[str, str]) -> set[str]:
        log = IntegrityLog(engine, IndexNames(settings.index_prefix))
        return await _under_checkpoints(log, account_id, rows)

    assert with_engine(settings, lambda engine: under(engine, {doc_id: digest})) == {doc_id}
    assert with_engine(settings, lambda engine: under(engine, {doc_id: "0" * 64})) == set()
