"""Charging efficiency (DC delivered / AC consumed) per vehicle and across the fleet.

Per vehicle (`vehicle_performance`) the answer is exact to the reading: AC counts every reading of
each meter assigned to the vehicle inside its period [valid_from, valid_to) ∩ window. Whole hours
are read from the hourly rollups (maintained by the ingest transaction, so they are always
current) and only the partial hours at the ends of each period from raw history. Two statements:
the vehicle with its assignments in the window, then every figure in one UNION ALL.

Fleet-wide (`fleet_inefficient`, `fleet_summary`) reads rollups over a window of whole hours
[floor_hour(now) − (hours − 1) h, now]: the current hour's rollup is complete up to now. A meter's
hour lying wholly inside an assignment comes from its rollup; the partial hours at an assignment's
ends (an assignment made at 10:12) come from raw readings of that meter, so AC is exact to the
reading for every vehicle. Those edges are few: one per assignment that starts or ends in the
window off the hour.

Raw SQL: the ORM can say neither a variable UNION ALL of aggregates nor the rollup ⋈ assignment
range join with a window count in one statement. Measured on PostgreSQL 15 (see the README):
a fleet-day GROUP BY over raw history costs ~0.5 s per stream, over the rollups ~22 ms. SQL text
is built in code only; every value is a parameter. The connection is the router's read database.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connections, models, router

from fleet.models import Vehicle
from telemetry.models import MeterHourly, VehicleReading

HOUR = timedelta(hours=1)


class PerformanceStatus(models.TextChoices):
    OK = "OK", "efficiency at or above the threshold"
    FAULT_DETECTED = "FAULT_DETECTED", "efficiency below the threshold"
    ANOMALY = "ANOMALY", "more DC delivered than AC consumed (a sensor or mapping fault)"
    IDLE = "IDLE", "less AC than the minimum charge: nothing charged, nothing to judge"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA", "no meter reading or no vehicle reading in the window"


# The status rule, written once: every answer (per vehicle, series, fleet list and summary,
# attribution) selects these two columns over a relation with the columns ac_kwh, dc_kwh,
# ac_readings and dc_readings, with the parameters %(threshold)s (percent) and
# %(min_charge_kwh)s (> 0, so ac_kwh > 0 wherever it divides). The order of the WHENs is the rule:
# no meter or no vehicle reading → INSUFFICIENT_DATA; AC below the minimum → IDLE (no
# efficiency); DC > AC → ANOMALY; efficiency below the threshold (0 % when AC came with no DC) →
# FAULT_DETECTED; else OK.
_JUDGEMENT_SQL = """
    CASE WHEN ac_readings = 0 OR dc_readings = 0 OR ac_kwh < %(min_charge_kwh)s THEN NULL
         ELSE 100.0 * dc_kwh / ac_kwh END AS efficiency,
    CASE WHEN ac_readings = 0 OR dc_readings = 0 THEN 'INSUFFICIENT_DATA'
         WHEN ac_kwh < %(min_charge_kwh)s THEN 'IDLE'
         WHEN dc_kwh > ac_kwh THEN 'ANOMALY'
         WHEN 100.0 * dc_kwh / ac_kwh < %(threshold)s THEN 'FAULT_DETECTED'
         ELSE 'OK' END AS status"""


class VehicleNotFound(LookupError):
    """No vehicle has this id."""


@dataclass(frozen=True, kw_only=True)
class SeriesBucket:
    """The figures of [start, end): one bucket of a series (clipped to the window)."""

    start: datetime
    end: datetime
    ac_kwh: float
    dc_kwh: float
    efficiency_pct: float | None
    avg_battery_temp_c: float | None
    vehicle_reading_count: int
    meter_reading_count: int
    status: str


@dataclass(frozen=True, kw_only=True)
class VehiclePerformance(SeriesBucket):
    """The figures of one vehicle over a window."""

    vehicle_id: str
    meter_ids: tuple[str, ...]


@dataclass(frozen=True)
class Series:
    """A vehicle's (or, with vehicle_id None, the fleet's) figures per hour or day bucket."""

    vehicle_id: str | None
    start: datetime
    end: datetime
    bucket: str
    meter_ids: tuple[str, ...]
    items: tuple[SeriesBucket, ...]


@dataclass(frozen=True)
class FleetPage:
    start: datetime
    end: datetime
    total: int
    items: tuple[VehiclePerformance, ...]


@dataclass(frozen=True)
class FleetSummary:
    start: datetime
    end: datetime
    vehicle_count: int
    ac_kwh: float
    dc_kwh: float
    efficiency_pct: float | None
    by_status: dict[str, int]


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


BUCKET_WIDTHS = {"hour": HOUR, "day": timedelta(days=1)}


def _bucket_origin(moment: datetime, bucket: str) -> datetime:
    """The start of the UTC hour or day holding `moment`."""
    hour = floor_hour(moment)
    return hour.replace(hour=0) if bucket == "day" else hour


def _bucket_edges(start: datetime, end: datetime, bucket: str) -> list[tuple[datetime, datetime]]:
    """The buckets meeting [start, end), each clipped to it."""
    width = BUCKET_WIDTHS[bucket]
    edges = []
    lo = _bucket_origin(start, bucket)
    while lo < end:
        edges.append((max(lo, start), min(lo + width, end)))
        lo += width
    return edges


# Index of the bucket of the time column {x}: whole seconds since %(origin)s (epoch seconds) over
# %(width)s seconds. Percent signs doubled: the statements take named parameters.
_BUCKET_OF = {
    "postgresql": "CAST(floor((extract(epoch FROM {x}) - %(origin)s) / %(width)s) AS integer)",
    "sqlite": "((CAST(strftime('%%s', {x}) AS INTEGER) - %(origin)s) / %(width)s)",
}

# One row per bucket index 0 … %(buckets)s − 1 (both backends know recursive CTEs).
_BUCKETS_CTE = """buckets(n) AS (
    SELECT 0 UNION ALL SELECT n + 1 FROM buckets WHERE n + 1 < %(buckets)s
)"""


def _bucket_params(start: datetime, end: datetime, bucket: str | None) -> dict:
    if bucket is None:
        return {"buckets": 1, "origin": 0, "width": 1}
    return {
        "buckets": len(_bucket_edges(start, end, bucket)),
        "origin": int(_bucket_origin(start, bucket).timestamp()),
        "width": int(BUCKET_WIDTHS[bucket].total_seconds()),
    }


def _rounded(columns: Sequence) -> dict[str, float | int | None]:
    """The figures of a result row's columns (ac_kwh, ac_readings, dc_kwh, dc_readings,
    temp_sum, efficiency, status) as the answers report them (kWh 4 decimals, % 2)."""
    ac_kwh, ac_readings, dc_kwh, dc_readings, temp_sum, efficiency, status = columns
    dc_readings = int(dc_readings or 0)
    return {
        "ac_kwh": round(float(ac_kwh or 0), 4),
        "dc_kwh": round(float(dc_kwh or 0), 4),
        "efficiency_pct": None if efficiency is None else round(float(efficiency), 2),
        "avg_battery_temp_c": (
            round(float(temp_sum) / dc_readings, 2)
            if dc_readings and temp_sum is not None
            else None
        ),
        "vehicle_reading_count": dc_readings,
        "meter_reading_count": int(ac_readings or 0),
        "status": status,
    }


# --- Per vehicle ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """The raw and rollup tables of one stream, and the columns the figures need."""

    kind: int
    history: str
    hourly: str
    device_column: str
    raw_temperature: str
    hourly_temperature: str


_AC = _Source(0, "telemetry_meterreading", "telemetry_meterhourly", "meter_id", "0.0", "0.0")
_DC = _Source(
    1,
    "telemetry_vehiclereading",
    "telemetry_vehiclehourly",
    "vehicle_id",
    "sum(battery_temp_c)",
    "sum(battery_temp_sum_c)",
)


def split_by_hours(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """Cut [start, end) into ("raw" | "hourly", lo, hi) parts: whole hours from the rollups.

    [start, ceil_hour(start)) raw, [ceil_hour(start), floor_hour(end)) hourly,
    [floor_hour(end), end) raw; empty parts are left out.
    """
    first_whole, last_whole = ceil_hour(start), floor_hour(end)
    if first_whole >= last_whole:
        return [("raw", start, end)] if start < end else []
    parts = [
        ("raw", start, first_whole),
        ("hourly", first_whole, last_whole),
        ("raw", last_whole, end),
    ]
    return [(table, lo, hi) for table, lo, hi in parts if lo < hi]


def _part_sql(source: _Source, table: str, *, bucket_of: str | None, names: tuple) -> str:
    """One aggregate per bucket over a range of one device: of its history or of its rollups.

    `names` are the parameter names of (device, lo, hi); without `bucket_of` one bucket, 0.
    """
    device, lo, hi = (f"%({name})s" for name in names)
    time_column = "recorded_at" if table == "raw" else "hour"
    bucket = "0" if bucket_of is None else bucket_of.format(x=time_column)
    if table == "raw":
        return (
            f"SELECT {source.kind} AS kind, {bucket} AS bucket, sum(energy_kwh) AS energy_kwh, "
            f"count(*) AS readings, {source.raw_temperature} AS temp_sum FROM {source.history} "
            f"WHERE {source.device_column} = {device} AND recorded_at >= {lo} "
            f"AND recorded_at < {hi} GROUP BY 2"
        )
    return (
        f"SELECT {source.kind} AS kind, {bucket} AS bucket, sum(energy_kwh) AS energy_kwh, "
        f"sum(reading_count) AS readings, {source.hourly_temperature} AS temp_sum "
        f"FROM {source.hourly} WHERE {source.device_column} = {device} AND hour >= {lo} "
        f"AND hour < {hi} GROUP BY 2"
    )


# Every bucket's sums of both streams, judged. `parts` is a UNION ALL of `_part_sql`s.
_VEHICLE_SQL = (
    "WITH RECURSIVE "
    + _BUCKETS_CTE
    + """,
