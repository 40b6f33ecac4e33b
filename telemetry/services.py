"""Ingestion: store readings in history, move live status forward, keep hourly rollups exact.

One request is one transaction. Per stream (meters, then vehicles) the history insert reports which
readings were new (`INSERT … ON CONFLICT DO NOTHING RETURNING`); only those move the live row
(forward only: `ON CONFLICT … DO UPDATE … WHERE stored.recorded_at < excluded.recorded_at`, which
`bulk_create(update_conflicts=True)` cannot say, Django ticket #34277) and add to the hourly
rollups. A replay therefore changes nothing and never double-counts. A replayed reading whose
values differ from the stored one is a conflict: the stored one stays, the conflict is counted
(response, log line, metrics).

One path: per stream, one store function per backend (`_store_postgres`: one statement fed by
external device ids; `_store_sqlite`: the same in four statements) stores all of the readings or,
when a device is unknown, none and names the unknown devices; `_store_stream` then registers them
(or rejects their readings) and runs the same store again. The tables and columns come from
`telemetry.streams`; the rendered statements are in `telemetry/tests/test_store_sql.py`.

Lock order: every statement touches its rows sorted by (device, time), meters before vehicles, so
concurrent requests for the same devices wait for each other instead of deadlocking.
"""

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from api.times import hour_floor
from telemetry import metrics
from telemetry.models import DeviceAPIKey
from telemetry.partitions import forget_known_partitions, partitions_ensure
from telemetry.schemas import ParsedReadings, Rejection
from telemetry.streams import STREAMS, Item, Stream

logger = logging.getLogger("telemetry.ingest")


class DeviceScopeError(PermissionError):
    """A device-scoped key tried to write readings of another device."""


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: tuple[Rejection, ...]
    conflicts: int = 0


@dataclass(frozen=True)
class StoreCounts:
    accepted: int
    duplicates: int
    # Duplicates whose values differ from the reading stored under their (device, timestamp)
    conflicts: int = 0

    def __add__(self, other: "StoreCounts") -> "StoreCounts":
        return StoreCounts(
            self.accepted + other.accepted,
            self.duplicates + other.duplicates,
            self.conflicts + other.conflicts,
        )


NOTHING_STORED = StoreCounts(0, 0)


@dataclass(frozen=True)
class StoreOutcome:
    """What a store function did: its counts, or (all or nothing) the devices it did not know."""

    counts: StoreCounts
    unknown: frozenset[str] = frozenset()


def readings_ingest(
    *, parsed: ParsedReadings, api_key: DeviceAPIKey | None, received_at: datetime | None = None
) -> IngestResult:
    """Store the valid readings of one request in one transaction; report new vs duplicate."""
    started = time.perf_counter()
    received_at = received_at or timezone.now()
    if api_key is not None and api_key.device_id:
        others = parsed.device_ids() - {api_key.device_id}
        if others:
            raise DeviceScopeError(
                f"This key may only write readings of device {api_key.device_id!r}; "
                f"the request also carries {', '.join(sorted(others)[:5])}. Nothing was stored."
            )

    work = [(stream, items) for stream in STREAMS if (items := stream.items(stream.parsed(parsed)))]
    counts, rejected = NOTHING_STORED, ()
    if work:
        days = {item[2].astimezone(UTC).date() for _, items in work for item in items}
        # `readings_parse` admits only timestamps in [now - TELEMETRY_MAX_AGE_DAYS, now + skew],
        # so no request can create partitions outside that window.
        partitions_ensure(days=days)
        try:
            counts, rejected = _store_request(work, received_at)
        except IntegrityError as error:
            # Another process dropped a partition this process still believed in: relearn, retry.
            if "no partition of relation" not in str(error):
                raise
            forget_known_partitions()
            partitions_ensure(days=days)
            counts, rejected = _store_request(work, received_at)

    result = IngestResult(
        accepted=counts.accepted,
        duplicates=counts.duplicates,
        rejected=tuple(sorted((*parsed.rejected, *rejected), key=lambda r: r.index)),
        conflicts=counts.conflicts,
    )
    metrics.record_ingest(
        result.accepted, result.duplicates, len(result.rejected), conflicts=result.conflicts
    )
    logger.info(
        "ingest key=%s accepted=%d duplicates=%d conflicts=%d rejected=%d ms=%.1f",
        api_key.name if api_key else "-",
        result.accepted,
        result.duplicates,
        result.conflicts,
        len(result.rejected),
        (time.perf_counter() - started) * 1000,
    )
    return result


