"""``auditlog import`` against the real engine: formats, idempotency, line numbers, exit codes."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch
from starlette.testclient import TestClient

from ingest.importer import IdSource, ImportSummary, _chunks, import_file, ndjson_items
from ingest.pipeline import IngestContext, Item
from service.config import Settings
from service.search.indices import IndexNames
from tests.helpers import entry, new_account, refresh, with_engine

EXPORT_COLUMNS = [
    "id", "timestamp_local", "timestamp_utc", "category", "type", "actor_id", "actor_name",
    "actor_email", "action", "message", "webhook_id", "url", "event", "status_code", "attempt",
    "duration_ms", "error", "credits_used", "credits_balance", "signal_name", "post_urn",
    "metadata_other", "entry_digest",
]  # fmt: skip


def _import(settings: Settings, path: Path, batch_size: int = 1000, **kw: Any) -> ImportSummary:
    def run(es: AsyncElasticsearch) -> Awaitable[ImportSummary]:
        ctx = IngestContext(
            es, IndexNames(settings.index_prefix), settings.templates_dir,
            settings.max_future_skew_s, batch_size, restoring=True,
        )  # fmt: skip
        return import_file(ctx, path, max_line_bytes=settings.max_line_bytes, **kw)

    return with_engine(settings, run)


def _imported(account: str) -> dict[str, Any]:
    """The account's entries but the audit trail of its creation."""
    return {"bool": {"filter": [{"term": {"account_id": account}}],
                     "must_not": [{"term": {"category": "audit"}}]}}  # fmt: skip


def _count(es: Elasticsearch, settings: Settings, account: str) -> int:
    refresh(es, settings.index_prefix)
    query = _imported(account)
    return int(es.count(index=f"{settings.index_prefix}-entries", query=query)["count"])


def _stored(es: Elasticsearch, settings: Settings, account: str) -> dict[str, dict[str, Any]]:
    refresh(es, settings.index_prefix)
    query = _imported(account)
    resp = es.search(index=f"{settings.index_prefix}-entries", size=1000, query=query)
    return {h["_source"]["id"]: h["_source"] for h in resp["hits"]["hits"]}


def _line(i: int) -> str:
    """Entry ``i`` of the big file: every 10th has no id; three categories over 2025."""
    category = ("webhook", "signal", "api")[i % 3]
    fields: dict[str, Any] = {
        "timestamp": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
        "category": category,
        "type": ("notice", "warning", "error")[i % 3],
        "actor": {"type": "system", "id": "importer-test"},
        "action": f"{category}.test",
        "message": f"entry {i}",
        "metadata": {"status_code": 200} if category != "signal" else {"processed": i},
    }
    if i % 10:
        fields["id"] = f"big-{i:06d}"
    return json.dumps(fields)


