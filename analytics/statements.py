"""The SQL of every analytics read: one literal text per query per backend, built once at import.

`SQL[(query, vendor)]` is the whole statement (`vendor`: "postgresql" or "sqlite"); the selectors
only pick one and pass parameters, never edit it. Each text is assembled here, at import, from
named pieces: table and column names from the models' `_meta` (`telemetry.streams` for the two
streams, `fleet.models` for vehicles, meters and assignments), the status rule from
`PerformanceStatus`, and per backend the few expressions the two dialects spell differently
(`_Dialect`). analytics/tests/sql_snapshots.md holds the full text of each statement (checked by
test_sql_snapshots.py): read the SQL there.

Every value is a named parameter (`%(start)s`); a literal percent sign is therefore doubled
(`strftime('%%s', …)`). The parameters every statement takes:

- `%(threshold)s` (percent) and `%(min_charge_kwh)s` (> 0, so AC > 0 wherever it divides): the
  status rule's;
- per vehicle: `%(start)s`, `%(end)s` (the window) and the parts to read, one row each of
  (source, device, lo, hi) with `source` an index of `VEHICLE_SOURCES` — on PostgreSQL four
  arrays `%(source)s`, `%(device)s`, `%(lo)s`, `%(hi)s`; on SQLite one JSON array `%(parts)s`;
- fleet: `%(start)s`, `%(until)s` (the rollup hours [start, until)), `%(depot)s` (only the
  vehicles of that depot; '' for all) and `%(vehicles)s` (only these vehicle keys: an array on
  PostgreSQL, a JSON array on SQLite; null for all); retired vehicles are never counted; the
  list adds `%(limit)s`, `%(offset)s`;
- series: `%(buckets)s` (how many), `%(origin)s` (epoch seconds of the first) and `%(width)s`
  (seconds).
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.db import models

from fleet.models import Meter, MeterAssignment, Vehicle
from telemetry.streams import METER_STREAM, VEHICLE_STREAM, Stream

VENDORS = ("postgresql", "sqlite")


class PerformanceStatus(models.TextChoices):
    OK = "OK", "efficiency at or above the threshold"
    FAULT_DETECTED = "FAULT_DETECTED", "efficiency below the threshold"
    ANOMALY = "ANOMALY", "more DC delivered than AC consumed (a sensor or mapping fault)"
    IDLE = "IDLE", "less AC than the minimum charge: nothing charged, nothing to judge"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA", "no meter reading or no vehicle reading in the window"


class AttributionVerdict(models.TextChoices):
    CHARGER_SUSPECTED = "CHARGER_SUSPECTED", "a meter low with two or more vehicles"
    VEHICLE_SUSPECTED = "VEHICLE_SUSPECTED", "a vehicle low on two or more meters"


# --- The status rule, the one definition ---------------------------------------------------------

# Judged in SQL only, over a relation with the columns ac_kwh, dc_kwh, ac_readings and
# dc_readings. The first status whose condition holds; else STATUS_OTHERWISE. No meter or no
# vehicle reading → INSUFFICIENT_DATA; AC below the minimum → IDLE (no efficiency); DC > AC →
# ANOMALY; efficiency below the threshold (0 % when AC came with no DC) → FAULT_DETECTED; else OK.
EFFICIENCY = "100.0 * dc_kwh / ac_kwh"
STATUS_RULE: tuple[tuple[PerformanceStatus, str], ...] = (
    (PerformanceStatus.INSUFFICIENT_DATA, "ac_readings = 0 OR dc_readings = 0"),
    (PerformanceStatus.IDLE, "ac_kwh < %(min_charge_kwh)s"),
    (PerformanceStatus.ANOMALY, "dc_kwh > ac_kwh"),
    (PerformanceStatus.FAULT_DETECTED, f"{EFFICIENCY} < %(threshold)s"),
)
STATUS_OTHERWISE = PerformanceStatus.OK
# The statuses with no efficiency to report (its column is null).
WITHOUT_EFFICIENCY = (PerformanceStatus.INSUFFICIENT_DATA, PerformanceStatus.IDLE)

if sorted([*(status for status, _ in STATUS_RULE), STATUS_OTHERWISE]) != sorted(PerformanceStatus):
    raise TypeError("STATUS_RULE must judge every PerformanceStatus but STATUS_OTHERWISE, once")


def _quoted(value: str) -> str:
    return f"'{value}'"


_UNJUDGED = " OR ".join(
    f"({condition})" for status, condition in STATUS_RULE if status in WITHOUT_EFFICIENCY
)
# The two columns every answer selects: efficiency (null when there is none) and status.
_JUDGEMENT = (
    f"CASE WHEN {_UNJUDGED} THEN NULL ELSE {EFFICIENCY} END AS efficiency,\n    CASE "
    + "\n         ".join(f"WHEN {when} THEN {_quoted(status)}" for status, when in STATUS_RULE)
    + f"\n         ELSE {_quoted(STATUS_OTHERWISE)} END AS status"
)
_FAULT = _quoted(PerformanceStatus.FAULT_DETECTED)
_CHARGER = _quoted(AttributionVerdict.CHARGER_SUSPECTED)
_VEHICLE = _quoted(AttributionVerdict.VEHICLE_SUSPECTED)


# --- Names: tables and columns from the models ---------------------------------------------------


def _column(model: type[models.Model], field: str) -> str:
    return model._meta.get_field(field).column


_ASSIGNMENTS = MeterAssignment._meta.db_table
_A_VEHICLE = _column(MeterAssignment, "vehicle")
_A_METER = _column(MeterAssignment, "meter")
_A_FROM = _column(MeterAssignment, "valid_from")
_A_TO = _column(MeterAssignment, "valid_to")
_VEHICLES, _VEHICLE_PK, _VEHICLE_CODE = (
    VEHICLE_STREAM.registry,
    Vehicle._meta.pk.column,
    VEHICLE_STREAM.registry_id,
)
_V_RETIRED = _column(Vehicle, "retired_at")
_V_DEPOT = _column(Vehicle, "depot")
_METERS, _METER_PK, _METER_CODE = (
    METER_STREAM.registry,
    Meter._meta.pk.column,
    METER_STREAM.registry_id,
)


@dataclass(frozen=True)
class _Names:
    """The columns of one stream the figures read."""

    history: str  # table
    hourly: str  # table
    device: str  # device column of history and rollups
    at: str  # time column of history
    hour: str  # hour column of the rollups
    energy: str  # energy column of history
    hourly_energy: str  # its sum in the rollups
    hourly_count: str  # the rollups' reading count
    period_device: str  # the column of `periods` (below) holding this stream's device


def _names(stream: Stream, *, period_device: str) -> _Names:
    energy = _column(stream.history_model, "energy_kwh")
    return _Names(
        history=stream.history,
        hourly=stream.hourly,
        device=stream.device_column,
        at=_column(stream.history_model, "recorded_at"),
        hour=_column(stream.hourly_model, "hour"),
        energy=energy,
        hourly_energy=stream.rollup_of(energy),
        hourly_count=stream.rollup_of(None),
        period_device=period_device,
    )


_AC = _names(METER_STREAM, period_device="meter_pk")
_DC = _names(VEHICLE_STREAM, period_device="vehicle_pk")
_TEMPERATURE = _column(VEHICLE_STREAM.history_model, "battery_temp_c")
_HOURLY_TEMPERATURE = VEHICLE_STREAM.rollup_of(_TEMPERATURE)


# --- What the two backends spell differently -----------------------------------------------------


@dataclass(frozen=True)
class _Dialect:
    vendor: str
    floor: Callable[[str], str]  # the start of the UTC hour of a time expression
    next: Callable[[str], str]  # the start of the next UTC hour
    least: str
    greatest: str
    bucket: Callable[[str], str]  # the bucket index of a time: (epoch seconds − origin) / width
    meter_list: str  # the meter ids of `p` (periods) ⋈ `m` (meters), oldest first, comma-separated
    lateral: bool  # fleet edges: probe the index per period with CROSS JOIN LATERAL
    wanted: str  # the per-vehicle parts: rows of (source, device, lo, hi) from the parameters


_DIALECTS = {
    "postgresql": _Dialect(
        vendor="postgresql",
        floor=lambda x: f"date_trunc('hour', {x})",
        next=lambda x: f"(date_trunc('hour', {x}) + interval '1 hour')",
        least="least",
        greatest="greatest",
        bucket=lambda x: (
            f"CAST(floor((extract(epoch FROM {x}) - %(origin)s) / %(width)s) AS integer)"
        ),
        meter_list=f"string_agg(m.{_METER_CODE}, ',' ORDER BY p.period_from)",
        lateral=True,
        wanted="SELECT * FROM unnest(%(source)s::integer[], %(device)s::bigint[], "
        "%(lo)s::timestamptz[], %(hi)s::timestamptz[]) AS w(source, device, lo, hi)",
    ),
    "sqlite": _Dialect(
        vendor="sqlite",
        floor=lambda x: f"strftime('%%Y-%%m-%%d %%H:00:00', {x})",
        next=lambda x: f"strftime('%%Y-%%m-%%d %%H:00:00', {x}, '+1 hour')",
        least="min",
        greatest="max",
        bucket=lambda x: f"((CAST(strftime('%%s', {x}) AS INTEGER) - %(origin)s) / %(width)s)",
        meter_list=f"group_concat(m.{_METER_CODE}, ',')",
        lateral=False,
        wanted="SELECT json_extract(value, '$[0]') AS source, "
        "json_extract(value, '$[1]') AS device, json_extract(value, '$[2]') AS lo, "
        "json_extract(value, '$[3]') AS hi FROM json_each(%(parts)s)",
    ),
}

# One row per bucket index 0 … %(buckets)s − 1 (both backends know recursive CTEs).
_BUCKETS_CTE = """buckets(n) AS (
    SELECT 0 UNION ALL SELECT n + 1 FROM buckets WHERE n + 1 < %(buckets)s
)"""


# --- Per vehicle ---------------------------------------------------------------------------------

# The vehicle and its assignments meeting [start, end) (the GiST index of
# fleet_meterassignment_vehicle_no_overlap, or the (vehicle, valid_from) index). Raw SQL: compiling
# the equivalent ORM query (a FilteredRelation) was a third of the endpoint's CPU time.
_VEHICLE_PERIODS = f"""
SELECT v.{_VEHICLE_PK}, a.{_A_METER}, m.{_METER_CODE}, a.{_A_FROM}, a.{_A_TO}
FROM {_VEHICLES} v
LEFT JOIN {_ASSIGNMENTS} a
    ON a.{_A_VEHICLE} = v.{_VEHICLE_PK} AND a.{_A_FROM} < %(end)s
    AND (a.{_A_TO} IS NULL OR a.{_A_TO} > %(start)s)