Store = Callable[[Stream, Sequence[Item], datetime], StoreOutcome]


def _store_request(
    work: list[tuple[Stream, list[Item]]], received_at: datetime
) -> tuple[StoreCounts, tuple[Rejection, ...]]:
    """Store each stream's items (meters before vehicles) in one transaction.

    On PostgreSQL a request of one stream opens no transaction: its store statement is a
    transaction of its own, without the BEGIN and COMMIT round trips of an explicit one, so a
    single reading of a known device costs one round trip. (A device registered for such a
    request then commits before its readings: harmless, a device with no readings yet.)
    """
    store = _store_postgres if connection.vendor == "postgresql" else _store_sqlite
    one_statement = store is _store_postgres and len(work) == 1
    counts, rejected = NOTHING_STORED, ()
    with nullcontext() if one_statement else transaction.atomic(durable=True):
        for stream, items in work:
            stream_counts, stream_rejected = _store_stream(store, stream, items, received_at)
            counts += stream_counts
            rejected += stream_rejected
    return counts, rejected


def _store_stream(
    store: Store, stream: Stream, items: list[Item], received_at: datetime
) -> tuple[StoreCounts, tuple[Rejection, ...]]:
    """Store one stream's readings; when the store reports unknown devices (it then stored
    nothing), register them (or reject their readings when TELEMETRY_AUTO_REGISTER is off) and
    run the same store again for the rest."""
    outcome = store(stream, items, received_at)
    if not outcome.unknown:
        return outcome.counts, ()
    known = devices_resolve(
        stream=stream,
        external_ids=set(outcome.unknown),
        register=settings.TELEMETRY_AUTO_REGISTER,
    )
    refused = outcome.unknown - known.keys()
    rejected = tuple(
        Rejection(index, unknown_device_errors(stream, external_id))
        for index, external_id, _, _ in items
        if external_id in refused
    )
    kept = [item for item in items if item[1] not in refused] if refused else items
    if not kept:
        return NOTHING_STORED, rejected
    outcome = store(stream, kept, received_at)
    if outcome.unknown:  # a device deleted between its registration and the store: none left
        raise RuntimeError(
            f"{stream.kind} devices vanished while storing: {sorted(outcome.unknown)}"
        )
    return outcome.counts, rejected


def unknown_device_errors(stream: Stream, external_id: str) -> dict[str, list[str]]:
    """The error of a reading whose device is unknown while automatic registration is off."""
    message = (
        f"Unknown {stream.device_model._meta.verbose_name} {external_id!r}; "
        "automatic registration is off (TELEMETRY_AUTO_REGISTER)."
    )
    return {stream.wire_id: [message]}


def devices_resolve(*, stream: Stream, external_ids: set[str], register: bool) -> dict[str, int]:
    """Map external ids to primary keys, registering unknown devices when `register` is on.

    Concurrent first readings of one new device: `ON CONFLICT DO NOTHING` makes the second insert
    wait for the first and then do nothing; the select after it sees the committed row.
    """
    model, id_field = stream.device_model, stream.registry_id
    found = dict(
        model.objects.filter(**{f"{id_field}__in": external_ids}).values_list(id_field, "pk")
    )
    missing = external_ids - found.keys()
    if missing and register:
        model.objects.bulk_create(
            [model(**{id_field: external_id}) for external_id in sorted(missing)],
            ignore_conflicts=True,
        )
        found.update(
            model.objects.filter(**{f"{id_field}__in": missing}).values_list(id_field, "pk")
        )
    return found


def readings_store(*, stream: Stream, items: Sequence[Item], received_at: datetime) -> StoreOutcome:
    """Store `items` with this backend's store function, inside the caller's transaction (SQLite
    runs three statements). All or nothing: when a device is not registered, nothing is stored
    and the outcome names the unknown devices. A reading repeated within `items` counts as a
    duplicate (and as a conflict when its values differ from the one stored)."""
    if not items:
        return StoreOutcome(NOTHING_STORED)
    store = _store_postgres if connection.vendor == "postgresql" else _store_sqlite
    return store(stream, items, received_at)


# --- PostgreSQL: one statement per stream --------------------------------------------------------


