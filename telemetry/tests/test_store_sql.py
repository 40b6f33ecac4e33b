"""The ingest path's statements, as PostgreSQL receives them: read them here.

Per stream, one store statement (fed by external device ids: the request's readings as typed
arrays, resolved against the device table in the statement, all or nothing) and one conflicts
statement (run only when the first inserted fewer rows than it read). Both are generated from
`telemetry.streams`; these snapshots show what a change there does to them. Whitespace is folded.
"""

import pytest
from django.db import connection

from telemetry.services import conflicts_statement_sql, store_statement_sql
from telemetry.streams import METER_STREAM, STREAMS, VEHICLE_STREAM

METER_STORE = """
WITH input (device, recorded_at, energy_kwh, voltage_v) AS (
    WITH resolved AS (
        SELECT d.id, i.recorded_at, i.energy_kwh, i.voltage_v
        FROM unnest(%s::text[], %s::timestamptz[], %s::float8[], %s::float8[])
            AS i(device_key, recorded_at, energy_kwh, voltage_v)
        JOIN fleet_meter d ON d.meter_id = i.device_key
    ) SELECT * FROM resolved WHERE (SELECT count(*) FROM resolved) = %s
),
inserted AS (
    INSERT INTO telemetry_meterreading (meter_id, recorded_at, energy_kwh, voltage_v)
    SELECT device, recorded_at, energy_kwh, voltage_v FROM input ORDER BY device, recorded_at
    ON CONFLICT (meter_id, recorded_at) DO NOTHING
    RETURNING meter_id AS device, recorded_at, energy_kwh, voltage_v
),
live AS (
    INSERT INTO telemetry_meterstatus (meter_id, recorded_at, energy_kwh, voltage_v, received_at)
    SELECT DISTINCT ON (device) device, recorded_at, energy_kwh, voltage_v, %s::timestamptz
    FROM inserted ORDER BY device, recorded_at DESC
    ON CONFLICT (meter_id) DO UPDATE SET recorded_at = EXCLUDED.recorded_at,
        energy_kwh = EXCLUDED.energy_kwh, voltage_v = EXCLUDED.voltage_v,
        received_at = EXCLUDED.received_at
    WHERE telemetry_meterstatus.recorded_at < EXCLUDED.recorded_at
),
hourly AS (
    INSERT INTO telemetry_meterhourly (meter_id, hour, energy_kwh, reading_count)
    SELECT device, date_trunc('hour', recorded_at, 'UTC'), sum(energy_kwh), count(*)
    FROM inserted GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (meter_id, hour) DO UPDATE SET
        energy_kwh = telemetry_meterhourly.energy_kwh + EXCLUDED.energy_kwh,
        reading_count = telemetry_meterhourly.reading_count + EXCLUDED.reading_count
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM input)
"""

METER_CONFLICTS = """
SELECT count(*) FROM (
    SELECT d.id, i.recorded_at, i.energy_kwh, i.voltage_v
    FROM unnest(%s::text[], %s::timestamptz[], %s::float8[], %s::float8[])
        AS i(device_key, recorded_at, energy_kwh, voltage_v)
    JOIN fleet_meter d ON d.meter_id = i.device_key
) AS i (device, recorded_at, energy_kwh, voltage_v)
JOIN telemetry_meterreading h ON h.meter_id = i.device AND h.recorded_at = i.recorded_at
WHERE ROW(h.energy_kwh, h.voltage_v) IS DISTINCT FROM ROW(i.energy_kwh, i.voltage_v)
"""

