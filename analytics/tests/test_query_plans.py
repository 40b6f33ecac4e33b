"""EXPLAIN the statements the selectors issue, on enough rows that the planner has a choice.

200 vehicles and 200 meters, a reading every 5 minutes over four days of daily partitions
(2026-02-07 … 2026-02-10: 230,400 rows per stream), their hourly rollups, and 26 older days of
rollups (history that retention has dropped; rollups are kept), all inserted set-based, then
ANALYZE. The plans must read history only through the (device, recorded_at) keys of the
partitions of the window, rollups through their keys, and never sequentially.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.selectors import (
    fleet_attribution,
    fleet_inefficient,
    fleet_series,
    fleet_summary,
    vehicle_performance,
)
from fleet.models import Meter, Vehicle
from telemetry.partitions import partitions_ensure
from telemetry.selectors import vehicle_readings

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db]

DEVICES = 200
FIRST_DAY = datetime(2026, 2, 7, tzinfo=UTC)
DAYS = 4
OLDER_ROLLUP_DAYS = 26
NOW = datetime(2026, 2, 10, 18, 40, tzinfo=UTC)

HISTORY = ("telemetry_meterreading", "telemetry_vehiclereading")
ROLLUPS = ("telemetry_meterhourly", "telemetry_vehiclehourly")
INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan"}


@pytest.fixture
def loaded():
    Vehicle.objects.bulk_create(Vehicle(vehicle_id=f"V-{n:04d}") for n in range(DEVICES))
    Meter.objects.bulk_create(Meter(meter_id=f"M-{n:04d}") for n in range(DEVICES))
    partitions_ensure(days={(FIRST_DAY + timedelta(days=d)).date() for d in range(DAYS)})
    start, end = FIRST_DAY, FIRST_DAY + timedelta(days=DAYS)
    older = FIRST_DAY - timedelta(days=OLDER_ROLLUP_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO fleet_meterassignment (vehicle_id, meter_id, valid_from, created_at)
            SELECT v.id, m.id, %s, now()
            FROM fleet_vehicle v
            JOIN fleet_meter m ON substr(m.meter_id, 3) = substr(v.vehicle_id, 3)
            """,
            [older],
        )
        cursor.execute(
            """
            INSERT INTO telemetry_meterreading (meter_id, recorded_at, energy_kwh, voltage_v)
            SELECT m.id, t, 0.1 + (m.id %% 7) * 0.01, 230
            FROM fleet_meter m, generate_series(%s::timestamptz, %s::timestamptz - interval '1 s',
                                                interval '5 min') t
            """,
            [start, end],
        )
        cursor.execute(
            """
            INSERT INTO telemetry_vehiclereading
                (vehicle_id, recorded_at, energy_kwh, soc_pct, battery_temp_c)
            SELECT v.id, t, 0.08 + (v.id %% 5) * 0.01, 50, 30
            FROM fleet_vehicle v, generate_series(%s::timestamptz, %s::timestamptz - interval '1 s',
                                                  interval '5 min') t
            """,
            [start, end],
        )
        for history, rollup, device, extra, extra_sum in (
            ("telemetry_meterreading", "telemetry_meterhourly", "meter_id", "", ""),
            (
                "telemetry_vehiclereading",
                "telemetry_vehiclehourly",
                "vehicle_id",
                ", battery_temp_sum_c",
                ", sum(battery_temp_c)",
            ),
        ):
            cursor.execute(
                f"""
                INSERT INTO {rollup} ({device}, hour, energy_kwh, reading_count{extra})
                SELECT {device}, date_trunc('hour', recorded_at, 'UTC'), sum(energy_kwh), count(*)
                       {extra_sum}
                FROM {history} GROUP BY 1, 2
                """
            )
            device_table = "fleet_meter" if device == "meter_id" else "fleet_vehicle"
            cursor.execute(
                f"""
                INSERT INTO {rollup} ({device}, hour, energy_kwh, reading_count{extra})
                SELECT d.id, h, 1.0, 12 {", 360.0" if extra else ""}
                FROM {device_table} d,
                     generate_series(%s::timestamptz, %s::timestamptz - interval '1 h',
                                     interval '1 h') h
                """,
                [older, start],
            )
        cursor.execute(
            """
            INSERT INTO telemetry_vehiclestatus
                (vehicle_id, recorded_at, energy_kwh, soc_pct, battery_temp_c, received_at)
            SELECT id, %s, 0.1, id %% 100, 30, %s FROM fleet_vehicle
            """,
            [end, end],
        )
        for table in (*HISTORY, *ROLLUPS, "fleet_meterassignment", "telemetry_vehiclestatus"):
            cursor.execute(f"ANALYZE {table}")


