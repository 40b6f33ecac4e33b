"""Repair and housekeeping of the derived telemetry tables: live rows, hourly rollups, partitions.

History is the source of truth. The live rows and the hourly rollups are maintained by ingestion
in the same transaction as the history rows; these services recompute them from history when
something went wrong (a manual edit, a restored backup, a bug), chunk by chunk, one transaction per
chunk, so they can be interrupted and re-run at any time.

The statements are raw SQL because they are set-based upserts and aggregate copies that the ORM
cannot express (`INSERT … SELECT … ON CONFLICT … DO UPDATE … WHERE`), written once for both backends
where the syntax allows and split where it does not (SQLite has no LATERAL and no date_trunc).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from fleet.models import Meter, Vehicle
from telemetry.partitions import (
    HISTORY_TABLES,
    Partition,
    forget_known_partitions,
    partitioning_enabled,
    partitions_drop,
    partitions_ensure,
    partitions_list,
)
from telemetry.services import METER_STREAM, VEHICLE_STREAM, Stream

STREAMS = (METER_STREAM, VEHICLE_STREAM)
_DEVICE_TABLES = {METER_STREAM: Meter._meta.db_table, VEHICLE_STREAM: Vehicle._meta.db_table}
ONE_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class LiveStatusRebuildResult:
    devices: int
    repaired: int
    seconds: float


@dataclass(frozen=True)
class RollupRebuildResult:
    since: datetime | None
    until: datetime | None
    hours: int
    rows_deleted: int
    rows_written: int
    seconds: float


@dataclass(frozen=True)
class PartitionUpkeepResult:
    created: tuple[date, ...]
    dropped: tuple[Partition, ...]
    rollup_rows_deleted: int
    dry_run: bool


# --- Live status ----------------------------------------------------------------------------------


def live_status_rebuild(
    *, chunk_size: int = 1000, on_chunk: Callable[[int], None] | None = None
) -> LiveStatusRebuildResult:
    """Set every device's live row to its newest history row; return how many rows changed.

    Devices are taken in chunks of `chunk_size` primary keys, one transaction per chunk. A device
    with no history keeps its live row (retention may have dropped its readings). A live row that
    already matches is not written; a changed one gets `received_at` = the reading's time unless its
    time was already right (then its `received_at` is kept), so a repaired device never looks
    fresher than it is.
    """
    started = time.perf_counter()
    devices = repaired = 0
    for stream in STREAMS:
        last_pk = 0
        while True:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id FROM {_DEVICE_TABLES[stream]} WHERE id > %s ORDER BY id LIMIT %s",
                    [last_pk, chunk_size],
                )
                pks = [row[0] for row in cursor.fetchall()]
            if not pks:
                break
            repaired += _live_chunk_rebuild(stream, pks[0], pks[-1])
            devices += len(pks)
            last_pk = pks[-1]
            if on_chunk is not None:
                on_chunk(len(pks))
    return LiveStatusRebuildResult(
        devices=devices, repaired=repaired, seconds=time.perf_counter() - started
    )


def _live_chunk_rebuild(stream: Stream, first_pk: int, last_pk: int) -> int:
    device, status, history = stream.device_column, stream.status, stream.history
    columns = ("recorded_at", *stream.columns)
    if connection.vendor == "postgresql":
        # Newest row per device by a backward index scan of each partition's primary key: a
        # handful of page reads per device, where a GROUP BY would read all of its history.
        newest = f"""
            SELECT d.id, h.recorded_at, {", ".join(f"h.{c}" for c in stream.columns)}
            FROM {_DEVICE_TABLES[stream]} d
            CROSS JOIN LATERAL (
                SELECT recorded_at, {", ".join(stream.columns)} FROM {history}
                WHERE {device} = d.id ORDER BY recorded_at DESC LIMIT 1
            ) h
            WHERE d.id BETWEEN %s AND %s
        """
    else:
        newest = f"""
            SELECT h.{device}, h.recorded_at, {", ".join(f"h.{c}" for c in stream.columns)}
            FROM {history} h
            WHERE h.{device} BETWEEN %s AND %s AND h.recorded_at = (
                SELECT max(x.recorded_at) FROM {history} x WHERE x.{device} = h.{device}
            )
        """
    differs = " OR ".join(f"{status}.{c} IS DISTINCT FROM excluded.{c}" for c in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
    sql = f"""
        INSERT INTO {status} ({device}, {", ".join(columns)}, received_at)
        SELECT n.*, n.recorded_at FROM ({newest}) n
        WHERE true
        ON CONFLICT ({device}) DO UPDATE SET {updates},
            received_at = CASE WHEN {status}.recorded_at = excluded.recorded_at
                THEN {status}.received_at ELSE excluded.received_at END
        WHERE {differs}
    """
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Blocks ingestion's live upserts for this chunk only: without it a reading committed
            # after this statement's snapshot could be overwritten by an older history row.
            cursor.execute(f"LOCK TABLE {status} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(sql, [first_pk, last_pk])
        return max(cursor.rowcount, 0)


# --- Hourly rollups -------------------------------------------------------------------------------


def history_span() -> tuple[datetime, datetime] | None:
    """The whole hours that hold history or rollups: [first hour, last hour + 1 h), or None.

    Rollup rows count too, so that a default rebuild also removes rollups left without history.
    """
    firsts, lasts = [], []
    with connection.cursor() as cursor:
        for stream in STREAMS:
            for table, column in ((stream.history, "recorded_at"), (stream.hourly, "hour")):
                cursor.execute(f"SELECT min({column}), max({column}) FROM {table}")
                first, last = cursor.fetchone()
                if first is not None:
                    firsts.append(_aware(first))
                    lasts.append(_aware(last))
    if not firsts:
        return None
    return hour_floor(min(firsts)), hour_floor(max(lasts)) + ONE_HOUR


def rollups_rebuild(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> RollupRebuildResult:
    """Recompute the hourly rollups of [since, until) from history, one hour per transaction.

    `since` is rounded down and `until` up to whole hours; either defaults to the span of history
    and rollups (`history_span()`).
    Each hour is replaced in one transaction (delete, then insert the sums of its history rows), so
    an interrupted run leaves every hour either old or rebuilt, never half.
    """
    started = time.perf_counter()
    if since is None or until is None:
        span = history_span()
        if span is None and (since is None or until is None):
            return RollupRebuildResult(since, until, 0, 0, 0, time.perf_counter() - started)
        since = since or span[0]
        until = until or span[1]
    since = hour_floor(since)
    until = hour_ceil(until)
    hours = deleted = written = 0
    hour = since
    while hour < until:
        hour_deleted, hour_written = _rollup_hour_rebuild(hour)
        deleted += hour_deleted
        written += hour_written
        hours += 1
        hour += ONE_HOUR
        if on_chunk is not None:
            on_chunk(1)
    return RollupRebuildResult(
        since=since,
        until=until,
        hours=hours,
        rows_deleted=deleted,
        rows_written=written,
        seconds=time.perf_counter() - started,
    )


def _rollup_hour_rebuild(hour: datetime) -> tuple[int, int]:
    ops = connection.ops
    start, end = ops.adapt_datetimefield_value(hour), ops.adapt_datetimefield_value(hour + ONE_HOUR)
    if connection.vendor == "postgresql":
        hour_of = "date_trunc('hour', recorded_at, 'UTC')"
    else:
        # SQLite keeps datetimes as UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'.
        hour_of = "substr(recorded_at, 1, 13) || ':00:00'"
    deleted = written = 0
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        for stream in STREAMS:
            if connection.vendor == "postgresql":
                # Ingestion adds to these rows with ON CONFLICT; waiting for this transaction keeps
                # its additions from being lost or from colliding with the re-inserted rows.
                cursor.execute(f"LOCK TABLE {stream.hourly} IN SHARE ROW EXCLUSIVE MODE")
            cursor.execute(
                f"DELETE FROM {stream.hourly} WHERE hour >= %s AND hour < %s", [start, end]
            )
            deleted += max(cursor.rowcount, 0)
            columns = ", ".join(column for column, _ in stream.hourly_sums)
            sums = ", ".join(_aggregate(source) for _, source in stream.hourly_sums)
            cursor.execute(
                f"INSERT INTO {stream.hourly} ({stream.device_column}, hour, {columns}) "
                f"SELECT {stream.device_column}, {hour_of}, {sums} FROM {stream.history} "
                f"WHERE recorded_at >= %s AND recorded_at < %s GROUP BY 1, 2",
                [start, end],
            )
            written += max(cursor.rowcount, 0)
    return deleted, written


def _aggregate(source: str | None) -> str:
    """The SQL of one rollup column from `Stream.hourly_sums`: the summed column, None counts."""
    if source is None:
        return "count(*)"
    return source if "(" in source else f"sum({source})"


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    floor = hour_floor(moment)
    return floor if floor == moment else floor + ONE_HOUR


def _aware(value) -> datetime:
    if isinstance(value, str):  # SQLite without converters
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


# --- Partitions -----------------------------------------------------------------------------------


def partitions_upkeep(
    *, ahead_days: int, retention_days: int, dry_run: bool, today: date | None = None
) -> PartitionUpkeepResult:
    """Create the daily partitions of today .. today + `ahead_days` (UTC) that are missing; drop
    those of days before today − `retention_days`, with those days' rollup rows.

    Each dropped day is one transaction (its rollup rows and both history partitions), so an
    interrupted run leaves whole days. `dry_run` changes nothing and reports what it would do.
    """
    if not partitioning_enabled():
        return PartitionUpkeepResult((), (), 0, dry_run)
    today = today or timezone.now().astimezone(UTC).date()
    # The per-process cache may be stale (another process may have dropped tables): ask the catalog.
    forget_known_partitions()
    existing = partitions_list()
    present = {(partition.parent, partition.day) for partition in existing}
    wanted = {today + timedelta(days=offset) for offset in range(ahead_days + 1)}
    missing = tuple(
        sorted(day for day in wanted if any((t, day) not in present for t in HISTORY_TABLES))
    )
    cutoff = today - timedelta(days=retention_days)
    old = tuple(partition for partition in existing if partition.day < cutoff)
    if dry_run:
        return PartitionUpkeepResult(missing, old, _rollup_rows_of(old), True)

    if missing:
        partitions_ensure(days=set(missing))
    rollup_rows_deleted = 0
    for day in sorted({partition.day for partition in old}):
        of_day = [partition for partition in old if partition.day == day]
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        with transaction.atomic(durable=True), connection.cursor() as cursor:
            for stream in STREAMS:
                cursor.execute(
                    f"DELETE FROM {stream.hourly} WHERE hour >= %s AND hour < %s",
                    [start, start + timedelta(days=1)],
                )
                rollup_rows_deleted += max(cursor.rowcount, 0)
            partitions_drop(partitions=of_day)
    return PartitionUpkeepResult(missing, old, rollup_rows_deleted, False)


def _rollup_rows_of(partitions: tuple[Partition, ...]) -> int:
    days = sorted({partition.day for partition in partitions})
    if not days:
        return 0
    total = 0
    with connection.cursor() as cursor:
        for day in days:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            for stream in STREAMS:
                cursor.execute(
                    f"SELECT count(*) FROM {stream.hourly} WHERE hour >= %s AND hour < %s",
                    [start, start + timedelta(days=1)],
                )
                total += cursor.fetchone()[0]
    return total
