"""The served OpenAPI document covers every /v1 route and every parameter the handlers accept."""

from __future__ import annotations

from typing import Any

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


def _lists_properties(schema: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """Whether ``schema`` describes an object by its properties (each alternative does)."""
    if "$ref" in schema:
        return _lists_properties(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas)
    if "oneOf" in schema or "anyOf" in schema:
        return all(_lists_properties(s, schemas) for s in schema.get("oneOf", schema.get("anyOf")))
    if "allOf" in schema:
        return any(_lists_properties(s, schemas) for s in schema["allOf"])
    return bool(schema.get("properties")) and bool(schema.get("required"))


def test_every_json_success_answer_lists_its_properties(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    described = 0
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                json_content = answer.get("content", {}).get("application/json")
                if status.startswith("2") and json_content is not None:
                    assert _lists_properties(json_content["schema"], schemas), (method, path)
                    described += 1
    assert described >= 26


def test_a_pending_manifest_is_a_202_with_retry_after(client: TestClient) -> None:
    answers = client.get("/openapi.json").json()["paths"]["/v1/exports/{export_id}/manifest"]
    pending = answers["get"]["responses"]["202"]
    assert pending["headers"]["Retry-After"]["required"] is True
    assert pending["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Pending"
    }


def test_an_export_job_takes_its_parameters_as_a_json_body(client: TestClient) -> None:
    post = client.get("/openapi.json").json()["paths"]["/v1/exports"]["post"]
    assert post["requestBody"]["required"] is False
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == EXPORT_PARAMS
    assert post["responses"]["202"]["headers"]["Location"]["required"] is True


def test_a_download_lists_its_file_types_and_headers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    download = paths["/v1/export"]["get"]["responses"]["200"]
    assert set(download["content"]) == {
        "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/x-ndjson",
    }
    assert set(download["headers"]) == {"X-Total-Count", "X-Export-Id", "Link",
                                        "Content-Disposition"}  # fmt: skip
    job_file = paths["/v1/exports/{job_id}/download"]["get"]["responses"]["200"]
    assert set(job_file["content"]) == set(download["content"])


def test_408_and_429_are_listed_where_the_limits_apply(client: TestClient) -> None:
    """429 for every /v1 request (too many in flight), 408 for every request with a body."""
    for path, item in client.get("/openapi.json").json()["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            assert ("429" in statuses) == path.startswith("/v1/"), (method, path)
            assert ("408" in statuses) == ("requestBody" in operation), (method, path)
