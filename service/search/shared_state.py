"""Secrets every instance of a deployment shares, created once in ``<prefix>-state``.

The first instance to need a secret creates it (a ``create`` with a fixed id: of several
instances starting at once, one writes it and the others read it back), so a cursor signed by one
instance or worker is accepted by every other, with nothing to configure.
"""

from __future__ import annotations

import contextlib
import secrets

from elasticsearch import AsyncElasticsearch, ConflictError

from service.search.engine_errors import translated
from service.search.indices import IndexNames


@translated
async def shared_secret(es: AsyncElasticsearch, names: IndexNames, name: str) -> bytes:
    """The deployment's secret ``name`` (32 random bytes, hex), created on first use."""
    doc_id = f"secret:{name}"
    with contextlib.suppress(ConflictError):  # another instance created it first
        await es.create(
            index=names.state,
            id=doc_id,
            document={"kind": "secret", "name": name, "value": secrets.token_hex(32)},
            refresh=True,
        )
    stored = await es.get(index=names.state, id=doc_id)
    return str(stored["_source"]["value"]).encode()


@translated
async def done_once(es: AsyncElasticsearch, names: IndexNames, step: str) -> bool:
    """Whether the deployment's one-time ``step`` was done."""
    return bool(await es.exists(index=names.state, id=f"done:{step}"))


@translated
async def mark_done(es: AsyncElasticsearch, names: IndexNames, step: str) -> None:
    await es.index(index=names.state, id=f"done:{step}", document={"kind": "done"}, refresh=True)