@pytest.mark.slow
def test_importing_the_same_100k_line_file_twice_leaves_exactly_100k_entries(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account, _ = new_account(client)
    path = tmp_path / "big.ndjson"
    with path.open("w") as f:
        for i in range(100_000):
            f.write(_line(i) + "\n")
    first = _import(settings, path, batch_size=2000, account=account)
    assert (first.lines, first.created, first.duplicates, first.rejected, first.failed) == (
        100_000, 100_000, 0, 0, 0,
    )  # fmt: skip
    assert _count(es, settings, account) == 100_000
    second = _import(settings, path, batch_size=2000, account=account)
    assert (second.created, second.duplicates, second.rejected, second.failed) == (
        0, 100_000, 0, 0,
    )  # fmt: skip
    assert _count(es, settings, account) == 100_000


def test_lines_without_ids_get_ids_from_the_content_and_the_line(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account, _ = new_account(client)
    body = "\n".join(json.dumps(entry(id=None)) for _ in range(3)) + "\n"
    path = tmp_path / "no-ids.ndjson"
    path.write_text(body)
    assert _import(settings, path, account=account).created == 3
    assert _import(settings, path, account=account).duplicates == 3
    ids = sorted(_stored(es, settings, account))
    assert len(ids) == 3 and all(i.startswith("import-") for i in ids)
    assert [i.rsplit("-", 1)[1] for i in ids] == ["1", "2", "3"]
    edited = tmp_path / "edited.ndjson"
    edited.write_text(body + json.dumps(entry(id=None)) + "\n")
    assert _import(settings, edited, account=account).created == 4  # other content, other ids


def test_gzip_ndjson_by_suffix_and_by_magic_bytes(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account, _ = new_account(client)
    sent = [entry(account_id=account) for _ in range(5)]
    by_suffix = tmp_path / "entries.ndjson.gz"
    by_suffix.write_bytes(gzip.compress("".join(json.dumps(e) + "\n" for e in sent[:3]).encode()))
    by_magic = tmp_path / "entries.jsonl"  # gzip content without the suffix
    by_magic.write_bytes(gzip.compress("".join(json.dumps(e) + "\n" for e in sent[3:]).encode()))
    assert _import(settings, by_suffix).created == 3  # account from the account_id field
    assert _import(settings, by_magic, account=account).created == 2
    assert set(_stored(es, settings, account)) == {e["id"] for e in sent}


def _export_csv(path: Path, rows: list[dict[str, str]], opener: Any = open) -> None:
    with opener(path, "wt", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in EXPORT_COLUMNS})


def test_csv_with_the_export_columns_imports_typed_metadata(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account, _ = new_account(client)
    rows = [
        {"id": "csv-1", "timestamp_local": "2026-11-20T11:15:00.123+01:00",
         "timestamp_utc": "2026-11-20T10:15:00.123Z", "category": "webhook", "type": "error",
         "actor_id": "dispatcher", "actor_name": "Webhook dispatcher", "action":
         "webhook.delivery.failed", "message": "POST https://h.test/x returned 502, giving up",
         "webhook_id": "wh_1", "url": "https://h.test/x", "status_code": "502", "attempt": "3",
         "duration_ms": "1234", "error": "HTTP 502", "metadata_other": '{"x_trace": {"a": [1]}}',
         "entry_digest": "0" * 64},
        {"id": "csv-2", "timestamp_utc": "2026-11-21T08:00:00.000Z", "category": "credits",
         "type": "notice", "actor_id": "u_1", "actor_name": "Jane Doe", "actor_email":
         "jane@acme.test", "action": "credits.consumed", "message": "'=SUM(A1:A2) credits",
         "credits_used": "2.5", "credits_balance": "'-3", "signal_name": "Funding news"},
    ]  # fmt: skip
    path = tmp_path / "export.csv"
    _export_csv(path, rows)
    summary = _import(settings, path, account=account)
    assert (summary.created, summary.rejected, summary.failed) == (2, 0, 0), summary.to_dict()
    stored = _stored(es, settings, account)
    webhook, credits = stored["csv-1"], stored["csv-2"]
    assert webhook["timestamp"] == "2026-11-20T10:15:00.123Z"
    assert webhook["actor"] == {"type": "system", "id": "dispatcher", "name": "Webhook dispatcher"}
    assert webhook["metadata"] == {
        "webhook_id": "wh_1", "url": "https://h.test/x", "status_code": 502, "attempt": 3,
        "duration_ms": 1234, "error": "HTTP 502", "x_trace": {"a": [1]},
    }  # fmt: skip
    assert credits["actor"]["type"] == "user" and credits["actor"]["email"] == "jane@acme.test"
    assert credits["message"] == "=SUM(A1:A2) credits"  # the export's spreadsheet escape undone
    assert credits["metadata"] == {
        "credits_used": 2.5, "credits_balance": -3, "signal_name": "Funding news"
    }  # fmt: skip
    assert _import(settings, path, account=account).duplicates == 2


def test_gzip_csv_with_timestamp_actor_type_and_account_columns(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account, _ = new_account(client)
    path = tmp_path / "entries.csv.gz"
    with gzip.open(path, "wt", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["account_id", "timestamp", "category", "actor_type", "actor_id",
                         "action", "message", "processed"])  # fmt: skip
        writer.writerow([account, "2026-11-02T09:00:00Z", "signal", "api_key", "key_1",
                         "signal.run.completed", "multi\nline message", "42"])  # fmt: skip
        writer.writerow([account, "2026-11-02T10:00:00Z", "signal", "", "scheduler",
                         "signal.run.completed", "", ""])  # fmt: skip
    summary = _import(settings, path)
    assert (summary.created, summary.rejected) == (2, 0), summary.to_dict()
    stored = sorted(_stored(es, settings, account).values(), key=lambda e: e["timestamp"])
    assert stored[0]["actor"] == {"type": "api_key", "id": "key_1"}
    assert stored[0]["message"] == "multi\nline message"
    assert stored[0]["metadata"] == {"processed": 42}
    assert stored[1]["actor"] == {"type": "system", "id": "scheduler"}
    assert stored[1]["metadata"] == {}
    assert stored[1]["id"].endswith("-4")  # the record starting on line 4 (line 2 spans two)


def test_bad_lines_are_reported_with_line_numbers_while_good_lines_are_created(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account, _ = new_account(client)
    other, _ = new_account(client)
    good = [entry() for _ in range(3)]
    lines = [
        json.dumps(good[0]),
        "{broken",
        "",
        json.dumps(entry(metadata={"attempt": "three"})),
        json.dumps(good[1]),
        json.dumps(entry(account_id=other)),
        json.dumps(good[2]),
    ]
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(lines))
    summary = _import(settings, path, batch_size=2, account=account)
    assert (summary.lines, summary.created, summary.rejected, summary.failed) == (7, 3, 3, 0)
    assert [(r["line"], r["field"]) for r in summary.rejections] == [
        (2, None), (4, "metadata.attempt"), (6, "account_id"),
    ]  # fmt: skip
    assert "line 2" in summary.rejections[0]["message"]
    assert set(_stored(es, settings, account)) == {e["id"] for e in good}


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess; output decoded without newline translation (keeps ``\\r``)."""
    env = {**os.environ, "AUDITLOG_ES_URL": str(settings.es_url),
           "AUDITLOG_INDEX_PREFIX": settings.index_prefix,
           "AUDITLOG_KEYS_DIR": str(settings.keys_dir)}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args], capture_output=True, check=False, env=env
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


@pytest.mark.slow
def test_the_import_command_prints_progress_and_a_summary_and_exits_by_outcome(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    account, _ = new_account(client)
    path = tmp_path / "cli.ndjson.gz"
    path.write_bytes(gzip.compress(f"{json.dumps(entry())}\nnot json\n".encode()))
    done = _cli(settings, "import", str(path), "--account", account)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["lines"], summary["created"], summary["rejected"]) == (2, 1, 1)
    assert summary["rejections"][0]["line"] == 2 and summary["complete"] is True
    assert "lines 2 · created 1 · duplicates 0 · rejected 1 · failed 0\n" in done.stderr
    unknown = _cli(settings, "import", str(path), "--account", "no-such-account")
    assert unknown.returncode == 2 and "no account 'no-such-account'" in unknown.stderr
    missing = _cli(settings, "import", str(tmp_path / "absent.ndjson"), "--account", account)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    odd = tmp_path / "entries.txt"
    odd.write_text(json.dumps(entry()))
    assert _cli(settings, "import", str(odd), "--account", account).returncode == 2
    header = tmp_path / "bad-header.csv"
    header.write_text("category,action,colour\nwebhook,x.y,red\n")
    bad = _cli(settings, "import", str(header), "--account", account)
    assert bad.returncode == 2 and "colour" in bad.stderr


def test_numbers_that_would_change_and_a_byte_order_mark(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account, _ = new_account(client)
    csv_path = tmp_path / "credits.csv"
    base = {"timestamp_utc": "2026-11-21T08:00:00.000Z", "category": "credits", "type": "notice",
            "actor_id": "billing", "action": "credits.consumed", "message": "m"}  # fmt: skip
    rows = [{**base, "id": "big", "credits_used": "100000000000000000000"},
            {**base, "id": "fits", "credits_used": "18446744073709551615"}]  # fmt: skip
    _export_csv(csv_path, rows)
    summary = _import(settings, csv_path, account=account)
    assert (summary.created, summary.rejected, summary.failed) == (1, 1, 0), summary.to_dict()
    assert summary.rejections[0]["field"] == "metadata.credits_used"
    ndjson = tmp_path / "bom.ndjson"  # as Windows tools write it
    ndjson.write_bytes(b"\xef\xbb\xbf" + json.dumps(entry(id="after-bom")).encode() + b"\n")
    summary = _import(settings, ndjson, account=account)
    assert (summary.created, summary.rejected) == (1, 0), summary.to_dict()
    assert set(_stored(es, settings, account)) == {"fits", "after-bom"}


def test_chunks_end_at_the_entry_count_or_the_input_bytes() -> None:
    items = [Item({"n": n}, n, size=10) for n in range(7)]
    by_count = [[i.line for i in c] for c in _chunks(iter(items), 3, 1000)]
    assert by_count == [[0, 1, 2], [3, 4, 5], [6]]
    by_bytes = [[i.line for i in c] for c in _chunks(iter(items), 100, 25)]
    assert by_bytes == [[0, 1, 2], [3, 4, 5], [6]]
    by_bytes = [[i.line for i in c] for c in _chunks(iter(items), 100, 20)]
    assert by_bytes == [[0, 1], [2, 3], [4, 5], [6]]


def test_an_ndjson_item_carries_the_size_of_its_line(tmp_path: Path) -> None:
    path = tmp_path / "two.ndjson"
    lines = [b'{"category":"api","action":"a"}', b'{"category":"api","action":"bb"}']
    path.write_bytes(b"\n".join(lines) + b"\n")
    with path.open("rb") as stream:
        items = list(ndjson_items(stream, 1024, IdSource(path)))
    assert [i.size for i in items] == [len(line) + 1 for line in lines]  # with its newline


def test_an_export_with_generated_ids_imports_them_kept_and_never_twice(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    """Ids the service generated (``~…``, no claim) come back as they were: imported into
    another account they are kept; imported again where they are stored, even with a timestamp
    edited into another month's index, each is a duplicate, never a second copy."""
    account, headers = new_account(client)
    unnamed = [{k: v for k, v in entry(timestamp=f"2026-11-2{n}T10:00:00Z").items() if k != "id"}
               for n in range(3)]  # fmt: skip
    made = client.post("/v1/entries", json={"entries": unnamed}, headers=headers).json()
    ids = sorted(r["id"] for r in made["results"])
    assert all(i.startswith("~") for i in ids)
    refresh(es, settings.index_prefix)
    window = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    exported = client.get("/v1/export", headers=headers, params={"format": "ndjson", **window})
    path = tmp_path / "export.ndjson"
    path.write_bytes(exported.content)
    assert sorted(json.loads(line)["id"] for line in exported.text.splitlines()) == ids

    again = _import(settings, path)
    assert (again.created, again.duplicates, again.rejected) == (0, 3, 0), again.to_dict()
    lines = [json.loads(line) for line in exported.text.splitlines()]
    lines[0]["timestamp"] = "2026-10-05T10:00:00.000Z"  # another monthly index
    edited = tmp_path / "edited.ndjson"
    edited.write_text("".join(json.dumps(line) + "\n" for line in lines))
    moved = _import(settings, edited)
    assert (moved.created, moved.duplicates, moved.rejected) == (0, 3, 0), moved.to_dict()
    assert sorted(_stored(es, settings, account)) == ids

    other, _ = new_account(client)
    unowned = tmp_path / "unowned.ndjson"
    unowned.write_text("".join(json.dumps({k: v for k, v in line.items() if k != "account_id"})
                               + "\n" for line in lines))  # fmt: skip
    copied = _import(settings, unowned, account=other)
    assert (copied.created, copied.rejected) == (3, 0), copied.to_dict()
    assert sorted(_stored(es, settings, other)) == ids


def test_an_import_rejects_a_line_nested_too_deeply_and_stores_the_others(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    account, _ = new_account(client)
    deep: object = 1
    for _ in range(400):
        deep = [deep]
    good = [entry(), entry()]
    path = tmp_path / "deep.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in (good[0], entry(metadata={"x": deep}),
                                                          good[1])))  # fmt: skip
    done = _cli(settings, "import", str(path), "--account", account)  # authenticates each entry
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["created"], summary["rejected"], summary["failed"]) == (2, 1, 0)
    assert [(r["line"], r["field"]) for r in summary["rejections"]] == [(2, "metadata.x")]
    assert set(_stored(es, settings, account)) == {e["id"] for e in good}


def test_a_csv_cell_past_128_kib_imports_and_an_entry_past_the_line_limit_is_rejected(
    client: TestClient, es: Elasticsearch, settings: Settings, tmp_path: Path
) -> None:
    """The csv module refuses a field over 128 KiB by default: an export of an entry with a long
    metadata value must import; one longer than an NDJSON line may be is rejected by its line."""
    account, _ = new_account(client)
    base = {"timestamp_utc": "2026-11-20T10:15:00.123Z", "category": "webhook", "type": "error",
            "actor_id": "dispatcher", "action": "webhook.delivery.failed"}  # fmt: skip
    rows = [
        {**base, "id": "csv-long", "metadata_other": json.dumps({"x_notes": "n" * 200_000})},
        {**base, "id": "csv-too-long", "message": "m" * 9000,
         "metadata_other": json.dumps({"x_notes": "n" * (4 * settings.max_line_bytes + 1)})},
    ]  # fmt: skip
    path = tmp_path / "export.csv"
    _export_csv(path, rows)
    summary = _import(settings, path, account=account)
    assert (summary.created, summary.rejected) == (1, 1), summary.to_dict()
    assert set(_stored(es, settings, account)) == {"csv-long"}
    report = json.dumps(summary.to_dict())
    assert "longer than" in report and "csv-too-long" in report  # the rejected row's id shown
