from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.selectors import (
    PerformanceStatus,
    VehicleNotFound,
    VehiclePerformance,
    fleet_inefficient,
    fleet_summary,
    fleet_window,
    split_by_hours,
    vehicle_performance,
)
from analytics.tests.conftest import NOW
from fleet.models import MeterAssignment, Vehicle
from fleet.services import meter_assign
from fleet.tests.factories import MeterFactory, VehicleFactory
from telemetry.models import MeterReading, VehicleReading
from telemetry.tests.factories import every_minute, ingest, meter_payload, vehicle_payload

T = datetime(2026, 2, 10, tzinfo=UTC)  # midnight of the test day
pytestmark = pytest.mark.django_db


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return T + timedelta(hours=hour, minutes=minute, seconds=second)


def meter_kwh(i: int) -> float:
    return round(0.1 + (i % 7) * 0.013, 3)


def vehicle_kwh(i: int) -> float:
    return round(0.08 + (i % 5) * 0.011, 3)


def charge(
    vehicle_id: str,
    meter_ids: list[str],
    *,
    start: datetime,
    minutes: int,
    dc_factor: float = 1.0,
    ac: bool = True,
    dc: bool = True,
) -> None:
    """A reading a minute from each meter in `meter_ids` and from the vehicle."""
    payloads = []
    for i, moment in enumerate(every_minute(start, minutes)):
        if ac:
            payloads += [meter_payload(m, at=moment, kwh=meter_kwh(i)) for m in meter_ids]
        if dc:
            payloads.append(
                vehicle_payload(
                    vehicle_id,
                    at=moment,
                    kwh=round(vehicle_kwh(i) * dc_factor, 4),
                    temp=30 + i % 9,
                )
            )
    ingest(payloads, now=NOW)


def assign(vehicle_id: str, meter_id: str, valid_from: datetime) -> None:
    meter_assign(
        vehicle=VehicleFactory(vehicle_id=vehicle_id),
        meter=MeterFactory(meter_id=meter_id),
        valid_from=valid_from,
    )


# An independent computation of a vehicle's figures: raw rows summed in Python.


@dataclass(frozen=True)
class BruteForce:
    ac_kwh: float
    dc_kwh: float
    meter_readings: int
    vehicle_readings: int
    temp_sum: float
    meter_ids: tuple[str, ...]


def brute_force(*, vehicle_id: str, start: datetime, end: datetime) -> BruteForce:
    """Every raw reading, no rollup: AC of each assigned meter only inside its period."""
    vehicle = Vehicle.objects.get(vehicle_id=vehicle_id)
    ac: list[float] = []
    meter_ids: list[str] = []
    for assignment in MeterAssignment.objects.filter(vehicle=vehicle).order_by("valid_from"):
        lo = max(assignment.valid_from, start)
        hi = min(assignment.valid_to or end, end)
        if lo >= hi:
            continue
        meter_ids.append(assignment.meter.meter_id)
        ac += MeterReading.objects.filter(
            device=assignment.meter, recorded_at__gte=lo, recorded_at__lt=hi
        ).values_list("energy_kwh", flat=True)
    dc = list(
        VehicleReading.objects.filter(
            device=vehicle, recorded_at__gte=start, recorded_at__lt=end
        ).values_list("energy_kwh", "battery_temp_c")
    )
    return BruteForce(
        ac_kwh=sum(ac),
        dc_kwh=sum(kwh for kwh, _ in dc),
        meter_readings=len(ac),
        vehicle_readings=len(dc),
        temp_sum=sum(temp for _, temp in dc),
        meter_ids=tuple(dict.fromkeys(meter_ids)),
    )


class TestSplitByHours:
    def test_a_window_inside_one_hour_is_one_raw_part(self):
        assert split_by_hours(at(10, 5), at(10, 50)) == [("raw", at(10, 5), at(10, 50))]

    def test_a_window_across_hours_reads_whole_hours_from_the_rollups(self):
        assert split_by_hours(at(9, 30), at(12, 15)) == [
            ("raw", at(9, 30), at(10)),
            ("hourly", at(10), at(12)),
            ("raw", at(12), at(12, 15)),
        ]

    def test_hour_aligned_ends_need_no_raw_part(self):
        assert split_by_hours(at(9), at(12)) == [("hourly", at(9), at(12))]

    def test_a_window_without_a_whole_hour_is_one_raw_part(self):
        assert split_by_hours(at(9, 30), at(10, 15)) == [("raw", at(9, 30), at(10, 15))]

    def test_an_empty_window_has_no_parts(self):
        assert split_by_hours(at(9), at(9)) == []