LEFT JOIN {_METERS} m ON m.{_METER_PK} = a.{_A_METER}
WHERE v.{_VEHICLE_CODE} = %(vehicle)s
ORDER BY a.{_A_FROM}
"""

# The parts a per-vehicle answer reads, by index (`source` of the parameters): (of the meters' AC
# stream, from the rollups). Each part is one device's range [lo, hi): whole hours of its rollups
# or a partial hour of its history.
VEHICLE_SOURCES = ((True, False), (True, True), (False, False), (False, True))


def _vehicle_part(index: int) -> str:
    """The rows of one source's parts: readings of history, or hours of the rollups, each with
    (kind: 0 AC or 1 DC, at, kwh, readings, temp_sum)."""
    is_ac, rollup = VEHICLE_SOURCES[index]
    names, kind = (_AC, 0) if is_ac else (_DC, 1)
    if rollup:
        time, table, window = names.hour, names.hourly, ""
        figures = f"r.{names.hourly_energy}, r.{names.hourly_count}"
        temperature = "0.0" if is_ac else f"r.{_HOURLY_TEMPERATURE}"
    else:
        # The window's constant bounds let PostgreSQL prune history to its partitions.
        time, table = names.at, names.history
        window = f"\n        AND r.{time} >= %(start)s AND r.{time} < %(end)s"
        figures = f"r.{names.energy}, 1"
        temperature = "0.0" if is_ac else f"r.{_TEMPERATURE}"
    return f"""SELECT {kind}, r.{time}, {figures}, {temperature}
    FROM wanted w
    JOIN {table} r ON r.{names.device} = w.device AND r.{time} >= w.lo AND r.{time} < w.hi{window}
    WHERE w.source = {index}"""


def _vehicle_figures(dialect: _Dialect, *, bucketed: bool) -> str:
    """Every bucket's sums of both streams over the parts given, judged (one bucket unless
    `bucketed`). Each part is an index range scan (a nested loop over the few parts); the rows
    are summed once, at the end."""
    rows = "\n    UNION ALL\n    ".join(
        _vehicle_part(index) for index in range(len(VEHICLE_SOURCES))
    )
    if bucketed:
        head, source = (
            f"WITH RECURSIVE {_BUCKETS_CTE},\n",
            (f"buckets b LEFT JOIN parts p ON {dialect.bucket('p.at')} = b.n\n    GROUP BY b.n"),
        )
        bucket = "b.n"
    else:  # one row: the window
        head, source, bucket = "WITH ", "parts p", "0"
    return f"""{head}wanted AS ({dialect.wanted}),
