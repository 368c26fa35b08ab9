"""Every timezone the service accepts is one the engine accepts too, and refused names are
refused everywhere, by one function."""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch
from starlette.testclient import TestClient

from service.config import Settings
from service.errors import ServiceError
from service.search.indices import IndexNames
from service.zones import accepted_name, accepted_zones, zone


def _histogram(zone_name: str) -> dict[str, Any]:
    return {"date_histogram": {"field": "timestamp", "calendar_interval": "day",
                               "time_zone": zone_name}}  # fmt: skip


def test_every_accepted_zone_runs_through_a_date_histogram_of_the_engine(
    client: TestClient, es: Elasticsearch, settings: Settings
) -> None:
    del client  # the service is up: its indices and alias exist
    zones = sorted(accepted_zones())
    assert len(zones) > 400 and {"UTC", "US/Eastern", "Europe/Paris", "Etc/GMT+5"} <= set(zones)
    alias = IndexNames(settings.index_prefix).accounts  # any index: zones are read, not data
    aggs = {f"z{i}": _histogram(name) for i, name in enumerate(zones)}
    try:
        es.search(index=alias, size=0, aggs=aggs, query={"match_all": {}})
    except BadRequestError:  # name the zones the engine refused
        refused = []
        for name in zones:
            try:
                es.search(index=alias, size=0, aggs={"h": _histogram(name)})
            except BadRequestError:
                refused.append(name)
        pytest.fail(f"the engine refuses accepted zones: {refused}")


@pytest.mark.parametrize(
    "name",
    [
        "right/UTC",
        "posix/UTC",
        "posixrules",
        "Factory",
        "localtime",
        "EST",
        "ROC",
        "America",
        "",
        None,
        3,
    ],
)
def test_names_that_are_not_zones_of_both_sides_are_refused_naming_the_field(name: Any) -> None:
    with pytest.raises(ServiceError) as refused:
        zone(name, "timezone")
    assert refused.value.status == 400 and refused.value.field == "timezone"


def test_a_refused_stored_name_has_the_accepted_zone_it_means() -> None:
    assert accepted_name("right/Europe/Paris") == "Europe/Paris"
    assert accepted_name("posix/US/Eastern") == "US/Eastern"
    assert accepted_name("posixrules") == "America/New_York"
    assert accepted_name("localtime") == "UTC"
    assert accepted_name("EST") == "Etc/GMT+5"
    assert accepted_name("America") is None