parts AS ({parts}),
sums AS (
    SELECT b.n AS bucket,
           coalesce(sum(CASE WHEN p.kind = 0 THEN p.energy_kwh END), 0.0) AS ac_kwh,
           coalesce(sum(CASE WHEN p.kind = 0 THEN p.readings END), 0) AS ac_readings,
           coalesce(sum(CASE WHEN p.kind = 1 THEN p.energy_kwh END), 0.0) AS dc_kwh,
           coalesce(sum(CASE WHEN p.kind = 1 THEN p.readings END), 0) AS dc_readings,
           sum(CASE WHEN p.kind = 1 THEN p.temp_sum END) AS temp_sum
    FROM buckets b LEFT JOIN parts p ON p.bucket = b.n
    GROUP BY b.n
)
SELECT bucket, ac_kwh, ac_readings, dc_kwh, dc_readings, temp_sum, """
    + _JUDGEMENT_SQL
    + """
FROM sums ORDER BY bucket"""
)


# The vehicle and its assignments meeting [start, end) (the GiST index of
# fleet_meterassignment_vehicle_no_overlap, or the (vehicle, valid_from) index). Raw SQL: compiling
# the equivalent ORM query (a FilteredRelation) was a third of the endpoint's CPU time.
_PERIODS_SQL = """
    SELECT v.id, a.meter_id, m.meter_id, a.valid_from, a.valid_to
    FROM fleet_vehicle v
    LEFT JOIN fleet_meterassignment a
        ON a.vehicle_id = v.id AND a.valid_from < %s AND (a.valid_to IS NULL OR a.valid_to > %s)
    LEFT JOIN fleet_meter m ON m.id = a.meter_id
    WHERE v.vehicle_id = %s
    ORDER BY a.valid_from
