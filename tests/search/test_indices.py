"""Index names: an entry's index read from its stored timestamp is the one its time gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from ingest.validation import format_utc
from service.search.indices import IndexNames
from service.vocabulary import CATEGORIES

NAMES = IndexNames("p")


@given(
    st.sampled_from(CATEGORIES),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_the_index_of_a_stored_timestamp_is_the_index_of_its_time(
    category: str, local: datetime, offset_minutes: int
) -> None:
    moment = local.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    by_time = NAMES.entry_index_for(category, moment)
    assert NAMES.entry_index_for_stamp(category, format_utc(moment)) == by_time
    assert by_time.startswith(f"p-{category}-{moment.astimezone(UTC):%Y.%m}")


def test_integration_indices_are_daily_and_the_others_monthly() -> None:
    stamp = "2026-11-30T23:59:59.999Z"
    assert NAMES.entry_index_for_stamp("integration", stamp) == "p-integration-2026.11.30"
    assert NAMES.entry_index_for_stamp("api", stamp) == "p-api-2026.11"
