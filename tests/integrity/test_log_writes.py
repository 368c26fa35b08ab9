"""Writes of the account logs survive a client that timed out and sent a write again: the same
segment or checkpoint already stored is that write, never a conflict (which would make the sealer
delete the segment of a checkpoint that exists)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from elasticsearch import Elasticsearch

from service.search.client import make_client
from service.search.indices import IndexNames
from service.search.integrity_log import IntegrityLog, LogConflict
from service.search.setup import run_setup
from tests.helpers import delete_prefixed, make_settings


def test_a_write_sent_twice_is_stored_once_and_a_different_one_conflicts(
    engine_url: str, es: Elasticsearch
) -> None:
    prefix = f"w{uuid.uuid4().hex[:8]}"
    settings = make_settings(engine_url, prefix)
    leaves = [{"id": "e1", "category": "api", "timestamp": "2026-11-20T10:15:00.123Z",
               "digest": "ab" * 32}]  # fmt: skip
    checkpoint = {"kind": "checkpoint", "account_id": "acme", "seq": 1, "tree_size": 1,
                  "root": "cd" * 32, "signature": "sig"}  # fmt: skip

    async def run() -> None:
        client = make_client(settings, engine_url)
        try:
            await run_setup(client, settings)
            log = IntegrityLog(client, IndexNames(prefix))
            await log.append("acme", 0, leaves, checkpoint)
            await log.append("acme", 0, leaves, checkpoint)  # the same write, again: no harm
            await client.indices.refresh(index=IndexNames(prefix).integrity)
            assert await log.leaves_between("acme", 0, 1) == leaves
            with pytest.raises(LogConflict):  # another sealer's write at that position
                await log.append("acme", 0, leaves, {**checkpoint, "root": "ef" * 32})
            await client.indices.refresh(index=IndexNames(prefix).integrity)
            assert await log.leaves_between("acme", 0, 1) == leaves  # its segment kept
        finally:
            await client.close()

    try:
        asyncio.run(run())
    finally:
        delete_prefixed(es, prefix)