def plan_of(sql: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        raw = cursor.fetchone()[0]
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def scans(plan: dict) -> list[tuple[str, str | None, str | None]]:
    """(node type, relation, index) of every node of the plan."""
    found = [(plan["Node Type"], plan.get("Relation Name"), plan.get("Index Name"))]
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


def captured(run) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        run()
    return [query["sql"] for query in queries.captured_queries]


def telemetry_scans(sql: str) -> list[tuple[str, str | None, str | None]]:
    """The nodes that read a telemetry table or one of its indexes."""
    return [
        scan
        for scan in scans(plan_of(sql))
        if (scan[1] or "").startswith("telemetry_") or (scan[2] or "").startswith("telemetry_")
    ]


class TestVehiclePerformancePlan:
    def test_history_is_read_by_key_in_the_window_s_partitions_only(self, loaded):
        start, end = (
            datetime(2026, 2, 9, 10, 17, tzinfo=UTC),
            datetime(2026, 2, 10, 9, 43, tzinfo=UTC),
        )
        statements = captured(
            lambda: vehicle_performance(vehicle_id="V-0042", start=start, end=end, threshold=85)
        )

        figures = telemetry_scans(statements[-1])

        assert len(statements) == 2
        assert {node for node, _, _ in figures} <= INDEX_SCANS
        relations = {relation for _, relation, _ in figures if relation}
        partitions = {
            f"{history}_p{day}" for history in HISTORY for day in ("20260209", "20260210")
        }
        assert relations == partitions | set(ROLLUPS)
        indexes = {index for _, _, index in figures if index}
        assert indexes == {f"{partition}_pkey" for partition in partitions} | {
            f"{rollup}_key" for rollup in ROLLUPS
        }


METER_EDGES = {"telemetry_meterreading_p20260209", "telemetry_meterreading_p20260210"}
VEHICLE_EDGES = {"telemetry_vehiclereading_p20260209", "telemetry_vehiclereading_p20260210"}


class TestFleetPlans:
    @pytest.mark.parametrize(
        "run, edges",
        [
            (
                lambda: fleet_inefficient(hours=24, now=NOW, threshold=85, limit=50, offset=0),
                METER_EDGES,
            ),
            (lambda: fleet_summary(hours=24, now=NOW, threshold=85), METER_EDGES),
            (lambda: fleet_series(hours=24, now=NOW, bucket="hour", threshold=85), METER_EDGES),
            # Attribution also reads the vehicles' raw partial hours at assignment edges.
            (
                lambda: fleet_attribution(days=1, now=NOW, threshold=85),
                METER_EDGES | VEHICLE_EDGES,
            ),
        ],
        ids=["inefficient", "summary", "series", "attribution"],
    )
    def test_fleet_answers_read_rollups_and_only_the_window_s_raw_edges_by_index(
        self, loaded, run, edges
    ):
        statements = captured(run)

        found = telemetry_scans(statements[0])

        relations = {relation for _, relation, _ in found if relation}
        raw = relations - set(ROLLUPS)
        assert len(statements) == 1
        assert set(ROLLUPS) <= relations
        # Raw rows only for assignments' partial hours: partitions of the window's days.
        assert raw <= edges
        assert {node for node, _, _ in found} <= INDEX_SCANS
        assert {index for _, _, index in found if index} <= {
            "telemetry_meterhourly_key",
            "telemetry_vehiclehourly_key",
            "telemetry_mhourly_hour",
            "telemetry_vhourly_hour",
            *(f"{partition}_pkey" for partition in raw),
        }


class TestReadPlans:
    def test_history_pages_by_key_in_the_window_s_partitions(self, loaded):
        start, end = datetime(2026, 2, 8, 20, tzinfo=UTC), datetime(2026, 2, 9, 4, tzinfo=UTC)
        statements = captured(
            lambda: list(
                vehicle_readings(vehicle_id="V-0007", start=start, end=end).order_by("recorded_at")[
                    :500
                ]
            )
        )

        found = telemetry_scans(statements[-1])

        assert {node for node, _, _ in found} <= INDEX_SCANS
        assert {relation for _, relation, _ in found if relation} == {
            "telemetry_vehiclereading_p20260208",
            "telemetry_vehiclereading_p20260209",
        }
