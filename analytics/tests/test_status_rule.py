"""The status rule at each of its boundaries, as every answer states it (both backends).

One vehicle V-1 on meter M-1; its readings lie in the 10:00 hour (partly raw, partly rolled up
for the per-vehicle window, rolled up for the fleet window). Every answer must agree: the
per-vehicle figures, the vehicle's series bucket, the fleet summary's counts, the fleet list and
the fleet series.
"""

import pytest

from analytics.selectors import (
    PerformanceStatus,
    fleet_inefficient,
    fleet_series,
    fleet_summary,
    vehicle_performance,
    vehicle_series,
)
from analytics.tests.conftest import NOW
from analytics.tests.test_selectors import assign, at
from telemetry.tests.factories import ingest, meter_payload, vehicle_payload

pytestmark = pytest.mark.django_db

S = PerformanceStatus

# (AC readings, DC readings, threshold, minChargeKwh) -> (status, efficiency %)
CASES = {
    "no readings at all": ([], [], 85, 1.0, S.INSUFFICIENT_DATA, None),
    "AC but no vehicle reading": ([5.0], [], 85, 1.0, S.INSUFFICIENT_DATA, None),
    "DC but no meter reading": ([], [5.0], 85, 1.0, S.INSUFFICIENT_DATA, None),
    "standby draw, nothing delivered": ([0.0008, 0.0008], [0.0, 0.0], 85, 1.0, S.IDLE, None),
    "AC just below the minimum": ([0.5, 0.49], [0.4, 0.4], 85, 1.0, S.IDLE, None),
    "AC exactly at the minimum, no DC": ([0.5, 0.5], [0.0], 85, 1.0, S.FAULT_DETECTED, 0.0),
    "a lower minimum judges standby draw": ([0.0016], [0.0], 85, 0.001, S.FAULT_DETECTED, 0.0),
    "DC equal to AC": ([1.0, 1.0], [2.0], 85, 1.0, S.OK, 100.0),
    "DC above AC": ([1.0, 1.0], [2.5], 85, 1.0, S.ANOMALY, 125.0),
    "efficiency exactly at the threshold": ([1.0, 1.0], [1.5], 75, 1.0, S.OK, 75.0),
    "efficiency just below the threshold": ([1.0, 1.0], [1.4998], 75, 1.0, S.FAULT_DETECTED, 74.99),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request, clock):
    ac, dc, threshold, min_charge, status, efficiency = CASES[request.param]
    assign("V-1", "M-1", at(0))
    payloads = [meter_payload("M-1", at=at(10, 20 + i), kwh=kwh) for i, kwh in enumerate(ac)]
    payloads += [
        vehicle_payload("V-1", at=at(10, 20 + i), kwh=kwh, temp=30) for i, kwh in enumerate(dc)
    ]
    if payloads:
        ingest(payloads, now=NOW)
    return threshold, min_charge, status, efficiency


def test_the_per_vehicle_answer_follows_the_rule(case):
    threshold, min_charge, status, efficiency = case

    answer = vehicle_performance(
        vehicle_id="V-1",
        start=at(10, 15),
        end=NOW,
        threshold=threshold,
        min_charge_kwh=min_charge,
    )

    assert (answer.status, answer.efficiency_pct) == (status, efficiency)


def test_the_series_bucket_follows_the_rule(case):
    threshold, min_charge, status, efficiency = case

    series = vehicle_series(
        vehicle_id="V-1",
        start=at(9, 45),
        end=NOW,
        bucket="hour",
        threshold=threshold,
        min_charge_kwh=min_charge,
    )

    by_start = {item.start: item for item in series.items}
    # A bucket without readings is INSUFFICIENT_DATA whatever the case.
    assert by_start[at(9, 45)].status == S.INSUFFICIENT_DATA
    assert (by_start[at(10)].status, by_start[at(10)].efficiency_pct) == (status, efficiency)


def test_the_fleet_answers_follow_the_rule(case):
    threshold, min_charge, status, efficiency = case
    options = dict(hours=24, now=NOW, threshold=threshold, min_charge_kwh=min_charge)

    summary = fleet_summary(**options)
    page = fleet_inefficient(**options, limit=50, offset=0)
    series = fleet_series(**options, bucket="day")

    assert summary.by_status == {s: int(s == status) for s in S.values}
    # Only FAULT_DETECTED vehicles are listed: never IDLE nor INSUFFICIENT_DATA.
    listed = [(item.status, item.efficiency_pct) for item in page.items]
    assert listed == ([(status, efficiency)] if status == S.FAULT_DETECTED else [])
    yesterday, today = series.items  # the window starts at 13:00 the day before
    assert yesterday.status == S.INSUFFICIENT_DATA
    assert (today.status, today.efficiency_pct) == (status, efficiency)