class TestVehiclePerformance:
    def test_figures_equal_the_raw_readings_of_the_window(self):
        assign("V-1", "M-1", at(0))
        charge("V-1", ["M-1"], start=at(9, 7), minutes=170)
        start, end = at(9, 30, 30), at(11, 20, 15)

        result = vehicle_performance(vehicle_id="V-1", start=start, end=end, threshold=85)

        raw = brute_force(vehicle_id="V-1", start=start, end=end)
        efficiency = 100 * raw.dc_kwh / raw.ac_kwh
        assert result == VehiclePerformance(
            vehicle_id="V-1",
            start=start,
            end=end,
            meter_ids=("M-1",),
            ac_kwh=round(raw.ac_kwh, 4),
            dc_kwh=round(raw.dc_kwh, 4),
            efficiency_pct=round(efficiency, 2),
            avg_battery_temp_c=round(raw.temp_sum / raw.vehicle_readings, 2),
            vehicle_reading_count=110,
            meter_reading_count=110,
            status=PerformanceStatus.FAULT_DETECTED,
        )

    def test_the_whole_answer_takes_two_statements(self):
        assign("V-1", "M-1", at(0))
        charge("V-1", ["M-1"], start=at(9, 7), minutes=170)

        with CaptureQueriesContext(connection) as queries:
            vehicle_performance(vehicle_id="V-1", start=at(9, 30), end=at(11, 20), threshold=85)

        assert len(queries) == 2

    def test_a_meter_counts_only_inside_its_assignment_when_reassigned_mid_hour(self):
        assign("V-1", "M-1", at(0))
        assign("V-1", "M-2", at(10, 25))  # closes M-1's period at 10:25
        charge("V-1", ["M-1", "M-2"], start=at(9), minutes=180)
        start, end = at(9, 10), at(11, 50)

        result = vehicle_performance(vehicle_id="V-1", start=start, end=end, threshold=85)

        m1 = sum(meter_kwh(i) for i in range(10, 85))  # 09:10 ≤ t < 10:25
        m2 = sum(meter_kwh(i) for i in range(85, 170))  # 10:25 ≤ t < 11:50
        assert result.meter_ids == ("M-1", "M-2")
        assert result.meter_reading_count == 75 + 85
        assert result.ac_kwh == round(m1 + m2, 4)
        assert result.ac_kwh == round(brute_force(vehicle_id="V-1", start=start, end=end).ac_kwh, 4)

    def test_a_meter_moved_to_another_vehicle_no_longer_counts_for_the_first(self):
        assign("V-1", "M-1", at(0))
        assign("V-2", "M-1", at(10, 40))  # the meter moves: V-1's period ends at 10:40
        charge("V-1", ["M-1"], start=at(10), minutes=60)

        result = vehicle_performance(vehicle_id="V-1", start=at(10), end=at(11), threshold=85)

        assert result.meter_reading_count == 40
        assert result.ac_kwh == round(sum(meter_kwh(i) for i in range(40)), 4)

    def test_no_assigned_meter_is_insufficient_data(self):
        VehicleFactory(vehicle_id="V-1")
        charge("V-1", [], start=at(10), minutes=30)

        result = vehicle_performance(vehicle_id="V-1", start=at(10), end=at(11), threshold=85)

        assert (result.status, result.efficiency_pct, result.meter_ids) == (
            PerformanceStatus.INSUFFICIENT_DATA,
            None,
            (),
        )
        assert result.dc_kwh == round(sum(vehicle_kwh(i) for i in range(30)), 4)

    def test_a_meter_without_readings_in_the_window_is_insufficient_data(self):
        assign("V-1", "M-1", at(0))
        charge("V-1", ["M-1"], start=at(10), minutes=30, ac=False)

        result = vehicle_performance(vehicle_id="V-1", start=at(10), end=at(11), threshold=85)

        assert result.status == PerformanceStatus.INSUFFICIENT_DATA
        assert (result.meter_ids, result.ac_kwh, result.efficiency_pct) == (("M-1",), 0.0, None)

    def test_no_vehicle_reading_is_insufficient_data(self):
        assign("V-1", "M-1", at(0))
        charge("V-1", ["M-1"], start=at(10), minutes=30, dc=False)

        result = vehicle_performance(vehicle_id="V-1", start=at(10), end=at(11), threshold=85)

        assert result.status == PerformanceStatus.INSUFFICIENT_DATA
        assert (result.avg_battery_temp_c, result.vehicle_reading_count) == (None, 0)

    def test_more_dc_than_ac_is_an_anomaly(self):
        assign("V-1", "M-1", at(0))
        charge("V-1", ["M-1"], start=at(10), minutes=30, dc_factor=2.0)

        result = vehicle_performance(vehicle_id="V-1", start=at(10), end=at(11), threshold=85)

        assert result.status == PerformanceStatus.ANOMALY
        assert result.efficiency_pct > 100

    @pytest.mark.parametrize(
        ("threshold", "status"),
        [(80.0, PerformanceStatus.OK), (90.0, PerformanceStatus.FAULT_DETECTED)],
    )
    def test_efficiency_below_the_threshold_is_a_fault(self, threshold, status):
        assign("V-1", "M-1", at(0))
        payloads = [meter_payload("M-1", at=at(10, i), kwh=1.0) for i in range(10)]
        payloads += [vehicle_payload("V-1", at=at(10, i), kwh=0.85) for i in range(10)]
        ingest(payloads, now=NOW)

        result = vehicle_performance(
            vehicle_id="V-1", start=at(10), end=at(11), threshold=threshold
        )

        assert (result.efficiency_pct, result.status) == (85.0, status)

    def test_a_replayed_reading_is_counted_once(self):
        assign("V-1", "M-1", at(0))
        payloads = [
            meter_payload("M-1", at=at(10, 5), kwh=2.0),
            vehicle_payload("V-1", at=at(10, 5), kwh=1.8),
        ]
        ingest(payloads, now=NOW)
        ingest(payloads, now=NOW)
        ingest([meter_payload("M-1", at=at(10, 5), kwh=9.0)], now=NOW)  # same instant, new value

        result = vehicle_performance(vehicle_id="V-1", start=at(9), end=at(12), threshold=85)

        assert (result.ac_kwh, result.dc_kwh, result.meter_reading_count) == (2.0, 1.8, 1)
        assert result.vehicle_reading_count == 1

    def test_a_late_reading_into_a_closed_hour_updates_the_answer(self):
        assign("V-1", "M-1", at(0))
        charge("V-1", ["M-1"], start=at(9), minutes=120)
        before = vehicle_performance(vehicle_id="V-1", start=at(8), end=at(12), threshold=85)

        ingest([meter_payload("M-1", at=at(9, 30, 30), kwh=5.0)], now=NOW)  # hour 09 is closed
        after = vehicle_performance(vehicle_id="V-1", start=at(8), end=at(12), threshold=85)

        assert after.ac_kwh == round(before.ac_kwh + 5.0, 4)
        assert after.meter_reading_count == before.meter_reading_count + 1

    def test_an_unknown_vehicle_raises(self):
        with pytest.raises(VehicleNotFound):
            vehicle_performance(vehicle_id="V-404", start=at(9), end=at(10), threshold=85)


