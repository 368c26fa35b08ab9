"""Generated requests from the served OpenAPI document: never a 5xx.

The normal run sends a few examples per operation; the long run (README: Reliability) sets
``AUDITLOG_FUZZ_EXAMPLES`` so that more than 10,000 requests are sent, and prints the count.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from service.config import Settings
from tests.helpers import ADMIN, new_account
from tests.live import live_server

pytestmark = pytest.mark.fuzz  # generated requests: not in `make test-fast`


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    """Generated NDJSON bodies: strings as they are, anything else one JSON value per line."""
    if isinstance(value, str):
        return value.encode()
    items = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(item) for item in items).encode()


EXAMPLES = int(os.environ.get("AUDITLOG_FUZZ_EXAMPLES", "25"))
SENT: Counter[int] = Counter()


@pytest.fixture(scope="module")
def fuzz_target(settings: Settings, client: Any) -> Iterator[dict[str, Any]]:
    _, headers = new_account(client, timezone="Europe/Paris")
    with live_server(settings) as url:
        yield {"url": url, "headers": headers}
    print(f"\nfuzz: {sum(SENT.values())} requests, statuses {dict(sorted(SENT.items()))}")


def _operations(url: str) -> list[Any]:
    loaded = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in loaded.get_all_operations()]


def test_no_generated_request_gets_a_5xx(fuzz_target: dict[str, Any]) -> None:
    url = fuzz_target["url"]
    operations = _operations(url)
    assert len(operations) >= 14
    for operation in operations:
        admin = operation.path.startswith("/v1/admin")
        _fuzz(operation, url, ADMIN if admin else fuzz_target["headers"])
    assert sum(SENT.values()) >= len(operations) * min(EXAMPLES, 5)


def _fuzz(operation: Any, url: str, headers: dict[str, str]) -> None:
    """Send ``EXAMPLES`` generated requests for ``operation``."""

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(case: Any) -> None:
        response = case.call(base_url=url, headers=headers, timeout=30)
        SENT[response.status_code] += 1
        where = (case.method, case.formatted_path, case.query, response.content[:300])
        assert response.status_code < 500, where
        if response.status_code >= 400 and response.status_code != 405:
            assert "error" in response.json(), where

    check()
