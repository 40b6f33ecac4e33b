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


# --- the path past one primary: every key leads with the device -------------------------------

# Tables that a sharded deployment distributes by device (README, "Capacity and the path past one
# primary"), with their device column.
DEVICE_TABLES = {
    "telemetry_meterreading": "meter_id",
    "telemetry_vehiclereading": "vehicle_id",
    "telemetry_meterstatus": "meter_id",
    "telemetry_vehiclestatus": "vehicle_id",
    "telemetry_meterhourly": "meter_id",
    "telemetry_vehiclehourly": "vehicle_id",
}
# Indexes that do not lead with the device, each with its reason. The README lists what becomes
# of them on Citus: the surrogate ids stop being unique (a distributed table's unique keys must
# hold the distribution column), the hour indexes serve fleet-wide queries, which fan out anyway.
NOT_LEADING_WITH_THE_DEVICE = {
    "telemetry_meterhourly_pkey": "(id): Django's surrogate key of the rollup row",
    "telemetry_vehiclehourly_pkey": "(id): Django's surrogate key of the rollup row",
    "telemetry_mhourly_hour": "(hour): fleet-wide aggregates over a window of hours",
    "telemetry_vhourly_hour": "(hour): fleet-wide aggregates over a window of hours",
}


def _table_indexes(table: str) -> list[tuple[str, str, bool, str | None]]:
    """(index, first column, unique, constraint type) of `table`'s indexes and its partitions'."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.indexrelid::regclass::text, a.attname, i.indisunique, c.contype
            FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid
            WHERE i.indrelid = %s::regclass
               OR i.indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)
            """,
            [table, table],
        )
        return cursor.fetchall()


class TestKeysLeadWithTheDevice:
    @pytest.fixture
    def partitioned(self, db):
        partitions_ensure(days={FIRST_DAY.date(), (FIRST_DAY + timedelta(days=1)).date()})

    @pytest.mark.parametrize("table", sorted(DEVICE_TABLES))
    def test_every_key_and_index_of_a_device_table_leads_with_the_device(self, partitioned, table):
        device = DEVICE_TABLES[table]

        indexes = _table_indexes(table)

        assert indexes
        # History: the key of the parent and of each of the two daily partitions.
        if table.endswith("reading"):
            assert len([i for i in indexes if i[3] == "p"]) == 3
        leading_elsewhere = {name for name, first, _, _ in indexes if first != device}
        assert leading_elsewhere <= set(NOT_LEADING_WITH_THE_DEVICE), leading_elsewhere
        keys = [(name, first) for name, first, unique, _ in indexes if unique]
        natural_keys = [(n, f) for n, f in keys if n not in NOT_LEADING_WITH_THE_DEVICE]
        assert natural_keys and all(first == device for _, first in natural_keys), keys

    def test_no_exclusion_or_foreign_key_constraint_ties_a_device_table_to_another(
        self, partitioned
    ):
        # Citus: a distributed table may not reference another distributed table unless co-located,
        # and exclusion constraints must include the distribution column. The device tables have
        # neither; the registry (fleet_*) keeps its constraints as reference tables.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conrelid::regclass::text, conname, contype FROM pg_constraint "
                "WHERE contype IN ('f', 'x') AND conrelid::regclass::text = ANY(%s)",
                [list(DEVICE_TABLES)],
            )
            found = cursor.fetchall()

        assert found == []

    def test_the_assignment_exclusion_constraints_lead_with_a_device(self, db):
        # Reference tables under Citus: a copy on every node, constraints enforced as they are.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'x' AND conrelid = 'fleet_meterassignment'::regclass"
            )
            found = dict(cursor.fetchall())

        assert {name: definition.split(",")[0] for name, definition in found.items()} == {
            "fleet_meterassignment_vehicle_no_overlap": "EXCLUDE USING gist (vehicle_id WITH =",
            "fleet_meterassignment_meter_no_overlap": "EXCLUDE USING gist (meter_id WITH =",
        }


class TestStatusPlan:
    @pytest.fixture
    def fleet_of_live_rows(self, db):
        """20,000 vehicles with a live row each: enough that a scan would cost the planner."""
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO fleet_vehicle (vehicle_id, created_at) "
                "SELECT 'V-' || lpad(n::text, 5, '0'), now() FROM generate_series(1, 20000) n"
            )
            cursor.execute(
                """
                INSERT INTO telemetry_vehiclestatus
                    (vehicle_id, recorded_at, energy_kwh, soc_pct, battery_temp_c, received_at)
                SELECT id, now(), 0.1, 50, 30, now() FROM fleet_vehicle
                """
            )
            cursor.execute("ANALYZE fleet_vehicle")
            cursor.execute("ANALYZE telemetry_vehiclestatus")

    def test_a_status_lookup_reads_one_live_row_by_its_device_key(self, fleet_of_live_rows):
        from django.utils import timezone

        from telemetry.selectors import vehicle_status_get

        statements = captured(lambda: vehicle_status_get(vehicle_id="V-04242", now=timezone.now()))

        found = scans(plan_of(statements[-1]))

        assert len(statements) == 1
        assert {node for node, _, _ in found if node.endswith("Scan")} <= INDEX_SCANS, found
        indexes = {index for _, _, index in found if index}
        # The registry by the external id (its unique key or its pattern twin), then the live row
        # by its device key.
        assert "telemetry_vehiclestatus_pkey" in indexes
        assert all(
            index.startswith("fleet_vehicle_vehicle_id_")
            for index in indexes - {"telemetry_vehiclestatus_pkey"}
        ), indexes
