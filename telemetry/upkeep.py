"""Repair and housekeeping of the derived telemetry tables: live rows, hourly rollups, partitions.

History is the source of truth. The live rows and the hourly rollups are maintained by ingestion
in the same transaction as the history rows; these services recompute them from history when
something went wrong (a manual edit, a restored backup, a bug), chunk by chunk, one transaction per
chunk, so they can be interrupted and re-run at any time.

Reads, deletes and counts go through the ORM (the models of `telemetry.streams`). Raw SQL is
kept for the two set-based writes the ORM cannot express: the live-row upsert from history
(`INSERT … SELECT … ON CONFLICT … DO UPDATE … WHERE`, with a `LATERAL` newest-row scan on
PostgreSQL, measured below) and the rollup `INSERT … SELECT` of one hour (its SELECT is built by the
ORM; rows never travel through Python, a fleet-hour is 100,000s of them).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, DateTimeField, Max, Min, QuerySet, Sum, Value
from django.utils import timezone

from api.times import HOUR, hour_ceil, hour_floor
from telemetry.partitions import (
    Partition,
    forget_known_partitions,
    partitioning_enabled,
    partitions_drop,
    partitions_ensure,
    partitions_list,
)
from telemetry.streams import STREAMS, Stream


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
        devices_by_pk = stream.device_model.objects.order_by("pk").values_list("pk", flat=True)
        last_pk = 0
        while True:
            pks = list(devices_by_pk.filter(pk__gt=last_pk)[:chunk_size])
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
    pk = stream.device_model._meta.pk.column
    if connection.vendor == "postgresql":
        # Newest row per device by a backward index scan of each partition's primary key: a
        # handful of page reads per device, where a GROUP BY would read all of its history.
        newest = f"""
            SELECT d.{pk}, h.recorded_at, {", ".join(f"h.{c}" for c in stream.columns)}
            FROM {stream.registry} d
            CROSS JOIN LATERAL (
                SELECT recorded_at, {", ".join(stream.columns)} FROM {history}
                WHERE {device} = d.{pk} ORDER BY recorded_at DESC LIMIT 1
            ) h
            WHERE d.{pk} BETWEEN %s AND %s
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
    for stream in STREAMS:
        for model, field in ((stream.history_model, "recorded_at"), (stream.hourly_model, "hour")):
            span = model.objects.aggregate(first=Min(field), last=Max(field))
            if span["first"] is not None:
                firsts.append(span["first"])
                lasts.append(span["last"])
    if not firsts:
        return None
    return hour_floor(min(firsts)), hour_floor(max(lasts)) + HOUR


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
        hour += HOUR
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
    deleted = written = 0
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        for stream in STREAMS:
            if connection.vendor == "postgresql":
                # Ingestion adds to these rows with ON CONFLICT; waiting for this transaction keeps
                # its additions from being lost or from colliding with the re-inserted rows.
                cursor.execute(f"LOCK TABLE {stream.hourly} IN SHARE ROW EXCLUSIVE MODE")
            deleted += _rollups_between(stream, hour, hour + HOUR).delete()[0]
            select, params = _hour_sums(stream, hour).query.sql_with_params()
            cursor.execute(
                f"INSERT INTO {stream.hourly} "
                f"({stream.device_column}, hour, {', '.join(stream.rollup_columns)}) {select}",
                params,
            )
            written += max(cursor.rowcount, 0)
    return deleted, written


def _hour_sums(stream: Stream, hour: datetime) -> QuerySet:
    """(device, hour, *rollup columns) of the history rows of `hour`, one row per device."""
    fields = {field.column: field.name for field in stream.history_model._meta.concrete_fields}
    sums = {
        f"rollup_{position}": Sum(fields[source]) if source else Count("*")
        for position, (_, source) in enumerate(stream.rollup_sums)
    }
    return (
        stream.history_model.objects.filter(recorded_at__gte=hour, recorded_at__lt=hour + HOUR)
        .order_by()
        .values("device")
        .annotate(rollup_hour=Value(hour, output_field=DateTimeField()), **sums)
    )


def _rollups_between(stream: Stream, start: datetime, end: datetime) -> QuerySet:
    return stream.hourly_model.objects.filter(hour__gte=start, hour__lt=end)


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
        sorted(
            day for day in wanted if any((stream.history, day) not in present for stream in STREAMS)
        )
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
        with transaction.atomic(durable=True):
            for stream in STREAMS:
                rollups = _rollups_between(stream, start, start + timedelta(days=1))
                rollup_rows_deleted += rollups.delete()[0]
            partitions_drop(partitions=of_day)
    return PartitionUpkeepResult(missing, old, rollup_rows_deleted, False)


def _rollup_rows_of(partitions: tuple[Partition, ...]) -> int:
    total = 0
    for day in sorted({partition.day for partition in partitions}):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for stream in STREAMS:
            total += _rollups_between(stream, start, start + timedelta(days=1)).count()
    return total