parts(kind, at, kwh, readings, temp_sum) AS (
    {rows}
),
sums AS (
    SELECT {bucket} AS bucket,
           coalesce(sum(CASE WHEN p.kind = 0 THEN p.kwh END), 0.0) AS ac_kwh,
           coalesce(sum(CASE WHEN p.kind = 0 THEN p.readings END), 0) AS ac_readings,
           coalesce(sum(CASE WHEN p.kind = 1 THEN p.kwh END), 0.0) AS dc_kwh,
           coalesce(sum(CASE WHEN p.kind = 1 THEN p.readings END), 0) AS dc_readings,
           sum(CASE WHEN p.kind = 1 THEN p.temp_sum END) AS temp_sum
    FROM {source}
)
SELECT bucket, ac_kwh, ac_readings, dc_kwh, dc_readings, temp_sum,
    {_JUDGEMENT}
FROM sums ORDER BY bucket
"""


# --- Fleet: rollups, and raw readings at assignment edges ----------------------------------------

# The vehicles a fleet answer covers: not retired, of depot %(depot)s unless it is '', and only
# those of %(vehicles)s unless it is null (a page of the admin's list). `wanted_vehicles` is
# defined per backend (an array on PostgreSQL, a JSON array on SQLite).
_WANTED_VEHICLES = {
    "postgresql": "wanted_vehicles AS (SELECT unnest(%(vehicles)s::bigint[]) AS pk)",
    "sqlite": "wanted_vehicles AS (SELECT value AS pk FROM json_each(%(vehicles)s))",
}
_FLEET_CTE = f"""fleet AS (
    SELECT {_VEHICLE_PK} AS vehicle_pk, {_VEHICLE_CODE} AS code, {_V_DEPOT} AS depot
    FROM {_VEHICLES}
    WHERE {_V_RETIRED} IS NULL AND (%(depot)s = '' OR {_V_DEPOT} = %(depot)s)
      AND (%(vehicles)s IS NULL OR {_VEHICLE_PK} IN (SELECT pk FROM wanted_vehicles))
)"""


def _periods_cte(dialect: _Dialect) -> str:
    """The fleet's vehicles and their assignments meeting the rollup hours [start, until)
    (index fleet_assignment_meter_from)."""
    return f"""{_WANTED_VEHICLES[dialect.vendor]},
{_FLEET_CTE},
periods AS (
    SELECT {_A_VEHICLE} AS vehicle_pk, {_A_METER} AS meter_pk,
           {_A_FROM} AS period_from, {_A_TO} AS period_to
    FROM {_ASSIGNMENTS}
    WHERE {_A_FROM} < %(until)s AND ({_A_TO} IS NULL OR {_A_TO} > %(start)s)
      AND {_A_VEHICLE} IN (SELECT vehicle_pk FROM fleet)
)"""


def _hours_in_periods(dialect: _Dialect, names: _Names) -> str:
    """The rollup hours of one stream wholly inside each period (index on the rollups' hour, or
    their (device, hour) key)."""
    return f"""
    SELECT p.vehicle_pk, p.meter_pk, h.{names.hourly_energy} AS kwh,
           h.{names.hourly_count} AS readings, h.{names.hour} AS at
    FROM periods p
    JOIN {names.hourly} h ON h.{names.device} = p.{names.period_device}
    WHERE h.{names.hour} >= %(start)s AND h.{names.hour} < %(until)s
      AND h.{names.hour} >= p.period_from
      AND (p.period_to IS NULL OR {dialect.next(f"h.{names.hour}")} <= p.period_to)"""


def _edges(dialect: _Dialect, names: _Names) -> str:
    """Raw readings of one stream in the partial hours where an assignment starts (10:12 →
    [10:12, 11:00)) or ends ([14:00, 14:30)) off the hour; the end's hour is skipped when the
    start's covered it.

    Few periods have such edges; each is an index range scan on (device, recorded_at) in the
    window's partitions (the constant bounds let the planner prune to them). On PostgreSQL a
    LATERAL subquery makes it scan per edge: a plain join let it hash-join the whole window's
    readings (0.8 s on a fleet-day). SQLite has no LATERAL and probes the index per row of its
    own accord. Each edge is one range, so the index scan reads just that partial hour.
    """
    at = f"r.{names.at}"
    floor_from, floor_to = dialect.floor("e.period_from"), dialect.floor("e.period_to")
    start_edge = (
        f"e.period_from > {floor_from} AND e.period_from >= %(start)s",
        f"{at} >= e.period_from AND {at} < {dialect.least}("
        f"{dialect.next('e.period_from')}, coalesce(e.period_to, %(until)s), %(until)s)",
    )
    end_edge = (
        f"e.period_to > {floor_to}\n      AND NOT (e.period_from > {floor_from} "
        f"AND {floor_to} = {floor_from})",
        f"{at} >= {dialect.greatest}({floor_to}, e.period_from, %(start)s) "
        f"AND {at} < {dialect.least}(e.period_to, %(until)s)",
    )
    match = f"{at} >= %(start)s AND {at} < %(until)s"  # the window's partitions
    device = f"r.{names.device} = e.{names.period_device}"
    edges = []
    for which, bounds in (start_edge, end_edge):
        if dialect.lateral:
            edges.append(f"""
    SELECT e.vehicle_pk, e.meter_pk, r.kwh, 1, r.at
    FROM periods e
    CROSS JOIN LATERAL (
        SELECT r.{names.energy} AS kwh, {at} AS at FROM {names.history} r
        WHERE {device}
          AND {match}
          AND {bounds}
        OFFSET 0  -- keeps the planner from flattening this back into a hash join
    ) r
    WHERE {which}""")
        else:
            edges.append(f"""
    SELECT e.vehicle_pk, e.meter_pk, r.{names.energy}, 1, {at}
    FROM periods e
    JOIN {names.history} r ON {device}
        AND {match}
        AND {bounds}
    WHERE {which}""")
    return "\n    UNION ALL".join(edges)


def _ac_parts(dialect: _Dialect) -> str:
    """The AC of each period: a meter's hours wholly inside it from the rollups, its partial
    hours from raw readings (`at`: the hour or the reading's time)."""
    return f"""ac_parts AS ({_hours_in_periods(dialect, _AC)}
    UNION ALL{_edges(dialect, _AC)}
)"""


def _figures_cte(dialect: _Dialect) -> str:
    """Every vehicle with its figures over the rollup hours [start, until), judged (index on the
    vehicle rollups' hour, or their key, for the DC hours)."""
    return f"""WITH {_periods_cte(dialect)},
{_ac_parts(dialect)},
dc AS (
    SELECT {_DC.device} AS vehicle_pk, sum({_DC.hourly_energy}) AS dc_kwh,
           sum({_DC.hourly_count}) AS dc_readings, sum({_HOURLY_TEMPERATURE}) AS temp_sum
    FROM {_DC.hourly}
    WHERE {_DC.hour} >= %(start)s AND {_DC.hour} < %(until)s
      AND {_DC.device} IN (SELECT vehicle_pk FROM fleet)
    GROUP BY {_DC.device}
),
ac AS (
    SELECT vehicle_pk, sum(kwh) AS ac_kwh, sum(readings) AS ac_readings
    FROM ac_parts
    GROUP BY vehicle_pk
),
meters AS (
    SELECT p.vehicle_pk, {dialect.meter_list} AS meter_ids
    FROM periods p JOIN {_METERS} m ON m.{_METER_PK} = p.meter_pk
    GROUP BY p.vehicle_pk
),
sums AS (
    SELECT v.code, v.depot, meters.meter_ids,
           coalesce(ac.ac_kwh, 0.0) AS ac_kwh, coalesce(ac.ac_readings, 0) AS ac_readings,
           coalesce(dc.dc_kwh, 0.0) AS dc_kwh, coalesce(dc.dc_readings, 0) AS dc_readings,
           dc.temp_sum
    FROM fleet v
    LEFT JOIN ac ON ac.vehicle_pk = v.vehicle_pk
    LEFT JOIN dc ON dc.vehicle_pk = v.vehicle_pk
    LEFT JOIN meters ON meters.vehicle_pk = v.vehicle_pk
),
figures AS (
    SELECT sums.*,
    {_JUDGEMENT}
    FROM sums
)"""


def _fleet_inefficient(dialect: _Dialect) -> str:
    """FAULT_DETECTED vehicles, worst first, a page of them. The count comes with the page (LEFT
    JOIN: a page past the end still reports it); `figures` is referenced twice, so PostgreSQL
    computes it once (a materialized CTE)."""
    return f"""{_figures_cte(dialect)},
faulty AS (SELECT * FROM figures WHERE status = {_FAULT}),
page AS (
    SELECT * FROM faulty ORDER BY efficiency, code LIMIT %(limit)s OFFSET %(offset)s
)
SELECT total.n, page.code, page.meter_ids, page.ac_kwh, page.ac_readings, page.dc_kwh,
       page.dc_readings, page.temp_sum, page.efficiency, page.status
FROM (SELECT count(*) AS n FROM faulty) total
LEFT JOIN page ON 1 = 1
ORDER BY page.efficiency, page.code
"""


def _fleet_summary(dialect: _Dialect) -> str:
    return f"""{_figures_cte(dialect)}
SELECT status, count(*), sum(ac_kwh), sum(dc_kwh)
FROM figures
GROUP BY status
"""


def _fleet_depots(dialect: _Dialect) -> str:
    """The summary's counts and totals per depot ('' for vehicles without one)."""
    return f"""{_figures_cte(dialect)}
SELECT depot, status, count(*), sum(ac_kwh), sum(dc_kwh)
FROM figures
GROUP BY depot, status
ORDER BY depot, status
"""


def _fleet_vehicle_figures(dialect: _Dialect) -> str:
    """Every vehicle an assignment maps in the window, so alarms follow the one status rule."""
    return f"""{_figures_cte(dialect)}
SELECT v.{_VEHICLE_PK}, figures.code, figures.meter_ids, figures.ac_kwh, figures.dc_kwh,
       figures.efficiency, figures.status
FROM figures JOIN {_VEHICLES} v ON v.{_VEHICLE_CODE} = figures.code
WHERE figures.meter_ids IS NOT NULL
"""


def _fleet_series(dialect: _Dialect) -> str:
    """The fleet's AC (assigned meters, exact at assignment edges) and DC (every vehicle) per
    bucket."""
    return f"""WITH RECURSIVE {_BUCKETS_CTE},
{_periods_cte(dialect)},
{_ac_parts(dialect)},
ac AS (
    SELECT {dialect.bucket("at")} AS bucket, sum(kwh) AS ac_kwh, sum(readings) AS ac_readings
    FROM ac_parts GROUP BY 1
),
dc AS (
    SELECT {dialect.bucket(_DC.hour)} AS bucket, sum({_DC.hourly_energy}) AS dc_kwh,
           sum({_DC.hourly_count}) AS dc_readings, sum({_HOURLY_TEMPERATURE}) AS temp_sum
    FROM {_DC.hourly}
    WHERE {_DC.hour} >= %(start)s AND {_DC.hour} < %(until)s
      AND {_DC.device} IN (SELECT vehicle_pk FROM fleet)
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
SELECT bucket, ac_kwh, ac_readings, dc_kwh, dc_readings, temp_sum,
    {_JUDGEMENT}
FROM sums ORDER BY bucket
"""


def _fleet_attribution(dialect: _Dialect) -> str:
    """Every (vehicle, meter) pairing of the window with the AC of the meter and the DC of the
    vehicle while that assignment held (rollup hours wholly inside it, raw readings of its partial
    hours on both sides), judged by the one rule; then the meters low (FAULT_DETECTED) with two or
    more vehicles and the vehicles low on two or more meters, each with all its pairings."""
    return f"""WITH {_periods_cte(dialect)},
{_ac_parts(dialect)},
dc_parts AS ({_hours_in_periods(dialect, _DC)}
    UNION ALL{_edges(dialect, _DC)}
),
ac AS (
    SELECT vehicle_pk, meter_pk, sum(kwh) AS ac_kwh, sum(readings) AS ac_readings
    FROM ac_parts GROUP BY vehicle_pk, meter_pk
),
dc AS (
    SELECT vehicle_pk, meter_pk, sum(kwh) AS dc_kwh, sum(readings) AS dc_readings
    FROM dc_parts GROUP BY vehicle_pk, meter_pk
),
sums AS (
    SELECT pairs.vehicle_pk, pairs.meter_pk,
           coalesce(ac.ac_kwh, 0.0) AS ac_kwh, coalesce(ac.ac_readings, 0) AS ac_readings,
           coalesce(dc.dc_kwh, 0.0) AS dc_kwh, coalesce(dc.dc_readings, 0) AS dc_readings
    FROM (SELECT DISTINCT vehicle_pk, meter_pk FROM periods) pairs
    LEFT JOIN ac ON ac.vehicle_pk = pairs.vehicle_pk AND ac.meter_pk = pairs.meter_pk
    LEFT JOIN dc ON dc.vehicle_pk = pairs.vehicle_pk AND dc.meter_pk = pairs.meter_pk
),
judged AS (
    SELECT sums.*,
    {_JUDGEMENT}
    FROM sums
),
low AS (SELECT vehicle_pk, meter_pk FROM judged WHERE status = {_FAULT}),
chargers AS (
    SELECT meter_pk FROM low GROUP BY meter_pk HAVING count(DISTINCT vehicle_pk) >= 2
),
vehicles AS (
    SELECT vehicle_pk FROM low GROUP BY vehicle_pk HAVING count(DISTINCT meter_pk) >= 2
),
suspects AS (
    SELECT {_CHARGER} AS verdict, j.* FROM judged j JOIN chargers c USING (meter_pk)
    UNION ALL
    SELECT {_VEHICLE} AS verdict, j.* FROM judged j JOIN vehicles w USING (vehicle_pk)
)
SELECT s.verdict, v.{_VEHICLE_CODE}, m.{_METER_CODE}, s.ac_kwh, s.ac_readings, s.dc_kwh,
       s.dc_readings, NULL AS temp_sum, s.efficiency, s.status
FROM suspects s
JOIN {_VEHICLES} v ON v.{_VEHICLE_PK} = s.vehicle_pk
JOIN {_METERS} m ON m.{_METER_PK} = s.meter_pk
ORDER BY s.verdict, CASE WHEN s.verdict = {_CHARGER} THEN m.{_METER_CODE}
                         ELSE v.{_VEHICLE_CODE} END, v.{_VEHICLE_CODE}, m.{_METER_CODE}
"""


def _statements(dialect: _Dialect) -> dict[str, str]:
    return {
        "vehicle_periods": _VEHICLE_PERIODS,
        "vehicle_performance": _vehicle_figures(dialect, bucketed=False),
        "vehicle_series": _vehicle_figures(dialect, bucketed=True),
        "fleet_inefficient": _fleet_inefficient(dialect),
        "fleet_summary": _fleet_summary(dialect),
        "fleet_depots": _fleet_depots(dialect),
        "fleet_series": _fleet_series(dialect),
        "fleet_attribution": _fleet_attribution(dialect),
        "fleet_vehicle_figures": _fleet_vehicle_figures(dialect),
    }


# Every statement, by (query, vendor): fixed from here on.
SQL: dict[tuple[str, str], str] = {
    (query, vendor): sql
    for vendor in VENDORS
    for query, sql in _statements(_DIALECTS[vendor]).items()
}
