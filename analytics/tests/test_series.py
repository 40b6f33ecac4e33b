"""Series per bucket: the buckets sum to the window's totals, exact at assignment edges."""

import pytest

from analytics.selectors import (
    fleet_series,
    fleet_summary,
    vehicle_performance,
    vehicle_series,
)
from analytics.tests.conftest import NOW
from analytics.tests.test_selectors import assign, at, brute_force, charge

pytestmark = pytest.mark.django_db


@pytest.fixture
def reassigned(clock):
    """V-A on M-1, then on M-2 from 10:37; both meters and V-A report every minute 9:00–12:29.

    V-B takes M-1 at 10:37 (so M-1's 10:00 hour is split between two vehicles).
    """
    assign("V-A", "M-1", at(0))
    assign("V-A", "M-2", at(10, 37))
    assign("V-B", "M-1", at(10, 37))
    charge("V-A", ["M-1", "M-2"], start=at(9), minutes=210)
    charge("V-B", [], start=at(9), minutes=210, dc_factor=0.5)


def totals(items) -> tuple[float, float, int, int]:
    return (
        round(sum(item.ac_kwh for item in items), 3),
        round(sum(item.dc_kwh for item in items), 3),
        sum(item.meter_reading_count for item in items),
        sum(item.vehicle_reading_count for item in items),
    )


class TestVehicleSeries:
    @pytest.mark.parametrize("bucket", ["hour", "day"])
    @pytest.mark.parametrize(
        "window",
        [
            (at(9, 13), at(11, 41)),
            (at(10, 37), at(12, 0)),
            (at(8), at(12, 29, 59)),
            (at(10, 5), at(10, 50)),
        ],
        ids=["off-the-hour", "from-the-reassignment", "whole-hours", "inside-one-hour"],
    )
    def test_the_buckets_sum_to_the_per_vehicle_total(self, reassigned, bucket, window):
        start, end = window

        series = vehicle_series(vehicle_id="V-A", start=start, end=end, bucket=bucket, threshold=85)
        total = vehicle_performance(vehicle_id="V-A", start=start, end=end, threshold=85)
        raw = brute_force(vehicle_id="V-A", start=start, end=end)

        assert totals(series.items) == (
            round(total.ac_kwh, 3),
            round(total.dc_kwh, 3),
            total.meter_reading_count,
            total.vehicle_reading_count,
        )
        assert totals(series.items) == (
            round(raw.ac_kwh, 3),
            round(raw.dc_kwh, 3),
            raw.meter_readings,
            raw.vehicle_readings,
        )
        assert series.meter_ids == total.meter_ids

    def test_buckets_are_clipped_to_the_window_and_cover_it(self, reassigned):
        series = vehicle_series(
            vehicle_id="V-A", start=at(9, 13), end=at(11, 41), bucket="hour", threshold=85
        )

        assert [(item.start, item.end) for item in series.items] == [
            (at(9, 13), at(10)),
            (at(10), at(11)),
            (at(11), at(11, 41)),
        ]
        assert series.items[1].meter_reading_count == 60  # 37 of M-1, 23 of M-2

    def test_an_empty_bucket_is_reported_with_no_data(self, reassigned):
        series = vehicle_series(
            vehicle_id="V-A", start=at(6), end=at(9, 30), bucket="hour", threshold=85
        )

        assert [item.status for item in series.items] == ["INSUFFICIENT_DATA"] * 3 + [
            "FAULT_DETECTED"  # charge(): about 73 %
        ]
        assert series.items[0].ac_kwh == 0.0 and series.items[0].efficiency_pct is None

    def test_the_series_is_two_statements(self, reassigned, django_assert_num_queries):
        with django_assert_num_queries(2):
            vehicle_series(vehicle_id="V-A", start=at(0), end=NOW, bucket="hour", threshold=85)


class TestFleetSeries:
    @pytest.mark.parametrize("bucket", ["hour", "day"])
    @pytest.mark.parametrize("hours", [1, 3, 30])
    def test_the_buckets_sum_to_the_fleet_summary(self, reassigned, bucket, hours):
        series = fleet_series(hours=hours, now=NOW, bucket=bucket, threshold=85)
        summary = fleet_summary(hours=hours, now=NOW, threshold=85)

        ac, dc, _, _ = totals(series.items)
        assert (ac, dc) == (round(summary.ac_kwh, 3), round(summary.dc_kwh, 3))
        assert (series.items[0].start, series.items[-1].end) == (summary.start, NOW)

    def test_each_hour_is_exact_at_the_reassignment(self, reassigned):
        series = fleet_series(hours=3, now=NOW, bucket="hour", threshold=85)

        # 10:00 hour: M-1 for V-A until 10:37 and for V-B after, M-2 for V-A from 10:37.
        ten = series.items[0]
        assert (ten.start, ten.end, ten.meter_reading_count) == (at(10), at(11), 60 + 23)
        assert series.items[-1].end == NOW

    def test_the_series_is_one_statement(self, reassigned, django_assert_num_queries):
        with django_assert_num_queries(1):
            fleet_series(hours=24, now=NOW, bucket="hour", threshold=85)
