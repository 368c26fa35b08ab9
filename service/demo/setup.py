"""The demo of ``auditlog run``: demo accounts, their 90 days of entries, and a sign-in key.

The demo entries are loaded once, through the one ingest path, into the demo accounts that do
not exist yet; each account is created only after its entries were all stored, so an interrupted
load is completed by the next run. The generator reuses its ids for every ``now``, so entries are
never loaded into an account that already exists. Every run creates a fresh ``acme`` key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from itertools import islice

from ingest.pipeline import IngestContext, Item, ingest_items
from ingest.validation import Rejected
from service.actions.accounts import AccountActions
from service.config import Settings
from service.demo.content import DEMO_ACCOUNTS, DemoAccount, generate_demo_entries
from service.search.accounts import Account, AccountStore
from service.search.client import Engine, make_client
from service.search.indices import IndexNames
from service.search.setup import run_setup

DEMO_KEY_ACCOUNT = "acme"
DEMO_KEY_NAME = "demo sign-in key"
DEMO_KEY_SCOPES = ["export", "ingest", "read"]
DEMO_ACTOR = {"type": "system", "id": "demo", "name": "Demo setup"}


def _say(message: str) -> None:
    print(message, flush=True)


class DemoLoadError(RuntimeError):
    """Some demo entries were not stored; the next run loads them again."""


async def _load_entries(ctx: IngestContext, accounts: list[DemoAccount]) -> dict[str, int]:
    """Store the demo entries of ``accounts``; the counts by status."""
    counts = {"created": 0, "duplicate": 0, "rejected": 0, "failed": 0}
    entries = generate_demo_entries(datetime.now(UTC), accounts=accounts)
    while chunk := list(islice(entries, ctx.batch_size)):
        items = [Item(entry) for entry in chunk]
        account_of: dict[int, str | Rejected] = {i: e["account_id"] for i, e in enumerate(chunk)}
        for result in await ingest_items(ctx, items, account_of):
            counts[result.status] += 1
    return counts


async def _demo_key(ctx: IngestContext, store: AccountStore) -> str:
    actions = AccountActions(store, ctx, DEMO_ACTOR)
    created = await actions.create_key(DEMO_KEY_NAME, DEMO_KEY_ACCOUNT, DEMO_KEY_SCOPES)
    assert created is not None  # the demo account is created before its key
    return created[1]


async def prepare(es: Engine, settings: Settings, report: Callable[[str], None] = _say) -> str:
    """Set up, load the demo into the demo accounts that are missing, return a new acme key."""
    await run_setup(es, settings)
    names = IndexNames(settings.index_prefix)
    store = AccountStore(es, names)
    ctx = IngestContext.for_settings(es, settings)
    missing = [a for a in DEMO_ACCOUNTS if await store.get_account(a.id) is None]
    if missing:
        report(f"loading the demo data of {', '.join(a.id for a in missing)}...")
        counts = await _load_entries(ctx, missing)
        if counts["failed"] or counts["rejected"]:
            raise DemoLoadError(f"demo data not fully stored: {counts}")
        for account in missing:
            await store.create_account(Account(account.id, account.name, account.timezone))
        report(f"demo data: {counts['created']} entries created, {counts['duplicate']} present")
    else:
        report("demo data: already loaded")
    return await _demo_key(ctx, store)


async def load_demo(settings: Settings, report: Callable[[str], None] = _say) -> str:
    """:func:`prepare` with a client of its own for ``settings.es_url``."""
    if not settings.es_url:
        raise ValueError("load_demo needs settings.es_url")
    es = make_client(settings, settings.es_url)
    try:
        return await prepare(es, settings, report)
    finally:
        await es.close()