def postgres_store_sql(stream: Stream, source: str) -> str:
    """History insert, live upsert and rollup upsert in one statement, over `source`: a SELECT of
    (device, recorded_at, *columns).

    Measured on this machine kind: one round trip for a single reading is about twice the request
    rate of separate statements. It returns one row: (rows inserted, rows read from `source`). Its
    one parameter is `received_at`; `source` may add parameters before it. `source` is SQL text
    written in code (an unnest of parameters, a staging table), never built from input.
    `source` may repeat a (device, recorded_at): one of them is stored (the API sends each once,
    the first of its request). When fewer rows were inserted than read,
    `postgres_conflicts_sql` counts the conflicts (a second statement, on that path only).
    """
    cols = ", ".join(stream.columns)
    device = stream.device_column
    live_updates = ", ".join(
        f"{column} = EXCLUDED.{column}"
        for column in ("recorded_at", *stream.columns, "received_at")
    )
    hourly_columns = ", ".join(stream.rollup_columns)
    hourly_aggregates = ", ".join(
        f"sum({source})" if source else "count(*)" for _, source in stream.rollup_sums
    )
    hourly_updates = ", ".join(
        f"{column} = {stream.hourly}.{column} + EXCLUDED.{column}"
        for column in stream.rollup_columns
    )
    return f"""
        WITH input (device, recorded_at, {cols}) AS ({source}),
        inserted AS (
            INSERT INTO {stream.history} ({device}, recorded_at, {cols})
            SELECT device, recorded_at, {cols} FROM input ORDER BY device, recorded_at
            ON CONFLICT ({device}, recorded_at) DO NOTHING
            RETURNING {device} AS device, recorded_at, {cols}
        ),
        live AS (
            INSERT INTO {stream.status} ({device}, recorded_at, {cols}, received_at)
            SELECT DISTINCT ON (device) device, recorded_at, {cols}, %s::timestamptz
            FROM inserted ORDER BY device, recorded_at DESC
            ON CONFLICT ({device}) DO UPDATE SET {live_updates}
            WHERE {stream.status}.recorded_at < EXCLUDED.recorded_at
        ),
        hourly AS (
            INSERT INTO {stream.hourly} ({device}, hour, {hourly_columns})
            SELECT device, date_trunc('hour', recorded_at, 'UTC'), {hourly_aggregates}
            FROM inserted GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT ({device}, hour) DO UPDATE SET {hourly_updates}
        )
        SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM input)
    """


def postgres_conflicts_sql(stream: Stream, source: str) -> str:
    """How many rows of `source` (device, recorded_at, *columns) differ from the stored reading
    of their key. Run after the store statement, only when it inserted fewer rows than it read:
    every key of `source` then has exactly one stored row (the one stored before, or the one just
    inserted, which equals itself), and history rows never change.

    Measured reason for a second statement rather than a CTE of the store statement: the join to
    the partitioned history table is planned over every partition even when a one-time filter
    skips it, which doubled the store statement's planning time (0.29 -> 0.59 ms with 10 daily
    partitions, growing with retention) on the no-duplicate hot path.
    """
    stored = ", ".join(f"h.{column}" for column in stream.columns)
    given = ", ".join(f"i.{column}" for column in stream.columns)
    return f"""
        SELECT count(*) FROM ({source}) AS i (device, recorded_at, {", ".join(stream.columns)})
        JOIN {stream.history} h ON h.{stream.device_column} = i.device
            AND h.recorded_at = i.recorded_at
        WHERE ROW({stored}) IS DISTINCT FROM ROW({given})
    """


def _external_id_source(stream: Stream) -> str:
    """The request's readings as (device, recorded_at, *columns): typed arrays unnested (the
    cheapest way to pass a batch as parameters), devices resolved by external id in the
    statement."""
    arrays = ", ".join("%s::float8[]" for _ in stream.columns)
    values = ", ".join(f"i.{column}" for column in stream.columns)
    pk = stream.device_model._meta.pk.column
    return (
        f"SELECT d.{pk}, i.recorded_at, {values} "
        f"FROM unnest(%s::text[], %s::timestamptz[], {arrays}) "
        f"AS i(device_key, recorded_at, {', '.join(stream.columns)}) "
        f"JOIN {stream.registry} d ON d.{stream.registry_id} = i.device_key"
    )


def store_statement_sql(stream: Stream) -> str:
    """The ingest path's store statement of `stream`, fed by external device ids.

    All or nothing: when a device is not registered yet, no row passes the guard (the count of
    resolved rows must equal the count sent, the parameter after the arrays), and the statement's
    second column tells the caller so.
    """
    return postgres_store_sql(
        stream,
        f"WITH resolved AS ({_external_id_source(stream)}) "
        f"SELECT * FROM resolved WHERE (SELECT count(*) FROM resolved) = %s",
    )