VEHICLE_STORE = """
WITH input (device, recorded_at, energy_kwh, soc_pct, battery_temp_c) AS (
    WITH resolved AS (
        SELECT d.id, i.recorded_at, i.energy_kwh, i.soc_pct, i.battery_temp_c
        FROM unnest(%s::text[], %s::timestamptz[], %s::float8[], %s::float8[], %s::float8[])
            AS i(device_key, recorded_at, energy_kwh, soc_pct, battery_temp_c)
        JOIN fleet_vehicle d ON d.vehicle_id = i.device_key
    ) SELECT * FROM resolved WHERE (SELECT count(*) FROM resolved) = %s
),
inserted AS (
    INSERT INTO telemetry_vehiclereading (vehicle_id, recorded_at, energy_kwh, soc_pct,
        battery_temp_c)
    SELECT device, recorded_at, energy_kwh, soc_pct, battery_temp_c FROM input
    ORDER BY device, recorded_at
    ON CONFLICT (vehicle_id, recorded_at) DO NOTHING
    RETURNING vehicle_id AS device, recorded_at, energy_kwh, soc_pct, battery_temp_c
),
live AS (
    INSERT INTO telemetry_vehiclestatus (vehicle_id, recorded_at, energy_kwh, soc_pct,
        battery_temp_c, received_at)
    SELECT DISTINCT ON (device) device, recorded_at, energy_kwh, soc_pct, battery_temp_c,
        %s::timestamptz
    FROM inserted ORDER BY device, recorded_at DESC
    ON CONFLICT (vehicle_id) DO UPDATE SET recorded_at = EXCLUDED.recorded_at,
        energy_kwh = EXCLUDED.energy_kwh, soc_pct = EXCLUDED.soc_pct,
        battery_temp_c = EXCLUDED.battery_temp_c, received_at = EXCLUDED.received_at
    WHERE telemetry_vehiclestatus.recorded_at < EXCLUDED.recorded_at
),
hourly AS (
    INSERT INTO telemetry_vehiclehourly (vehicle_id, hour, energy_kwh, battery_temp_sum_c,
        reading_count)
    SELECT device, date_trunc('hour', recorded_at, 'UTC'), sum(energy_kwh), sum(battery_temp_c),
        count(*)
    FROM inserted GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (vehicle_id, hour) DO UPDATE SET
        energy_kwh = telemetry_vehiclehourly.energy_kwh + EXCLUDED.energy_kwh,
        battery_temp_sum_c = telemetry_vehiclehourly.battery_temp_sum_c
            + EXCLUDED.battery_temp_sum_c,
        reading_count = telemetry_vehiclehourly.reading_count + EXCLUDED.reading_count
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM input)
"""

VEHICLE_CONFLICTS = """
SELECT count(*) FROM (
    SELECT d.id, i.recorded_at, i.energy_kwh, i.soc_pct, i.battery_temp_c
    FROM unnest(%s::text[], %s::timestamptz[], %s::float8[], %s::float8[], %s::float8[])
        AS i(device_key, recorded_at, energy_kwh, soc_pct, battery_temp_c)
    JOIN fleet_vehicle d ON d.vehicle_id = i.device_key
) AS i (device, recorded_at, energy_kwh, soc_pct, battery_temp_c)
JOIN telemetry_vehiclereading h ON h.vehicle_id = i.device AND h.recorded_at = i.recorded_at
WHERE ROW(h.energy_kwh, h.soc_pct, h.battery_temp_c)
    IS DISTINCT FROM ROW(i.energy_kwh, i.soc_pct, i.battery_temp_c)
"""


def folded(sql: str) -> str:
    """`sql` with its whitespace folded; parentheses kept apart from what they enclose."""
    return " ".join(sql.replace("(", " ( ").replace(")", " ) ").split())


@pytest.mark.parametrize(
    ("stream", "store", "conflicts"),
    [
        (METER_STREAM, METER_STORE, METER_CONFLICTS),
        (VEHICLE_STREAM, VEHICLE_STORE, VEHICLE_CONFLICTS),
    ],
    ids=lambda value: getattr(value, "kind", None),
)
def test_each_streams_statements_read_as_shown(stream, store, conflicts):
    assert folded(store_statement_sql(stream)) == folded(store)
    assert folded(conflicts_statement_sql(stream)) == folded(conflicts)


@pytest.mark.postgresql
@pytest.mark.django_db
@pytest.mark.parametrize("stream", STREAMS, ids=lambda stream: stream.kind)
def test_postgresql_plans_both_statements(stream):
    """The snapshots are live SQL: PostgreSQL accepts them with the parameters the path sends."""
    arrays = ["{}"] * (2 + len(stream.columns))
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {store_statement_sql(stream)}", [*arrays, 0, None])
        assert cursor.fetchall()
        cursor.execute(f"EXPLAIN {conflicts_statement_sql(stream)}", arrays)
        assert cursor.fetchall()


def test_the_import_staging_tables_and_copy_rows_follow_the_value_columns():
    assert METER_STREAM.staging_ddl == (
        "device bigint, recorded_at timestamptz, energy_kwh float8, voltage_v float8"
    )
    assert VEHICLE_STREAM.staging_ddl == (
        "device bigint, recorded_at timestamptz, energy_kwh float8, soc_pct float8, "
        "battery_temp_c float8"
    )
    # field count, then (length, value): device int8, recorded_at int8, one float8 per column
    assert (METER_STREAM.copy_row.format, VEHICLE_STREAM.copy_row.format) == (
        ">hiqiqidid",
        ">hiqiqididid",
    )
