"""Reading a whole view page by page (exports): every entry once, in the view's order, ties too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from service.search.filters import parse_view_filters
from service.search.indices import IndexNames
from service.search.queries import EntryQuery
from service.search.scan import ViewScan
from tests.helpers import entry, new_account, open_search_contexts, refresh

# Runs of equal timestamps, longer than a page, across a month boundary (two indices).
STAMPS = (
    ["2026-09-30T23:59:59.999Z"] * 9
    + ["2026-10-01T00:00:00.000Z"] * 3
    + [f"2026-10-01T00:00:0{s}.000Z" for s in range(1, 6)]
    + ["2026-10-01T00:00:07.500Z"] * 6
)
WINDOW = {"from": ["2026-09-01T00:00:00Z"], "to": ["2026-11-01T00:00:00Z"]}


@contextlib.asynccontextmanager
async def view_scan(
    engine_url: str, prefix: str, account: str, page_size: int, order: str = "desc"
) -> AsyncIterator[ViewScan]:
    """A scan of the account's ``WINDOW`` on a client of its own (closed afterwards)."""
    es = AsyncElasticsearch(engine_url)
    try:
        filters = parse_view_filters(WINDOW, account, "UTC", datetime.now(UTC))
        yield ViewScan(es, IndexNames(prefix), EntryQuery(filters), order, page_size=page_size)
    finally:
        await es.close()


def account_with_stamps(client: TestClient, es: Elasticsearch, settings: Settings,
                        tag: str) -> str:  # fmt: skip
    """A new account holding one entry per ``STAMPS`` (ids ``<tag>00``...), searchable."""
    account, headers = new_account(client)
    entries = [entry(id=f"{tag}{n:02d}", timestamp=ts) for n, ts in enumerate(STAMPS)]
    resp = client.post("/v1/entries", json={"entries": entries}, headers=headers)
    assert resp.status_code == 200 and resp.json()["created"] == len(STAMPS), resp.text
    refresh(es, settings.index_prefix)
    return account


async def _scan_ids(engine_url: str, prefix: str, account: str, order: str) -> list[str]:
    async with view_scan(engine_url, prefix, account, 4, order) as scan:
        first = await scan.first_page()
        ids = [h["_source"]["id"] for h in first.hits]
        async for page in scan.rest(first):
            ids += [h["_source"]["id"] for h in page.hits]
        return ids


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_every_entry_once_in_timestamp_then_id_order(
    client: TestClient, es: Elasticsearch, settings: Settings, engine_url: str, order: str
) -> None:
    account, headers = new_account(client)
    entries = [entry(id=f"t{n:02d}", timestamp=ts) for n, ts in enumerate(reversed(STAMPS))]
    resp = client.post("/v1/entries", json={"entries": entries}, headers=headers)
    assert resp.status_code == 200 and resp.json()["created"] == len(STAMPS), resp.text
    refresh(es, settings.index_prefix)
    expected = [e["id"] for e in sorted(entries, key=lambda e: (e["timestamp"], e["id"]),
                                        reverse=order == "desc")]  # fmt: skip
    ids = asyncio.run(_scan_ids(engine_url, settings.index_prefix, account, order))
    assert ids == expected
    page = client.get("/v1/entries", params={**WINDOW, "size": 100, "order": order},
                      headers=headers)  # fmt: skip
    assert [e["id"] for e in page.json()["entries"]] == expected  # the view's order


async def _stop_after_one_page(engine_url: str, prefix: str, account: str) -> bool:
    """Take one page after the first, then stop; whether the read-ahead task was over."""
    async with view_scan(engine_url, prefix, account, 4) as scan:
        pages = scan.rest(await scan.first_page())
        assert len((await anext(pages)).hits) == 4
        reader = scan.reader
        assert reader is not None and not reader.done()  # still reading ahead
        await pages.aclose()
        await scan.close()
        return reader.done()


def test_a_scan_stopped_early_stops_reading_and_releases_its_point_in_time(
    client: TestClient, es: Elasticsearch, settings: Settings, engine_url: str
) -> None:
    account = account_with_stamps(client, es, settings, "s")
    before = open_search_contexts(es, settings.index_prefix)
    assert asyncio.run(_stop_after_one_page(engine_url, settings.index_prefix, account))
    assert open_search_contexts(es, settings.index_prefix) == before


async def _told_before_taking(engine_url: str, prefix: str, account: str) -> tuple[list[int], int]:
    """Start reading and take no page until the scan says it has read everything (or 10 s have
    passed); what it said, and the entries then taken."""
    async with view_scan(engine_url, prefix, account, 8) as scan:
        told: list[int] = []
        first = await scan.first_page()
        pages = scan.rest(first, told.append)
        for _ in range(1000):
            if told:
                break
            await asyncio.sleep(0.01)
        said = list(told)
        taken = len(first.hits)
        async for page in pages:
            taken += len(page.hits)
        await scan.close()
        return said, taken


def test_a_scan_says_it_has_read_everything_before_the_last_page_is_taken(
    client: TestClient, es: Elasticsearch, settings: Settings, engine_url: str
) -> None:
    """Pages of 8, 8 and 7: the reader holds the second in its queue and the last one in hand
    (the queue full), and tells the count all the same."""
    account = account_with_stamps(client, es, settings, "r")
    said, taken = asyncio.run(_told_before_taking(engine_url, settings.index_prefix, account))
    assert said == [len(STAMPS)] and taken == len(STAMPS)


async def _fail_when_told(engine_url: str, prefix: str, account: str) -> None:
    async with view_scan(engine_url, prefix, account, 100) as scan:
        first = await scan.first_page()
        assert first.is_last  # one page holds the whole view

        def told(count: int) -> None:
            raise RuntimeError(f"told {count}")

        try:
            async for _ in scan.rest(first, told):
                pass
        finally:
            await scan.close()


def test_a_failure_of_the_all_read_callback_reaches_the_caller_when_one_page_is_all(
    client: TestClient, es: Elasticsearch, settings: Settings, engine_url: str
) -> None:
    account = account_with_stamps(client, es, settings, "f")
    before = open_search_contexts(es, settings.index_prefix)
    with pytest.raises(RuntimeError, match=f"told {len(STAMPS)}"):
        asyncio.run(_fail_when_told(engine_url, settings.index_prefix, account))
    assert open_search_contexts(es, settings.index_prefix) == before
