"""Attribution: a charger low with two vehicles, a vehicle low on two meters (both backends)."""

import pytest

from analytics.selectors import (
    AttributionVerdict,
    Pairing,
    attribution_for_vehicle,
    fleet_attribution,
    vehicle_performance,
)
from analytics.tests.conftest import NOW
from analytics.tests.test_selectors import assign, at, charge
from telemetry.tests.factories import every_minute, ingest, meter_payload, vehicle_payload

pytestmark = pytest.mark.django_db

LOW, GOOD = 1.0, 1.25  # dc_factor of charge(): about 73 % and 92 %


@pytest.fixture
def depot(clock):
    """M-C (faulty charger) serves V-1 then V-2; V-F (faulty) is charged on M-X then M-Y.

    V-H charges well on M-X after V-F; V-I is parked on M-I (standby draw, no DC); V-OK is
    healthy on M-OK.
    """
    assign("V-1", "M-C", at(0))
    assign("V-2", "M-C", at(6))  # M-C moves from V-1 to V-2
    charge("V-1", ["M-C"], start=at(2), minutes=60, dc_factor=LOW)
    charge("V-2", ["M-C"], start=at(7), minutes=60, dc_factor=LOW)
    assign("V-F", "M-X", at(0))
    assign("V-F", "M-Y", at(3, 30))  # mid-hour: raw edges on both sides
    assign("V-H", "M-X", at(4))
    charge("V-F", ["M-X"], start=at(2, 40), minutes=50, dc_factor=LOW)
    charge("V-F", ["M-Y"], start=at(3, 30), minutes=60, dc_factor=LOW)
    charge("V-H", ["M-X"], start=at(5), minutes=60, dc_factor=GOOD)
    assign("V-I", "M-I", at(0))
    ingest(
        [meter_payload("M-I", at=moment, kwh=0.0001) for moment in every_minute(at(8), 30)]
        + [vehicle_payload("V-I", at=moment, kwh=0.0) for moment in every_minute(at(8), 30)],
        now=NOW,
    )
    assign("V-OK", "M-OK", at(0))
    charge("V-OK", ["M-OK"], start=at(9), minutes=60, dc_factor=GOOD)


def suspects_of(attribution) -> list[tuple]:
    return [
        (
            s.verdict,
            s.meter_id,
            s.vehicle_id,
            [(p.vehicle_id, p.meter_id, p.status) for p in s.pairings],
        )
        for s in attribution.suspects
    ]


class TestFleetAttribution:
    def test_the_charger_and_the_vehicle_are_named_with_their_evidence(self, depot):
        attribution = fleet_attribution(days=1, now=NOW, threshold=85)

        assert suspects_of(attribution) == [
            (
                AttributionVerdict.CHARGER_SUSPECTED,
                "M-C",
                None,
                [("V-1", "M-C", "FAULT_DETECTED"), ("V-2", "M-C", "FAULT_DETECTED")],
            ),
            (
                AttributionVerdict.VEHICLE_SUSPECTED,
                None,
                "V-F",
                [("V-F", "M-X", "FAULT_DETECTED"), ("V-F", "M-Y", "FAULT_DETECTED")],
            ),
        ]

    def test_a_pairing_s_figures_are_exact_at_the_assignment_edge(self, depot):
        attribution = fleet_attribution(days=1, now=NOW, threshold=85)
        (on_x, on_y) = attribution.suspects[1].pairings

        # V-F was on M-X until 03:30 and on M-Y after: the per-vehicle answer of each period.
        before = vehicle_performance(vehicle_id="V-F", start=at(0), end=at(3, 30), threshold=85)
        after = vehicle_performance(vehicle_id="V-F", start=at(3, 30), end=NOW, threshold=85)
        assert on_x == Pairing(
            vehicle_id="V-F",
            meter_id="M-X",
            ac_kwh=before.ac_kwh,
            dc_kwh=before.dc_kwh,
            efficiency_pct=before.efficiency_pct,
            meter_reading_count=50,
            vehicle_reading_count=50,
            status="FAULT_DETECTED",
        )
        assert (on_y.ac_kwh, on_y.dc_kwh, on_y.meter_reading_count) == (
            after.ac_kwh,
            after.dc_kwh,
            60,
        )

    def test_a_threshold_below_every_pairing_blames_nobody(self, depot):
        assert fleet_attribution(days=1, now=NOW, threshold=50).suspects == ()

    def test_a_single_low_pairing_blames_nobody(self, depot):
        # With a minimum charge under its standby draw, V-I on M-I is low (0 %), but alone.
        attribution = fleet_attribution(days=1, now=NOW, threshold=85, min_charge_kwh=0.001)

        assert [s.meter_id or s.vehicle_id for s in attribution.suspects] == ["M-C", "V-F"]

    def test_the_attribution_is_one_statement(self, depot, django_assert_num_queries):
        with django_assert_num_queries(1):
            fleet_attribution(days=7, now=NOW, threshold=85)


class TestAttributionForVehicle:
    @pytest.mark.parametrize(
        "vehicle_id, named",
        [("V-1", ["M-C"]), ("V-2", ["M-C"]), ("V-F", ["V-F"]), ("V-H", []), ("V-I", [])],
    )
    def test_a_vehicle_points_at_the_suspect_it_was_low_with(self, depot, vehicle_id, named):
        suspects = attribution_for_vehicle(vehicle_id=vehicle_id, now=NOW, days=1, threshold=85)

        assert [s.meter_id or s.vehicle_id for s in suspects] == named