"""


def _vehicle_periods(
    *, vehicle_id: str, start: datetime, end: datetime
) -> tuple[int, list[tuple[int, str, datetime, datetime]]]:
    """The vehicle's pk and its meters' periods clipped to [start, end), oldest first."""
    connection = connections[router.db_for_read(Vehicle)]
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(_PERIODS_SQL, [adapt(end), adapt(start), vehicle_id])
        rows = cursor.fetchall()
    if not rows:
        raise VehicleNotFound(vehicle_id)
    periods = [
        (meter_pk, meter_code, max(_aware(valid_from), start), min(_aware(valid_to) or end, end))
        for _, meter_pk, meter_code, valid_from, valid_to in rows
        if meter_pk is not None
    ]
    return rows[0][0], periods


def _aware(moment: datetime | str | None) -> datetime | None:
    """A datetime of a raw row as an aware UTC datetime (SQLite hands back naive UTC or text)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _min_charge(min_charge_kwh: float | None) -> float:
    return settings.ANALYTICS_MIN_CHARGE_KWH if min_charge_kwh is None else min_charge_kwh


def _vehicle_buckets(
    *,
    vehicle_id: str,
    start: datetime,
    end: datetime,
    bucket: str | None,
    threshold: float,
    min_charge_kwh: float | None,
) -> tuple[tuple[str, ...], list[tuple]]:
    """The vehicle's meter ids and one judged row per bucket (one row without `bucket`)."""
    vehicle_pk, periods = _vehicle_periods(vehicle_id=vehicle_id, start=start, end=end)
    connection = connections[router.db_for_read(VehicleReading)]
    adapt = connection.ops.adapt_datetimefield_value
    bucket_of = None if bucket is None else _BUCKET_OF[connection.vendor]
    parts: list[str] = []
    params: dict = {
        **_bucket_params(start, end, bucket),
        "threshold": threshold,
        "min_charge_kwh": _min_charge(min_charge_kwh),
    }
    streams = [(_AC, meter_pk, lo, hi) for meter_pk, _, lo, hi in periods]
    streams.append((_DC, vehicle_pk, start, end))
    for source, device_pk, lo, hi in streams:
        for table, part_lo, part_hi in split_by_hours(lo, hi):
            names = tuple(f"p{len(parts)}_{field}" for field in ("device", "lo", "hi"))
            parts.append(_part_sql(source, table, bucket_of=bucket_of, names=names))
            params.update(zip(names, (device_pk, adapt(part_lo), adapt(part_hi)), strict=True))
    sql = _VEHICLE_SQL.format(parts=" UNION ALL ".join(parts))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return tuple(dict.fromkeys(code for _, code, _, _ in periods)), rows


def vehicle_performance(
    *,
    vehicle_id: str,
    start: datetime,
    end: datetime,
    threshold: float,
    min_charge_kwh: float | None = None,
) -> VehiclePerformance:
    """Efficiency of one vehicle in [start, end), exact to the reading; two SQL statements.

    `min_charge_kwh` defaults to ANALYTICS_MIN_CHARGE_KWH.
    """
    meter_ids, rows = _vehicle_buckets(
        vehicle_id=vehicle_id,
        start=start,
        end=end,
        bucket=None,
        threshold=threshold,
        min_charge_kwh=min_charge_kwh,
    )
    ((_, *columns),) = rows
    return VehiclePerformance(
        vehicle_id=vehicle_id, start=start, end=end, meter_ids=meter_ids, **_rounded(columns)
    )


