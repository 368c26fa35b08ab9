"""The engine client: one ``AsyncElasticsearch`` per process, created by the app's lifespan."""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer

from service.config import Settings


def make_client(settings: Settings, url: str) -> AsyncElasticsearch:
    """A client for ``url`` with the configured credentials; it does not connect yet."""
    options: dict[str, Any] = {
        "request_timeout": 30,
        "retry_on_timeout": True,
        "max_retries": 2,
        "serializer": OrjsonSerializer(),
    }
    if settings.es_username and settings.es_password is not None:
        options["basic_auth"] = (settings.es_username, str(settings.es_password))
    if settings.es_ca_certs:
        options["ca_certs"] = settings.es_ca_certs
    return AsyncElasticsearch(url, **options)
