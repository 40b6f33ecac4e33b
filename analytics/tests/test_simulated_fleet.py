"""The verdicts on a simulated fleet: parked vehicles are IDLE, the culprits are named."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from analytics.selectors import (
    AttributionVerdict,
    fleet_attribution,
    fleet_inefficient,
    fleet_summary,
    vehicle_performance,
)
from analytics.tests.conftest import NOW
from analytics.tests.test_selectors import at
from telemetry.models import MeterReading
from telemetry.simulation import fleet_plan

pytestmark = pytest.mark.django_db

OPTIONS = dict(vehicles=20, hours=6, fault_share=0.05, idle_share=0.2, seed=1)


@pytest.fixture
def simulated(clock):
    """The demo's fleet (20 vehicles, 6 hours, seed 1) ending at 12:00, stored via the command."""
    start = at(6)
    call_command(
        "simulate_fleet",
        *[f"--{name.replace('_', '-')}={value}" for name, value in OPTIONS.items()],
        f"--start={start.isoformat()}",
        stdout=StringIO(),
        stderr=StringIO(),
    )
    return fleet_plan(interval_seconds=60, start=start, **OPTIONS)


def listed(**options) -> dict[str, float]:
    page = fleet_inefficient(hours=24, now=NOW, threshold=85, limit=500, offset=0, **options)
    return {item.vehicle_id: item.efficiency_pct for item in page.items}


class TestSimulatedFleet:
    def test_the_faulty_charger_and_the_faulty_vehicle_are_named(self, simulated):
        attribution = fleet_attribution(days=1, now=NOW, threshold=85)

        named = {(s.verdict, s.meter_id or s.vehicle_id) for s in attribution.suspects}
        assert (AttributionVerdict.CHARGER_SUSPECTED, simulated.faulty_charger) in named
        assert (AttributionVerdict.VEHICLE_SUSPECTED, simulated.two_meter_vehicle) in named
        # Nobody else is blamed without cause: a suspected vehicle is a faulty one.
        for verdict, subject in named:
            if verdict == AttributionVerdict.VEHICLE_SUSPECTED:
                assert subject in simulated.faulty
            else:
                assert subject == simulated.faulty_charger
        charger = next(s for s in attribution.suspects if s.meter_id == simulated.faulty_charger)
        assert [p.vehicle_id for p in charger.pairings] == list(simulated.faulty_charger_vehicles)

    def test_parked_vehicles_are_idle_and_leave_the_inefficient_list(self, simulated):
        summary = fleet_summary(hours=24, now=NOW, threshold=85)
        # Without a minimum charge worth the name, the old rule: parked vehicles listed at 0 %.
        before = listed(min_charge_kwh=0.001)
        after = listed()

        assert simulated.idle and summary.by_status["IDLE"] >= len(simulated.idle)
        assert all(before[vehicle] == 0.0 for vehicle in simulated.idle)
        assert not set(after) & simulated.idle
        assert set(after) < set(before)
        for vehicle in simulated.idle:
            answer = vehicle_performance(
                vehicle_id=vehicle, start=NOW - timedelta(hours=24), end=NOW, threshold=85
            )
            assert (answer.status, answer.efficiency_pct) == ("IDLE", None)
            assert 0 < answer.ac_kwh < 0.01 and answer.dc_kwh == 0

    def test_the_anomaly_and_the_faulty_vehicles_keep_their_verdicts(self, simulated):
        after = listed()
        anomaly = vehicle_performance(
            vehicle_id=simulated.anomaly_vehicle, start=at(0), end=NOW, threshold=85
        )

        assert anomaly.status == "ANOMALY"
        assert simulated.two_meter_vehicle in after
        assert set(simulated.faulty_charger_vehicles) <= set(after)

    def test_the_silent_meter_stops_half_an_hour_before_the_end(self, simulated):
        last = (
            MeterReading.objects.filter(device__meter_id=simulated.silent_meter)
            .order_by("-recorded_at")
            .values_list("recorded_at", flat=True)
            .first()
        )

        assert last == simulated.timestamp(simulated.silent_from_step - 1)
        assert at(12) - last > timedelta(minutes=15)