def _series_items(
    rows: list[tuple], start: datetime, end: datetime, bucket: str
) -> tuple[SeriesBucket, ...]:
    edges = _bucket_edges(start, end, bucket)
    return tuple(
        SeriesBucket(start=edges[index][0], end=edges[index][1], **_rounded(columns))
        for index, *columns in rows
    )


def vehicle_series(
    *,
    vehicle_id: str,
    start: datetime,
    end: datetime,
    bucket: str,
    threshold: float,
    min_charge_kwh: float | None = None,
) -> Series:
    """`vehicle_performance` per UTC hour or day bucket of [start, end); two SQL statements.

    The same parts (rollup hours and raw partial hours of each assignment) grouped by bucket, so
    the buckets sum to the per-vehicle total of the window.
    """
    meter_ids, rows = _vehicle_buckets(
        vehicle_id=vehicle_id,
        start=start,
        end=end,
        bucket=bucket,
        threshold=threshold,
        min_charge_kwh=min_charge_kwh,
    )
    return Series(
        vehicle_id=vehicle_id,
        start=start,
        end=end,
        bucket=bucket,
        meter_ids=meter_ids,
        items=_series_items(rows, start, end, bucket),
    )


# --- Fleet: rollups only -------------------------------------------------------------------------


def fleet_window(*, hours: int, now: datetime) -> tuple[datetime, datetime]:
    """[floor_hour(now) − (hours − 1) h, now]: `hours` whole hour buckets, the last one current."""
    return floor_hour(now) - (hours - 1) * HOUR, now


# Hour arithmetic per backend. Percent signs are doubled: the statements take named parameters.
_HOUR_SQL = {
    "postgresql": {
        "floor": "date_trunc('hour', {x})",
        "next": "(date_trunc('hour', {x}) + interval '1 hour')",
        "least": "least",
        "greatest": "greatest",
    },
    "sqlite": {
        "floor": "strftime('%%Y-%%m-%%d %%H:00:00', {x})",
        "next": "strftime('%%Y-%%m-%%d %%H:00:00', {x}, '+1 hour')",
        "least": "min",
        "greatest": "max",
    },
}

# Raw readings of the partial hours where an assignment starts (10:12 → [10:12, 11:00)) or ends
# ([14:00, 14:30)) off the hour; the end's hour is skipped when the start's covered it. Few periods
# have such edges; each is an index range scan on (device, recorded_at) in the window's partitions
# (the constant bounds let the planner prune to them). On PostgreSQL a LATERAL subquery makes it
# scan per edge: a plain join let it hash-join the whole window's readings (0.8 s on a fleet-day).
# SQLite has no LATERAL and probes the index per row of its own accord.
# Each edge as one range, so the index scan reads just that partial hour. {table} and {device}:
# the meter's history (AC) or, for attribution, the vehicle's (DC while on that meter).
_START_EDGE = (
    """
    e.valid_from > {floor_of_from} AND e.valid_from >= %(start)s""",
    """
    r.recorded_at >= e.valid_from
    AND r.recorded_at < {least}({next_hour_of_from}, coalesce(e.valid_to, %(until)s), %(until)s)""",
)
_END_EDGE = (
    """
    e.valid_to > {floor_of_to}
    AND NOT (e.valid_from > {floor_of_from} AND {floor_of_to} = {floor_of_from})""",
    """
    r.recorded_at >= {greatest}({floor_of_to}, e.valid_from, %(start)s)
    AND r.recorded_at < {least}(e.valid_to, %(until)s)""",
)
_EDGE = {
    "postgresql": """SELECT e.vehicle_id, e.meter_id, r.energy_kwh, 1, r.recorded_at
    FROM periods e
    CROSS JOIN LATERAL (
        SELECT r.energy_kwh, r.recorded_at FROM {table} r
        WHERE r.{device} = e.{device}
          AND r.recorded_at >= %(start)s AND r.recorded_at < %(until)s AND {range}
        OFFSET 0  -- keeps the planner from flattening this back into a hash join
    ) r
    WHERE {which}
""",
    "sqlite": """SELECT e.vehicle_id, e.meter_id, r.energy_kwh, 1, r.recorded_at
    FROM periods e
    JOIN {table} r ON r.{device} = e.{device}
        AND r.recorded_at >= %(start)s AND r.recorded_at < %(until)s AND {range}
    WHERE {which}
""",
}


def _edges_sql(vendor: str, source: _Source) -> str:
    template = _EDGE[vendor].replace("{table}", source.history)
    template = template.replace("{device}", source.device_column)
    return "    UNION ALL\n".join(
        template.replace("{which}", which).replace("{range}", bounds)
        for which, bounds in (_START_EDGE, _END_EDGE)
    )


