"""The served OpenAPI document covers every /v1 route and every parameter the handlers accept."""

from __future__ import annotations

from starlette.routing import Route
from starlette.testclient import TestClient

from service.web.view_request import ENTRIES_PARAMS, EXPORT_PARAMS, HISTOGRAM_PARAMS


def test_every_v1_route_is_documented(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.path.startswith("/v1"):
            methods = {m.lower() for m in route.methods or ()} - {"head"}
            for method in methods:
                assert method in doc["paths"][route.path], (method, route.path)


def test_parameters_match_what_handlers_accept(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    def names(path: str, method: str = "get") -> set[str]:
        return {p["name"] for p in paths[path][method]["parameters"]}

    assert names("/v1/entries") == ENTRIES_PARAMS
    assert names("/v1/histogram") == HISTOGRAM_PARAMS
    assert names("/v1/export") == EXPORT_PARAMS
    assert names("/v1/exports", "post") == EXPORT_PARAMS
