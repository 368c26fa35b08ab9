"""The engine client: one ``AsyncElasticsearch`` per process, created by the app's lifespan."""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer

from service.config import Settings
from service.search.engine_errors import translated

Engine = AsyncElasticsearch
"""The engine client's type, named for the modules outside ``service.search`` (which do not import
the client library: they hand the client to this package, which alone calls it)."""

REQUEST_TIMEOUT_S = 30
CLIENT_RETRIES = 2
"""Each request's timeout, and how often the client retries it (timeouts included)."""
ALL_CREATED = "all_created"
"""The key of the answer :class:`EngineSerializer` reads from a bulk answer whose items are all
``create``s with status 201: its value is their number."""
_BULK_HEAD = b'{"errors":false,"items":['
_CREATED_ITEM = b'{"create":{"status":201}}'


class EngineSerializer(OrjsonSerializer):
    """orjson for every answer but one: the writer's bulk answer (``filter_path=errors,
    items.*.status,items.*.error``) when every item was created is recognised byte for byte,
    not parsed, and read as ``{"errors": False, "all_created": n}``. Parsing it built two objects
    per entry, a tenth of the CPU an ingest request took."""

    def loads(self, data: bytes) -> Any:
        if data.startswith(_BULK_HEAD):
            n = data.count(_CREATED_ITEM)
            if n and data == b"%b%b]}" % (_BULK_HEAD, b",".join([_CREATED_ITEM] * n)):
                return {"errors": False, ALL_CREATED: n}
        return super().loads(data)


class BodySerializer(NdjsonSerializer):
    """NDJSON request bodies; one already built (bytes ending in a newline, as the writer sends
    its bulk bodies) goes out as it is, rather than copied twice into a new buffer."""

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes) and data.endswith(b"\n"):
            return data
        return super().dumps(data)


def make_client(settings: Settings, url: str) -> AsyncElasticsearch:
    """A client for ``url`` with the configured credentials; it does not connect yet."""
    options: dict[str, Any] = {
        "request_timeout": REQUEST_TIMEOUT_S,
        "retry_on_timeout": True,
        "max_retries": CLIENT_RETRIES,
        "serializers": {
            "application/json": EngineSerializer(),
            "application/x-ndjson": BodySerializer(),
        },
    }
    if settings.es_username and settings.es_password is not None:
        options["basic_auth"] = (settings.es_username, str(settings.es_password))
    if settings.es_ca_certs:
        options["ca_certs"] = settings.es_ca_certs
    return AsyncElasticsearch(url, **options)


@translated
async def cluster_status(es: AsyncElasticsearch, timeout_s: float = 3) -> str:
    """The cluster's health colour, asked with a short deadline (for readiness)."""
    health = await es.options(request_timeout=timeout_s).cluster.health(timeout="2s")
    return str(health["status"])