def conflicts_statement_sql(stream: Stream) -> str:
    """The ingest path's conflict count of `stream` (see `postgres_conflicts_sql`)."""
    return postgres_conflicts_sql(stream, _external_id_source(stream))


_STORE_SQL = {stream: store_statement_sql(stream) for stream in STREAMS}
_CONFLICTS_SQL = {stream: conflicts_statement_sql(stream) for stream in STREAMS}


def _store_postgres(stream: Stream, items: Sequence[Item], received_at: datetime) -> StoreOutcome:
    """Run the store statement on external ids; a reading repeated within `items` is sent once
    (the first). When anything was a duplicate, one more statement compares every reading of
    `items` with the stored ones. When a device was unknown, nothing was stored: one more query
    names the unknown devices."""
    unique: dict[tuple[str, datetime], Item] = {}
    for item in items:
        unique.setdefault((item[1], item[2]), item)
    values = list(unique.values())
    with connection.cursor() as cursor:
        cursor.execute(_STORE_SQL[stream], [*_arrays(stream, values), len(values), received_at])
        inserted, resolved = cursor.fetchone()
        if resolved != len(values):
            sent = {item[1] for item in values}
            found = stream.device_model.objects.filter(
                **{f"{stream.registry_id}__in": sent}
            ).values_list(stream.registry_id, flat=True)
            unknown = frozenset(sent.difference(found))
            if not unknown:  # registered by another request meanwhile: store now
                return _store_postgres(stream, items, received_at)
            return StoreOutcome(NOTHING_STORED, unknown)
        conflicts = 0
        if inserted < len(items):
            cursor.execute(_CONFLICTS_SQL[stream], _arrays(stream, items))
            conflicts = cursor.fetchone()[0]
    return StoreOutcome(StoreCounts(inserted, len(items) - inserted, conflicts))


def _arrays(stream: Stream, items: Sequence[Item]) -> list[str]:
    params = [
        _array_literal([item[1] for item in items]),
        _array_literal([item[2].isoformat() for item in items]),
    ]
    params += [
        _array_literal([repr(item[3][i]) for item in items]) for i in range(len(stream.columns))
    ]
    return params


def _array_literal(texts: list[str]) -> str:
    """A PostgreSQL array literal of `texts`, passed as one text parameter and cast in the SQL.

    Measured: psycopg's adaptation of Python lists (type detection, per-element dumping) was a
    fifth of the single-reading path's CPU time; joining strings costs almost nothing. Every
    element is double-quoted, so PostgreSQL takes it verbatim (an unquoted element loses the
    whitespace around it, and NULL would be a null): `'","'.join` quotes them all at C speed,
    and the rare text that holds a quote or a backslash is escaped element by element.
    """
    if not texts:
        return "{}"
    joined = '","'.join(texts)
    if "\\" in joined or joined.count('"') != 2 * len(texts) - 2:
        joined = '","'.join(text.replace("\\", "\\\\").replace('"', '\\"') for text in texts)
    return f'{{"{joined}"}}'


# --- Other backends (the embedded SQLite default): the same statements, one at a time ------------

# A reading with its device resolved: (device primary key, recorded_at, value columns).
_Row = tuple[int, datetime, tuple[float, ...]]


def _store_sqlite(stream: Stream, items: Sequence[Item], received_at: datetime) -> StoreOutcome:
    """The PostgreSQL statement split in four (SQLite has no data-modifying CTEs): resolve the
    devices, insert history, move live rows, add to the rollups. Runs in the caller's
    transaction."""
    model, id_field = stream.device_model, stream.registry_id
    sent = {item[1] for item in items}
    ids = dict(model.objects.filter(**{f"{id_field}__in": sent}).values_list(id_field, "pk"))
    if len(ids) != len(sent):
        return StoreOutcome(NOTHING_STORED, frozenset(sent - ids.keys()))
    all_rows = sorted(
        ((ids[external_id], at, values) for _, external_id, at, values in items),
        key=lambda row: (row[0], row[1]),
    )
    unique: dict[tuple[int, datetime], _Row] = {}
    for row in all_rows:
        unique.setdefault((row[0], row[1]), row)
    rows = list(unique.values())
    with connection.cursor() as cursor:
        new_keys = {
            (device_pk, _naive_utc(stored_at))
            for device_pk, stored_at in _sqlite_upsert(
                cursor,
                stream.history,
                (stream.device_column, "recorded_at", *stream.columns),
                [(pk, _db_time(at), *values) for pk, at, values in rows],
                f"({stream.device_column}, recorded_at) DO NOTHING "
                f"RETURNING {stream.device_column}, recorded_at",
            )
        }
        inserted = [row for row in rows if (row[0], _naive_utc(row[1])) in new_keys]
        conflicts = 0
        if len(inserted) < len(all_rows):
            conflicts = _sqlite_conflicts(stream, all_rows, inserted, cursor)
        if inserted:
            _sqlite_live_and_rollups(stream, inserted, received_at, cursor)
    accepted = len(inserted)
    return StoreOutcome(StoreCounts(accepted, len(items) - accepted, conflicts))