# The meters of a vehicle in the window, oldest assignment first, comma-separated (device ids
# cannot contain commas).
_METER_LIST = {
    "postgresql": "string_agg(m.meter_id, ',' ORDER BY p.valid_from)",
    "sqlite": "group_concat(m.meter_id, ',')",
}

# The assignments meeting the rollup hours [start, until), and the AC of each: a meter's hours
# wholly inside the assignment from the rollups, its partial hours from raw readings (`at`: the
# hour or the reading's time). Indexes: telemetry_mhourly_hour (or the (device, hour) key) for the
# hour range; fleet_assignment_meter_from for the periods.
_PERIODS_AC_CTE = """
periods AS (
    SELECT vehicle_id, meter_id, valid_from, valid_to
    FROM fleet_meterassignment
    WHERE valid_from < %(until)s AND (valid_to IS NULL OR valid_to > %(start)s)
),
ac_parts AS ({ac_hours}
    UNION ALL
    {edges})"""

# The rollup hours of one stream wholly inside each period ({hourly}, {device}: the meter's or
# the vehicle's).
_HOURS_IN_PERIODS = """
    SELECT p.vehicle_id, p.meter_id, h.energy_kwh, h.reading_count, h.hour AS at
    FROM periods p
    JOIN {hourly} h ON h.{device} = p.{device}
    WHERE h.hour >= %(start)s AND h.hour < %(until)s
      AND h.hour >= p.valid_from AND (p.valid_to IS NULL OR {next_hour_of_h} <= p.valid_to)"""

# Every vehicle with its figures over the rollup hours [start, until), judged by the one rule
# (`_JUDGEMENT_SQL`). Index telemetry_vhourly_hour (or the (device, hour) key) for the DC hours.
_FIGURES_CTE = (
    "WITH "
    + _PERIODS_AC_CTE
    + """,
dc AS (
    SELECT vehicle_id, sum(energy_kwh) AS dc_kwh, sum(reading_count) AS dc_readings,
           sum(battery_temp_sum_c) AS temp_sum
    FROM telemetry_vehiclehourly
    WHERE hour >= %(start)s AND hour < %(until)s
    GROUP BY vehicle_id
),
ac AS (
    SELECT vehicle_id, sum(energy_kwh) AS ac_kwh, sum(reading_count) AS ac_readings
    FROM ac_parts
    GROUP BY vehicle_id
),
meters AS (
    SELECT p.vehicle_id, {meter_list} AS meter_ids
    FROM periods p JOIN fleet_meter m ON m.id = p.meter_id
    GROUP BY p.vehicle_id
),
sums AS (
    SELECT v.vehicle_id AS code, meters.meter_ids,
           coalesce(ac.ac_kwh, 0.0) AS ac_kwh, coalesce(ac.ac_readings, 0) AS ac_readings,
           coalesce(dc.dc_kwh, 0.0) AS dc_kwh, coalesce(dc.dc_readings, 0) AS dc_readings,
           dc.temp_sum
    FROM fleet_vehicle v
    LEFT JOIN ac ON ac.vehicle_id = v.id
    LEFT JOIN dc ON dc.vehicle_id = v.id
    LEFT JOIN meters ON meters.vehicle_id = v.id
),
figures AS (
    SELECT sums.*, """
    + _JUDGEMENT_SQL
    + """
    FROM sums
)
"""
)

# The count comes with the page (LEFT JOIN: a page past the end still reports it); `figures` is
# referenced twice, so PostgreSQL computes it once (a materialized CTE).
_INEFFICIENT_SQL = (
    _FIGURES_CTE
    + """,
faulty AS (SELECT * FROM figures WHERE status = 'FAULT_DETECTED'),
page AS (
    SELECT * FROM faulty ORDER BY efficiency, code LIMIT %(limit)s OFFSET %(offset)s
)
SELECT total.n, page.code, page.meter_ids, page.ac_kwh, page.ac_readings, page.dc_kwh,
       page.dc_readings, page.temp_sum, page.efficiency, page.status
FROM (SELECT count(*) AS n FROM faulty) total
LEFT JOIN page ON 1 = 1
ORDER BY page.efficiency, page.code
"""
)

_SUMMARY_SQL = (
    _FIGURES_CTE
    + """
SELECT status, count(*), sum(ac_kwh), sum(dc_kwh)
FROM figures
GROUP BY status
"""
)


