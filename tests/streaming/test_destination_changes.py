"""What a destination's body may say, at creation and in a ``PATCH``: a secret its kind requires
is replaced, never removed; a setting in seconds is a number in its range, said when it is not;
nothing of a refused change is kept."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from starlette.testclient import TestClient

from tests.streaming.deployment import create_destination, streaming_account

Account = tuple[TestClient, dict[str, str], str]
WEBHOOK = {"kind": "webhook", "url": "https://hooks.example.com/x", "secrets": {"secret": "s1"}}
SPLUNK = {"kind": "splunk_hec", "url": "https://hec.example.com", "secrets": {"token": "t1"}}


@pytest.fixture(scope="module")
def account(engine_url: str, es: Elasticsearch) -> Iterator[Account]:
    with streaming_account(engine_url, es) as made:
        yield made


def _refused(resp: Any, field: str, *said: str) -> None:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["field"] == field and all(s in error["message"] for s in said), error


@pytest.mark.parametrize(
    ("made", "secrets", "named"),
    [(WEBHOOK, {"secret": ""}, "secrets.secret"),
     (WEBHOOK, {"secret": "", "previous_secret": "s1"}, "secrets.secret"),
     (SPLUNK, {"token": ""}, "secrets.token")],
)  # fmt: skip
def test_a_patch_cannot_remove_a_secret_the_kind_requires(
    account: Account, made: dict[str, Any], secrets: dict[str, str], named: str
) -> None:
    client, headers, _ = account
    created = create_destination(client, headers, **made)
    url = f"/v1/destinations/{created['id']}"
    resp = client.patch(url, json={"name": "renamed", "secrets": secrets}, headers=headers)
    _refused(resp, "secrets", named, "required")
    shown = client.get(url, headers=headers).json()
    assert shown["secrets_set"] == created["secrets_set"] and shown["name"] == "SIEM"


def test_a_patch_may_remove_a_secret_the_kind_does_not_require(account: Account) -> None:
    client, headers, _ = account
    rotating = {**WEBHOOK, "secrets": {"secret": "s2", "previous_secret": "s1"}}
    created = create_destination(client, headers, **rotating)
    assert created["secrets_set"] == ["previous_secret", "secret"]
    url = f"/v1/destinations/{created['id']}"
    resp = client.patch(url, json={"secrets": {"previous_secret": ""}}, headers=headers)
    assert resp.status_code == 200 and resp.json()["secrets_set"] == ["secret"], resp.text


@pytest.mark.parametrize(
    ("setting", "value", "largest"),
    [("ack_timeout_s", 1e308, 600), ("ack_timeout_s", -1e308, 600), ("ack_timeout_s", 0.5, 600),
     ("timeout_s", 60.5, 60), ("timeout_s", "abc", 60), ("timeout_s", True, 60)],
)  # fmt: skip
def test_a_seconds_setting_out_of_range_is_400_saying_the_range(
    account: Account, setting: str, value: object, largest: int
) -> None:
    client, headers, _ = account
    said = (f"settings.{setting}", f"from 1 to {largest}")
    body = {"name": "SIEM", **SPLUNK, "settings": {setting: value}}
    _refused(client.post("/v1/destinations", json=body, headers=headers), "settings", *said)
    created = create_destination(client, headers, **SPLUNK)
    url = f"/v1/destinations/{created['id']}"
    resp = client.patch(url, json={"settings": {setting: value}}, headers=headers)
    _refused(resp, "settings", *said)
    assert client.get(url, headers=headers).json()["settings"] == {}


def test_seconds_may_have_a_fraction(account: Account) -> None:
    client, headers, _ = account
    wanted = {"ack_timeout_s": 2.5, "timeout_s": 59.75}
    created = create_destination(client, headers, **SPLUNK, settings=wanted)
    assert created["settings"] == wanted
    shown = client.get(f"/v1/destinations/{created['id']}", headers=headers).json()
    assert shown["settings"] == wanted


def test_a_setting_of_another_type_says_what_it_may_be(account: Account) -> None:
    client, headers, _ = account
    body = {"name": "SIEM", **SPLUNK, "settings": {"index": 1.5}}
    resp = client.post("/v1/destinations", json=body, headers=headers)
    _refused(resp, "settings", "settings.index", "a string, an integer or a boolean")


@pytest.mark.parametrize("account_id", [42, ["x"], {"id": "x"}, True])
def test_an_account_id_that_is_not_a_string_is_400_naming_it(
    account: Account, account_id: object
) -> None:
    client, headers, _ = account
    body = {"name": "SIEM", **WEBHOOK, "account_id": account_id}
    _refused(client.post("/v1/destinations", json=body, headers=headers), "account_id")


def test_a_patched_filter_replaces_the_stored_one_whole(account: Account) -> None:
    """The docs say ``filter`` is replaced whole: categories and types set before do not stay
    under a filter that now names a search text only."""
    client, headers, _ = account
    made = {**WEBHOOK, "filter": {"categories": ["api", "audit"], "types": ["error"]}}
    created = create_destination(client, headers, **made)
    url = f"/v1/destinations/{created['id']}"
    resp = client.patch(url, json={"filter": {"q": "hello"}}, headers=headers)
    assert resp.status_code == 200, resp.text
    stored = client.get(url, headers=headers).json()["filter"]
    assert stored == resp.json()["filter"] and "categories" not in stored, stored
    assert "types" not in stored and stored["q"] == "hello"


def test_patched_settings_are_merged_into_those_set(account: Account) -> None:
    client, headers, _ = account
    created = create_destination(client, headers, **{**SPLUNK, "settings": {"index": "main"}})
    url = f"/v1/destinations/{created['id']}"
    resp = client.patch(url, json={"settings": {"sourcetype": "audit"}}, headers=headers)
    assert resp.status_code == 200, resp.text
    settings = client.get(url, headers=headers).json()["settings"]
    assert settings["index"] == "main" and settings["sourcetype"] == "audit", settings


def test_concurrent_patches_of_settings_each_keep_their_change(account: Account) -> None:
    """Each change is worked out from the destination as stored and written only if it is
    still so: none of four at once is lost."""
    client, headers, _ = account
    created = create_destination(client, headers, **{**SPLUNK, "settings": {"index": "main"}})
    url = f"/v1/destinations/{created['id']}"
    changes = [{"source": "s"}, {"sourcetype": "t"}, {"host": "h"}, {"ack": True}]
    with ThreadPoolExecutor(max_workers=len(changes)) as pool:
        answers = list(pool.map(
            lambda change: client.patch(url, json={"settings": change}, headers=headers), changes
        ))  # fmt: skip
    assert [a.status_code for a in answers] == [200] * len(changes), [a.text for a in answers]
    settings = client.get(url, headers=headers).json()["settings"]
    assert settings == {"index": "main", "source": "s", "sourcetype": "t", "host": "h",
                        "ack": True}  # fmt: skip


ELASTIC = {"kind": "elasticsearch", "url": "https://es.example.com", "settings": {"index": "audit"},
           "secrets": {"api_key": "k1"}}  # fmt: skip


def test_a_patch_cannot_blank_a_setting_the_kind_requires(account: Account) -> None:
    client, headers, _ = account
    created = create_destination(client, headers, **ELASTIC)
    url = f"/v1/destinations/{created['id']}"
    resp = client.patch(url, json={"settings": {"index": ""}}, headers=headers)
    _refused(resp, "settings", "settings.index is required")
    assert client.get(url, headers=headers).json()["settings"]["index"] == "audit"


def test_an_empty_setting_in_a_patch_removes_an_optional_one(account: Account) -> None:
    client, headers, _ = account
    made = {**SPLUNK, "settings": {"index": "main", "sourcetype": "audit"}}
    created = create_destination(client, headers, **made)
    url = f"/v1/destinations/{created['id']}"
    resp = client.patch(url, json={"settings": {"index": ""}}, headers=headers)
    assert resp.status_code == 200, resp.text
    assert client.get(url, headers=headers).json()["settings"] == {"sourcetype": "audit"}


def test_a_user_name_goes_with_its_password(account: Account) -> None:
    client, headers, _ = account
    alone = {**ELASTIC, "secrets": {"username": "u"}}
    resp = client.post("/v1/destinations", json={**alone, "name": "SIEM"}, headers=headers)
    _refused(resp, "secrets", "secrets.password is required with secrets.username")
    paired = {**ELASTIC, "secrets": {"username": "u", "password": "p"}}
    created = create_destination(client, headers, **paired)
    url = f"/v1/destinations/{created['id']}"
    resp = client.patch(url, json={"secrets": {"password": ""}}, headers=headers)
    _refused(resp, "secrets", "secrets.password is required with secrets.username")