minutes_of_day = st.integers(min_value=0, max_value=24 * 60)


class TestVehiclePerformanceProperty:
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        first=minutes_of_day,
        length=st.integers(min_value=1, max_value=24 * 60),
        seconds=st.integers(min_value=0, max_value=59),
    )
    def test_the_rollup_answer_equals_the_raw_computation_for_any_window(
        self, _reassigned_fleet, first, length, seconds
    ):
        start = at(6) + timedelta(minutes=first, seconds=seconds)
        end = start + timedelta(minutes=length)

        result = vehicle_performance(vehicle_id="V-1", start=start, end=end, threshold=85)

        raw = brute_force(vehicle_id="V-1", start=start, end=end)
        assert result.meter_ids == raw.meter_ids
        assert (result.meter_reading_count, result.vehicle_reading_count) == (
            raw.meter_readings,
            raw.vehicle_readings,
        )
        assert result.ac_kwh == pytest.approx(raw.ac_kwh, abs=1e-4)
        assert result.dc_kwh == pytest.approx(raw.dc_kwh, abs=1e-4)

    @pytest.fixture
    def _reassigned_fleet(self):
        """Readings every 7 minutes over 08:00–20:00; M-1 until 13:17, then M-2."""
        assign("V-1", "M-1", at(0))
        assign("V-1", "M-2", at(13, 17))
        start = at(8)
        payloads = []
        for i in range(0, 12 * 60, 7):
            moment = start + timedelta(minutes=i, seconds=13)
            payloads += [
                meter_payload("M-1", at=moment, kwh=meter_kwh(i)),
                meter_payload("M-2", at=moment, kwh=meter_kwh(i + 3)),
                vehicle_payload("V-1", at=moment, kwh=vehicle_kwh(i)),
            ]
        ingest(payloads, now=at(21))