def _fleet_execute(
    sql: str, *, start: datetime, end: datetime, bucket: str | None = None, **params
) -> list[tuple]:
    """Run a fleet statement over the rollup hours of [start, end].

    Parameters beyond start/until: `threshold`, `min_charge_kwh` (default the setting) and the
    statement's own; `bucket` sets the series' bucket parameters.
    """
    connection = connections[router.db_for_read(MeterHourly)]
    adapt = connection.ops.adapt_datetimefield_value
    until = floor_hour(end) + HOUR
    params["min_charge_kwh"] = _min_charge(params.get("min_charge_kwh"))
    if bucket is not None:
        params.update(_bucket_params(start, until, bucket))
    params["start"] = adapt(start)
    params["until"] = adapt(until)
    with connection.cursor() as cursor:
        vendor = connection.vendor
        hours = _HOUR_SQL[vendor]
        snippets = {
            "next_hour_of_h": hours["next"].format(x="h.hour"),
            "floor_of_from": hours["floor"].format(x="e.valid_from"),
            "floor_of_to": hours["floor"].format(x="e.valid_to"),
            "next_hour_of_from": hours["next"].format(x="e.valid_from"),
            "least": hours["least"],
            "greatest": hours["greatest"],
            "bucket_of_at": _BUCKET_OF[vendor].format(x="at"),
            "bucket_of_hour": _BUCKET_OF[vendor].format(x="hour"),
        }
        sql = sql.replace("{edges}", "{ac_edges}")
        for prefix, source in (("ac", _AC), ("dc", _DC)):  # pieces with placeholders of their own
            hours_sql = _HOURS_IN_PERIODS.replace("{hourly}", source.hourly)
            sql = sql.replace(
                f"{{{prefix}_hours}}", hours_sql.replace("{device}", source.device_column)
            )
            sql = sql.replace(f"{{{prefix}_edges}}", _edges_sql(vendor, source))
        sql = sql.format(meter_list=_METER_LIST[vendor], **snippets)
        cursor.execute(sql, params)
        return cursor.fetchall()


def fleet_inefficient(
    *,
    hours: int,
    now: datetime,
    threshold: float,
    limit: int,
    offset: int,
    min_charge_kwh: float | None = None,
) -> FleetPage:
    """FAULT_DETECTED vehicles over the last `hours` whole hours, worst first; one statement.

    IDLE and INSUFFICIENT_DATA vehicles have no efficiency to judge and are never listed.
    """
    start, end = fleet_window(hours=hours, now=now)
    rows = _fleet_execute(
        _INEFFICIENT_SQL,
        start=start,
        end=end,
        threshold=threshold,
        min_charge_kwh=min_charge_kwh,
        limit=limit,
        offset=offset,
    )
    total = int(rows[0][0])
    items = tuple(
        VehiclePerformance(
            vehicle_id=code,
            start=start,
            end=end,
            meter_ids=tuple(meter_ids.split(",")) if meter_ids else (),
            **_rounded(columns),
        )
        for _, code, meter_ids, *columns in rows
        if code is not None
    )
    return FleetPage(start=start, end=end, total=total, items=items)


def fleet_summary(
    *, hours: int, now: datetime, threshold: float, min_charge_kwh: float | None = None
) -> FleetSummary:
    """Fleet totals and vehicle counts by status (IDLE included) over the last `hours` hours."""
    start, end = fleet_window(hours=hours, now=now)
    rows = _fleet_execute(
        _SUMMARY_SQL,
        start=start,
        end=end,
        threshold=threshold,
        min_charge_kwh=min_charge_kwh,
    )
    by_status = dict.fromkeys(PerformanceStatus.values, 0)
    ac_kwh = dc_kwh = 0.0
    for status, count, ac, dc in rows:
        by_status[status] = int(count)
        ac_kwh += float(ac or 0)
        dc_kwh += float(dc or 0)
    return FleetSummary(
        start=start,
        end=end,
        vehicle_count=sum(by_status.values()),
        ac_kwh=round(ac_kwh, 4),
        dc_kwh=round(dc_kwh, 4),
        efficiency_pct=round(100.0 * dc_kwh / ac_kwh, 2) if ac_kwh > 0 else None,
        by_status=by_status,
    )


# The fleet's AC (assigned meters, exact at assignment edges) and DC (every vehicle) per bucket.
_FLEET_SERIES_SQL = (
    "WITH RECURSIVE "
    + _BUCKETS_CTE
    + ","
    + _PERIODS_AC_CTE
    + """,
ac AS (
    SELECT {bucket_of_at} AS bucket, sum(energy_kwh) AS ac_kwh, sum(reading_count) AS ac_readings
    FROM ac_parts GROUP BY 1
),
dc AS (
    SELECT {bucket_of_hour} AS bucket, sum(energy_kwh) AS dc_kwh,
           sum(reading_count) AS dc_readings, sum(battery_temp_sum_c) AS temp_sum
    FROM telemetry_vehiclehourly
    WHERE hour >= %(start)s AND hour < %(until)s
    GROUP BY 1
),
sums AS (
    SELECT b.n AS bucket,
           coalesce(ac.ac_kwh, 0.0) AS ac_kwh, coalesce(ac.ac_readings, 0) AS ac_readings,
           coalesce(dc.dc_kwh, 0.0) AS dc_kwh, coalesce(dc.dc_readings, 0) AS dc_readings,
           dc.temp_sum
    FROM buckets b
    LEFT JOIN ac ON ac.bucket = b.n
    LEFT JOIN dc ON dc.bucket = b.n
)
SELECT bucket, ac_kwh, ac_readings, dc_kwh, dc_readings, temp_sum, """
    + _JUDGEMENT_SQL
    + """
FROM sums ORDER BY bucket"""
)


