"""Baseline response headers; CORS stays off unless configured."""

from __future__ import annotations

from dataclasses import replace

from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.helpers import ADMIN


def test_api_responses_are_not_sniffed_nor_cached(client: TestClient) -> None:
    resp = client.get("/v1/admin/accounts", headers=ADMIN)
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["cache-control"] == "no-store"


def test_cors_is_off_by_default(client: TestClient) -> None:
    resp = client.get("/v1/admin/accounts", headers={**ADMIN, "Origin": "https://evil.test"})
    assert "access-control-allow-origin" not in resp.headers
    preflight = client.options(
        "/v1/entries",
        headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allows_only_configured_origins(settings: Settings) -> None:
    configured = replace(settings, cors_origins=("https://app.acme.test",))
    with TestClient(create_app(configured)) as app_client:
        ok = app_client.options(
            "/v1/entries",
            headers={"Origin": "https://app.acme.test", "Access-Control-Request-Method": "GET"},
        )
        assert ok.headers["access-control-allow-origin"] == "https://app.acme.test"
        read = app_client.get("/healthz", headers={"Origin": "https://app.acme.test"})
        exposed = {h.strip() for h in read.headers["access-control-expose-headers"].split(",")}
        # a browser reads an export's id and manifest link, and a job's location, only if exposed
        assert {"X-Export-Id", "Link", "Location", "X-Total-Count"} <= exposed
        other = app_client.get("/healthz", headers={"Origin": "https://evil.test"})
        assert "access-control-allow-origin" not in other.headers


def test_requests_beyond_the_inflight_limit_get_429(settings: Settings) -> None:
    limited = TestClient(create_app(replace(settings, max_inflight=0)))  # no lifespan needed
    resp = limited.get("/v1/entries", headers=ADMIN)
    assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
    assert resp.json()["error"]["code"] == "overloaded"