def _sqlite_live_and_rollups(
    stream: Stream, inserted: list[_Row], received_at: datetime, cursor
) -> None:
    newest: dict[int, _Row] = {}
    for row in inserted:  # sorted by (device, time): the last one per device is the newest
        newest[row[0]] = row
    live_columns = ("recorded_at", *stream.columns, "received_at")
    live_updates = ", ".join(f"{c} = excluded.{c}" for c in live_columns)
    _sqlite_upsert(
        cursor,
        stream.status,
        (stream.device_column, *live_columns),
        [(pk, _db_time(at), *values, _db_time(received_at)) for pk, at, values in newest.values()],
        f"({stream.device_column}) DO UPDATE SET {live_updates} "
        f"WHERE {stream.status}.recorded_at < excluded.recorded_at",
    )
    hourly_updates = ", ".join(
        f"{c} = {stream.hourly}.{c} + excluded.{c}" for c in stream.rollup_columns
    )
    _sqlite_upsert(
        cursor,
        stream.hourly,
        (stream.device_column, "hour", *stream.rollup_columns),
        [
            (pk, _db_time(hour), *sums)
            for (pk, hour), sums in sorted(_hourly_sums(stream, inserted).items())
        ],
        f"({stream.device_column}, hour) DO UPDATE SET {hourly_updates}",
    )


def _sqlite_upsert(cursor, table: str, columns: tuple[str, ...], rows: list[tuple], conflict: str):
    """INSERT `rows` into `table` … ON CONFLICT `conflict`; the rows it returns, if it returns."""
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {placeholders} ON CONFLICT {conflict}",
        [value for row in rows for value in row],
    )
    return cursor.fetchall() if "RETURNING" in conflict else []


def _sqlite_conflicts(stream: Stream, rows: list[_Row], inserted: list[_Row], cursor) -> int:
    """How many of `rows` differ from the reading stored under their key: the one inserted now,
    or the one that was there before (read back: only when there were duplicates)."""
    reference = {(row[0], _naive_utc(row[1])): row[2] for row in inserted}
    older = {(row[0], _naive_utc(row[1])) for row in rows} - reference.keys()
    if older:
        keys = sorted(older)
        cursor.execute(
            f"SELECT {stream.device_column}, recorded_at, {', '.join(stream.columns)} "
            f"FROM {stream.history} WHERE ({stream.device_column}, recorded_at) IN "
            f"(VALUES {', '.join(['(%s, %s)'] * len(keys))})",
            [v for pk, at in keys for v in (pk, _db_time(at))],
        )
        for device_pk, stored_at, *values in cursor.fetchall():
            reference[(device_pk, _naive_utc(stored_at))] = tuple(values)
    return sum(1 for row in rows if reference.get((row[0], _naive_utc(row[1])), row[2]) != row[2])


def _db_time(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _naive_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive (UTC); compare everything in that form."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _hourly_sums(stream: Stream, rows: list[_Row]) -> dict[tuple[int, datetime], list[float]]:
    """The rollup increments of `rows`, by (device, hour): what the PostgreSQL GROUP BY computes."""
    sources = [stream.columns.index(source) if source else None for _, source in stream.rollup_sums]
    sums: dict[tuple[int, datetime], list[float]] = {}
    for pk, recorded_at, values in rows:
        hour = hour_floor(recorded_at)
        bucket = sums.setdefault((pk, hour), [0.0] * len(sources))
        for position, source in enumerate(sources):
            bucket[position] += 1 if source is None else values[source]
    return sums


def api_key_create(*, name: str, device_id: str = "") -> tuple[DeviceAPIKey, str]:
    """Issue a device key; return it with the key text, which is shown once and never stored."""
    with transaction.atomic(durable=True):
        return DeviceAPIKey.objects.create_key(name=name, device_id=device_id)