class TestFleetWindow:
    def test_the_window_is_whole_hours_ending_now(self):
        assert fleet_window(hours=24, now=NOW) == (at(-11), NOW)

    def test_one_hour_is_the_current_hour(self):
        assert fleet_window(hours=1, now=NOW) == (at(12), NOW)


class TestFleetInefficient:
    @pytest.fixture
    def fleet(self, clock):
        """V-OK 90 %, V-LOW 70 %, V-WORST 50 %, V-ANOMALY 120 %, V-NODATA without AC."""
        efficiency = {"V-OK": 0.9, "V-LOW": 0.7, "V-WORST": 0.5, "V-ANOMALY": 1.2}
        payloads = []
        for n, (vehicle_id, share) in enumerate(efficiency.items()):
            assign(vehicle_id, f"M-{n}", at(0))
            for i in range(6):
                moment = at(10, 10 * i)
                payloads += [
                    meter_payload(f"M-{n}", at=moment, kwh=1.0),
                    vehicle_payload(vehicle_id, at=moment, kwh=share, temp=30 + i),
                ]
        payloads.append(vehicle_payload("V-NODATA", at=at(10), kwh=1.0))
        ingest(payloads, now=NOW)

    def test_vehicles_below_the_threshold_come_worst_first_with_their_figures(self, fleet):
        page = fleet_inefficient(hours=24, now=NOW, threshold=85, limit=50, offset=0)

        assert (page.start, page.end, page.total) == (at(-11), NOW, 2)
        assert page.items == tuple(
            VehiclePerformance(
                vehicle_id=vehicle_id,
                start=at(-11),
                end=NOW,
                meter_ids=(meter_id,),
                ac_kwh=6.0,
                dc_kwh=dc_kwh,
                efficiency_pct=efficiency_pct,
                avg_battery_temp_c=32.5,
                vehicle_reading_count=6,
                meter_reading_count=6,
                status=PerformanceStatus.FAULT_DETECTED,
            )
            for vehicle_id, meter_id, dc_kwh, efficiency_pct in (
                ("V-WORST", "M-2", 3.0, 50.0),
                ("V-LOW", "M-1", 4.2, 70.0),
            )
        )

    def test_a_page_beyond_the_end_still_reports_the_count(self, fleet):
        page = fleet_inefficient(hours=24, now=NOW, threshold=85, limit=1, offset=5)

        assert (page.total, page.items) == (2, ())

    def test_a_limit_cuts_the_page(self, fleet):
        page = fleet_inefficient(hours=24, now=NOW, threshold=85, limit=1, offset=1)

        assert (page.total, [item.vehicle_id for item in page.items]) == (2, ["V-LOW"])

    def test_the_list_is_one_statement(self, fleet):
        with CaptureQueriesContext(connection) as queries:
            fleet_inefficient(hours=24, now=NOW, threshold=85, limit=50, offset=0)

        assert len(queries) == 1

    def test_hours_before_the_window_do_not_count(self, fleet):
        page = fleet_inefficient(hours=2, now=NOW, threshold=85, limit=50, offset=0)

        assert (page.start, page.total) == (at(11), 0)

    def test_a_reassignment_mid_hour_splits_that_hour_exactly(self, clock):
        assign("V-A", "M-1", at(0))
        assign("V-B", "M-1", at(10, 30))  # M-1 moves from V-A to V-B at 10:30
        payloads = []
        for i in range(90):  # 10:00–11:29
            payloads.append(meter_payload("M-1", at=at(10, i), kwh=1.0))
            payloads += [vehicle_payload(v, at=at(10, i), kwh=0.5) for v in ("V-A", "V-B")]
        ingest(payloads, now=NOW)

        page = fleet_inefficient(hours=24, now=NOW, threshold=85, limit=50, offset=0)
        summary = fleet_summary(hours=24, now=NOW, threshold=85)

        # M-1's 10:00–10:29 readings go to V-A (30 kWh AC < 45 DC: ANOMALY), the rest to V-B
        # (60 kWh AC, 45 DC: 75 %), as the per-vehicle endpoint says.
        assert [(i.vehicle_id, i.ac_kwh, i.dc_kwh, i.meter_ids) for i in page.items] == [
            ("V-B", 60.0, 45.0, ("M-1",))
        ]
        assert (summary.ac_kwh, summary.by_status["ANOMALY"]) == (90.0, 1)
        exact = vehicle_performance(vehicle_id="V-A", start=at(0), end=NOW, threshold=85)
        assert (exact.ac_kwh, exact.status) == (30.0, "ANOMALY")


