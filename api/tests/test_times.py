from datetime import UTC, datetime, timedelta, timezone

import pytest

from api.times import hour_ceil, hour_floor

CET = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("moment", "floor", "ceil"),
    [
        (datetime(2026, 2, 10, 10, 12, 5, 7, tzinfo=UTC), 10, 11),
        (datetime(2026, 2, 10, 10, tzinfo=UTC), 10, 10),
        (datetime(2026, 2, 10, 10, 0, 0, 1, tzinfo=UTC), 10, 11),
        (datetime(2026, 2, 10, 11, 30, tzinfo=CET), 10, 11),  # 10:30 UTC
    ],
)
def test_an_instant_rounds_to_whole_utc_hours(moment, floor, ceil):
    assert (hour_floor(moment), hour_ceil(moment)) == (
        datetime(2026, 2, 10, floor, tzinfo=UTC),
        datetime(2026, 2, 10, ceil, tzinfo=UTC),
    )


def test_the_next_hour_crosses_midnight():
    assert hour_ceil(datetime(2026, 2, 10, 23, 59, tzinfo=UTC)) == datetime(2026, 2, 11, tzinfo=UTC)