def fleet_series(
    *,
    hours: int,
    now: datetime,
    bucket: str,
    threshold: float,
    min_charge_kwh: float | None = None,
) -> Series:
    """Fleet totals per hour or day bucket over the fleet window; one statement.

    The buckets sum to `fleet_summary`'s totals over the same window.
    """
    start, end = fleet_window(hours=hours, now=now)
    rows = _fleet_execute(
        _FLEET_SERIES_SQL,
        start=start,
        end=end,
        bucket=bucket,
        threshold=threshold,
        min_charge_kwh=min_charge_kwh,
    )
    items = _series_items(rows, start, floor_hour(end) + HOUR, bucket)
    if items:  # the last bucket ends now, not at the end of the current hour
        items = (*items[:-1], replace(items[-1], end=min(items[-1].end, end)))
    return Series(vehicle_id=None, start=start, end=end, bucket=bucket, meter_ids=(), items=items)


# --- Attribution: the charger or the vehicle -----------------------------------------------------


class AttributionVerdict(models.TextChoices):
    CHARGER_SUSPECTED = "CHARGER_SUSPECTED", "a meter low with two or more vehicles"
    VEHICLE_SUSPECTED = "VEHICLE_SUSPECTED", "a vehicle low on two or more meters"


@dataclass(frozen=True)
class Pairing:
    """One vehicle on one meter over the window: the figures while it was assigned there."""

    vehicle_id: str
    meter_id: str
    ac_kwh: float
    dc_kwh: float
    efficiency_pct: float | None
    meter_reading_count: int
    vehicle_reading_count: int
    status: str


@dataclass(frozen=True)
class Suspect:
    verdict: str
    meter_id: str | None  # CHARGER_SUSPECTED
    vehicle_id: str | None  # VEHICLE_SUSPECTED
    pairings: tuple[Pairing, ...]  # every pairing of the suspect in the window, the evidence


@dataclass(frozen=True)
class FleetAttribution:
    start: datetime
    end: datetime
    suspects: tuple[Suspect, ...]

    def for_vehicle(self, vehicle_id: str) -> tuple[Suspect, ...]:
        """The suspects a low vehicle points at: itself, or a charger it was low on."""
        return tuple(
            suspect
            for suspect in self.suspects
            if suspect.vehicle_id == vehicle_id
            or any(
                p.vehicle_id == vehicle_id and p.status == PerformanceStatus.FAULT_DETECTED
                for p in suspect.pairings
            )
        )


# Every (vehicle, meter) pairing of the window with the AC of the meter and the DC of the vehicle
# while that assignment held (rollup hours wholly inside it, raw readings of its partial hours on
# both sides), judged by the one rule; then the meters low (FAULT_DETECTED) with two or more
# vehicles and the vehicles low on two or more meters, each with all its pairings.
_ATTRIBUTION_SQL = (
    "WITH "
    + _PERIODS_AC_CTE
    + """,
dc_parts AS ({dc_hours}
    UNION ALL
    {dc_edges}),
ac AS (
    SELECT vehicle_id, meter_id, sum(energy_kwh) AS ac_kwh, sum(reading_count) AS ac_readings
    FROM ac_parts GROUP BY vehicle_id, meter_id
),
dc AS (
    SELECT vehicle_id, meter_id, sum(energy_kwh) AS dc_kwh, sum(reading_count) AS dc_readings
    FROM dc_parts GROUP BY vehicle_id, meter_id
),
sums AS (
    SELECT pairs.vehicle_id, pairs.meter_id,
           coalesce(ac.ac_kwh, 0.0) AS ac_kwh, coalesce(ac.ac_readings, 0) AS ac_readings,
           coalesce(dc.dc_kwh, 0.0) AS dc_kwh, coalesce(dc.dc_readings, 0) AS dc_readings
    FROM (SELECT DISTINCT vehicle_id, meter_id FROM periods) pairs
    LEFT JOIN ac ON ac.vehicle_id = pairs.vehicle_id AND ac.meter_id = pairs.meter_id
    LEFT JOIN dc ON dc.vehicle_id = pairs.vehicle_id AND dc.meter_id = pairs.meter_id
),
judged AS (
    SELECT sums.*, """
    + _JUDGEMENT_SQL
    + """
    FROM sums
),
low AS (SELECT vehicle_id, meter_id FROM judged WHERE status = 'FAULT_DETECTED'),
chargers AS (
    SELECT meter_id FROM low GROUP BY meter_id HAVING count(DISTINCT vehicle_id) >= 2
),
vehicles AS (
    SELECT vehicle_id FROM low GROUP BY vehicle_id HAVING count(DISTINCT meter_id) >= 2
),
suspects AS (
    SELECT 'CHARGER_SUSPECTED' AS verdict, j.* FROM judged j JOIN chargers c USING (meter_id)
    UNION ALL
    SELECT 'VEHICLE_SUSPECTED' AS verdict, j.* FROM judged j JOIN vehicles w USING (vehicle_id)
)
SELECT s.verdict, v.vehicle_id, m.meter_id, s.ac_kwh, s.ac_readings, s.dc_kwh, s.dc_readings,
       NULL AS temp_sum, s.efficiency, s.status
FROM suspects s
JOIN fleet_vehicle v ON v.id = s.vehicle_id
JOIN fleet_meter m ON m.id = s.meter_id
ORDER BY s.verdict, CASE WHEN s.verdict = 'CHARGER_SUSPECTED' THEN m.meter_id
                         ELSE v.vehicle_id END, v.vehicle_id, m.meter_id
"""
)