class TestFleetSummary:
    def test_totals_and_counts_by_status(self, clock):
        VehicleFactory(vehicle_id="V-SILENT")
        assign("V-OK", "M-1", at(0))
        assign("V-LOW", "M-2", at(0))
        payloads = [
            meter_payload("M-1", at=at(11), kwh=10.0),
            vehicle_payload("V-OK", at=at(11), kwh=9.0),
            meter_payload("M-2", at=at(12, 10), kwh=10.0),  # the current hour counts
            vehicle_payload("V-LOW", at=at(12, 10), kwh=5.0),
            meter_payload("M-9", at=at(11), kwh=100.0),  # not assigned: not a vehicle's AC
        ]
        ingest(payloads, now=NOW)

        summary = fleet_summary(hours=24, now=NOW, threshold=85)

        assert summary.__dict__ == {
            "start": at(-11),
            "end": NOW,
            "vehicle_count": 3,
            "ac_kwh": 20.0,
            "dc_kwh": 14.0,
            "efficiency_pct": 70.0,
            "by_status": {
                "OK": 1,
                "FAULT_DETECTED": 1,
                "ANOMALY": 0,
                "IDLE": 0,
                "INSUFFICIENT_DATA": 1,
            },
        }

    def test_an_empty_fleet_has_no_efficiency(self, clock):
        summary = fleet_summary(hours=24, now=NOW, threshold=85)

        assert (summary.vehicle_count, summary.ac_kwh, summary.efficiency_pct) == (0, 0.0, None)


class AskedRouter:
    """A router that sends every read to `default` and remembers what it was asked about."""

    def __init__(self):
        self.asked: list[type] = []

    def db_for_read(self, model, **hints):
        self.asked.append(model)
        return "default"


class TestOneDatabasePerAnswer:
    @pytest.mark.parametrize(
        ("answer", "statements"),
        [
            (
                lambda: vehicle_performance(
                    vehicle_id="V-1", start=at(9, 30), end=NOW, threshold=85
                ),
                2,
            ),
            (lambda: fleet_summary(hours=24, now=NOW, threshold=85), 1),
            (
                lambda: fleet_inefficient(hours=24, now=NOW, threshold=85, limit=50, offset=0),
                1,
            ),
        ],
        ids=["vehicle", "fleet summary", "fleet list"],
    )
    def test_the_router_is_asked_once_and_every_statement_runs_there(
        self, clock, answer, statements
    ):
        assign("V-1", "M-1", at(0))
        charge("V-1", ["M-1"], start=at(9, 7), minutes=90)
        router = AskedRouter()

        with (
            override_settings(DATABASE_ROUTERS=[router]),
            CaptureQueriesContext(connection) as queries,  # `default`, where the router sends
        ):
            answer()

        assert (len(router.asked), len(queries)) == (1, statements)
