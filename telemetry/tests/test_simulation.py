import itertools
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fleet.models import MeterAssignment
from telemetry.models import MeterReading, VehicleReading
from telemetry.simulation import (
    METER_KIND,
    default_start,
    fleet_plan,
    fleet_readings,
)

START = datetime(2026, 2, 10, 0, 0, tzinfo=UTC)


def simulate(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("simulate_fleet", *[str(arg) for arg in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def plan(**overrides):
    options = dict(
        vehicles=40, hours=6, interval_seconds=60, fault_share=0.25, seed=11, start=START
    )
    return fleet_plan(**{**options, **overrides})


class TestFleetPlan:
    def test_the_faulty_share_is_drawn_from_the_seed(self):
        first, second = plan(), plan()

        assert first.faulty == second.faulty
        assert len(first.faulty) == 10 + 1  # the share, and the scenario's faulty vehicle
        assert plan(seed=12).faulty != first.faulty

    def test_a_few_vehicles_swap_meters_half_way(self):
        fleet = plan()

        swaps = [a for a in fleet.assignments if a.valid_from != START]

        assert len(swaps) == 2 + 4  # one pair at random, two of the scenarios
        assert {a.valid_from for a in swaps} == {START + timedelta(hours=3)}
        assert all(a.vehicle_id.split("-")[-1] != a.meter_id.split("-")[-1] for a in swaps)

    def test_the_default_start_is_aligned_to_the_interval(self):
        now = datetime(2026, 2, 10, 12, 34, 56, tzinfo=UTC)

        start = default_start(hours=6, interval_seconds=300, now=now)

        assert start == datetime(2026, 2, 10, 6, 30, tzinfo=UTC)


class TestFleetReadings:
    def test_faulty_vehicles_charge_below_85_percent_and_healthy_ones_above(self):
        fleet = plan(hours=12, idle_share=0.2)
        dc: dict[int, float] = defaultdict(float)
        ac_by_meter_step: dict[tuple[str, int], float] = {}
        seen: set = set()
        for batch in fleet_readings(fleet):
            for reading in batch:
                key = reading[:3]
                if key in seen:  # a duplicate copy
                    continue
                seen.add(key)
                if reading[0] == METER_KIND:
                    ac_by_meter_step[(reading[1], reading[2])] = reading[3]
                else:
                    dc[fleet.vehicle_ids.index(reading[1])] += reading[4]
        ac: dict[int, float] = defaultdict(float)
        for index in range(len(fleet.vehicle_ids)):
            for step in range(fleet.steps):
                meter = fleet.meter_ids[fleet.meter_of(index, step)]
                ac[index] += ac_by_meter_step.get((meter, step), 0.0)  # silent meter
        efficiency = {
            fleet.vehicle_ids[i]: 100 * dc[i] / ac[i] for i in range(len(fleet.vehicle_ids))
        }

        faulty = [efficiency[v] for v in fleet.faulty]
        plain = fleet.faulty | fleet.scenario_vehicles | fleet.idle
        # (A vehicle may stay unplugged all along by chance, like a parked one.)
        healthy = [e for v, e in efficiency.items() if v not in plain and e > 0]
        charger = [efficiency[v] for v in fleet.faulty_charger_vehicles]
        assert faulty and max(faulty) < 85
        assert min(healthy) > 86
        # Half of their time on the faulty charger (-20 %): below the healthy range.
        assert max(charger) < 86
        assert efficiency[fleet.anomaly_vehicle] > 100
        parked = [fleet.vehicle_ids.index(v) for v in fleet.idle]
        assert len(parked) == 8
        assert all(dc[i] == 0 and ac[i] < 0.01 for i in parked)  # standby draw only

    def test_idle_intervals_draw_next_to_nothing_and_values_stay_in_bounds(self):
        readings = [r for batch in fleet_readings(plan()) for r in batch]

        vehicles = [r for r in readings if r[0] != METER_KIND]
        meters = [r for r in readings if r[0] == METER_KIND]
        idle = [r for r in vehicles if r[4] == 0.0]
        assert len(idle) > len(vehicles) / 5
        assert all(0 <= r[3] <= 100 and -60 <= r[5] <= 150 and r[4] >= 0 for r in vehicles)
        assert all(r[3] >= 0 and 0 <= r[4] <= 2000 for r in meters)
        assert min(r[3] for r in meters) < 0.001

    def test_some_readings_arrive_late_and_some_twice(self):
        fleet = plan(vehicles=100)
        arrivals = [r for batch in fleet_readings(fleet) for r in batch]

        keys = [r[:3] for r in arrivals]
        late = sum(1 for a, b in itertools.pairwise(keys) if b[2] < a[2] - 1)
        assert len(arrivals) > fleet.reading_count
        assert len(set(keys)) == fleet.reading_count
        assert late > 0


class TestSimulateFleetCommand:
    def test_the_same_seed_writes_the_same_file_twice(self, tmp_path):
        args = ["--vehicles", 20, "--hours", 2, "--seed", 5, "--start", "2026-02-10T00:00:00Z"]
        simulate(*args, "--out", tmp_path / "a.ndjson")
        simulate(*args, "--out", tmp_path / "b.ndjson")
        simulate(*args[:5], 6, *args[6:], "--out", tmp_path / "c.ndjson")

        first = (tmp_path / "a.ndjson").read_bytes()
        assert first == (tmp_path / "b.ndjson").read_bytes()
        assert first != (tmp_path / "c.ndjson").read_bytes()
        assert (tmp_path / "a.mappings.csv").read_text().splitlines()[:2] == [
            "vehicleId,meterId,validFrom",
            "SIM-V-00001,SIM-M-00001,2026-02-10T00:00:00Z",
        ]

    def test_a_csv_gz_file_can_be_written(self, tmp_path):
        out, _ = simulate(
            "--vehicles", 3, "--hours", 1, "--start", "2026-02-10T00:00:00Z",
            "--out", tmp_path / "fleet.csv.gz",
        )  # fmt: skip

        assert "rows written" in out
        assert (tmp_path / "fleet.csv.gz").read_bytes()[:2] == b"\x1f\x8b"
        assert not list(tmp_path.glob("*.partial"))

    def test_a_start_without_offset_is_an_operator_error(self):
        with pytest.raises(CommandError, match="needs a UTC offset"):
            simulate("--vehicles", 1, "--hours", 1, "--start", "2026-02-10T00:00:00")

    def test_a_start_that_puts_readings_in_the_future_is_refused(self):
        with pytest.raises(CommandError, match="in the future"):
            simulate("--vehicles", 1, "--hours", 1, "--start", "2999-01-01T00:00:00Z")


@pytest.mark.django_db
class TestSimulateFleetIntoTheDatabase:
    def test_it_maps_the_fleet_and_stores_every_reading_once(self):
        args = ["--vehicles", 6, "--hours", 2, "--seed", 3, "--start", "2026-02-10T00:00:00Z"]

        out, _ = simulate(*args, "--chunk-size", 500)

        assert MeterReading.objects.count() == VehicleReading.objects.count() == 6 * 120
        assert MeterAssignment.objects.count() == 8
        assert MeterAssignment.objects.filter(valid_to__isnull=False).count() == 2
        assert MeterAssignment.objects.open().count() == 6
        assert "mappings assigned 8, unchanged 0, failed 0" in out

    def test_running_it_again_stores_nothing_new(self, telemetry_state):
        args = ["--vehicles", 4, "--hours", 1, "--seed", 3, "--start", "2026-02-10T00:00:00Z"]
        simulate(*args)
        before = telemetry_state.snapshot()

        out, _ = simulate(*args)

        assert "mappings assigned 0, unchanged 6, failed 0" in out
        assert "stored 0" in out
        assert telemetry_state.snapshot() == before

    def test_the_generated_file_passes_the_api_validation(self, tmp_path):
        path = tmp_path / "fleet.ndjson"
        simulate("--vehicles", 5, "--hours", 1, "--start", "2026-02-10T00:00:00Z", "--out", path)
        out = StringIO()

        call_command("import_telemetry", str(path), stdout=out, stderr=StringIO())

        assert "rejected 0" in out.getvalue()
        assert json.loads(path.read_text().splitlines()[0])["timestamp"] == "2026-02-10T00:00:00Z"