# --- Fleet: every vehicle's figures (alarm evaluation) -------------------------------------------


@dataclass(frozen=True)
class VehicleFigures:
    """One mapped vehicle's figures over a fleet window, as `fleet_vehicle_figures` reads them."""

    vehicle_pk: int
    vehicle_id: str
    meter_ids: tuple[str, ...]
    ac_kwh: float
    dc_kwh: float
    efficiency_pct: float | None
    status: str


# Every vehicle an assignment maps in the window (meter_ids is null for the others), with the
# figures of `_FIGURES_CTE`, so alarms follow the one status rule of the fleet endpoints.
_VEHICLE_FIGURES_SQL = (
    _FIGURES_CTE
    + """
SELECT v.id, figures.code, figures.meter_ids, figures.ac_kwh, figures.dc_kwh, figures.efficiency,
       figures.status
FROM figures JOIN fleet_vehicle v ON v.vehicle_id = figures.code
WHERE figures.meter_ids IS NOT NULL
"""
)


def fleet_attribution(
    *, days: int, now: datetime, threshold: float, min_charge_kwh: float | None = None
) -> FleetAttribution:
    """Chargers and vehicles to blame over the last `days` × 24 whole hours; one statement."""
    start, end = fleet_window(hours=days * 24, now=now)
    rows = _fleet_execute(
        _ATTRIBUTION_SQL,
        start=start,
        end=end,
        threshold=threshold,
        min_charge_kwh=min_charge_kwh,
    )
    grouped: dict[tuple[str, str], list[Pairing]] = {}
    for verdict, vehicle, meter, *columns in rows:
        figures = _rounded(columns)
        del figures["avg_battery_temp_c"]
        subject = meter if verdict == AttributionVerdict.CHARGER_SUSPECTED else vehicle
        grouped.setdefault((verdict, subject), []).append(
            Pairing(vehicle_id=vehicle, meter_id=meter, **figures)
        )
    suspects = tuple(
        Suspect(
            verdict=verdict,
            meter_id=subject if verdict == AttributionVerdict.CHARGER_SUSPECTED else None,
            vehicle_id=subject if verdict == AttributionVerdict.VEHICLE_SUSPECTED else None,
            pairings=tuple(pairings),
        )
        for (verdict, subject), pairings in grouped.items()
    )
    return FleetAttribution(start=start, end=end, suspects=suspects)


def attribution_for_vehicle(
    *,
    vehicle_id: str,
    now: datetime,
    days: int = 7,
    threshold: float,
    min_charge_kwh: float | None = None,
) -> tuple[Suspect, ...]:
    """What the history says about one vehicle: VEHICLE_SUSPECTED for itself, CHARGER_SUSPECTED
    for a meter it was low on; empty when the history allows no attribution.

    One fleet statement: to attribute many vehicles, call `fleet_attribution` once and use
    `FleetAttribution.for_vehicle`.
    """
    attribution = fleet_attribution(
        days=days, now=now, threshold=threshold, min_charge_kwh=min_charge_kwh
    )
    return attribution.for_vehicle(vehicle_id)


def fleet_vehicle_figures(
    *, start: datetime, end: datetime, threshold: float, min_charge_kwh: float
) -> list[VehicleFigures]:
    """Every mapped vehicle's exact AC/DC figures and status over [start, end]; one statement.

    The window is the fleet endpoints' (whole rollup hours from `start`, the last one current).
    Raw SQL for the reasons of the module docstring: a set-based read of the fleet is one
    statement of ~0.2 s at 10,000 vehicles, where a per-vehicle loop is 20,000 statements.
    `min_charge_kwh` is the IDLE bound of the status rule.
    """
    rows = _fleet_execute(
        _VEHICLE_FIGURES_SQL,
        start=start,
        end=end,
        threshold=threshold,
        min_charge_kwh=min_charge_kwh,
    )
    return [
        VehicleFigures(
            vehicle_pk=int(pk),
            vehicle_id=code,
            meter_ids=tuple(meter_ids.split(",")),
            ac_kwh=round(float(ac_kwh), 4),
            dc_kwh=round(float(dc_kwh), 4),
            efficiency_pct=None if efficiency is None else round(float(efficiency), 2),
            status=status,
        )
        for pk, code, meter_ids, ac_kwh, dc_kwh, efficiency, status in rows
    ]
