"""Bulk storage of import chunks (`telemetry.files`, the fleet simulator) with the API's statements.

Storage is chunked: one transaction per chunk, so an interrupted import leaves whole chunks and a
re-run finishes the job. Re-running is idempotent because history is insert-or-ignore and only the
rows actually inserted move the live rows and add to the hourly rollups. Devices follow the API's
registration rule (TELEMETRY_AUTO_REGISTER).

On PostgreSQL a chunk is written by a binary `COPY` into a temporary staging table and then one
`postgres_store_sql()` statement per stream (history, live, rollups) reading from it: COPY needs no
per-column Python lists and PostgreSQL takes binary rows without text parsing. While PostgreSQL
stores chunk N, Python parses and encodes chunk N+1 (writer threads with their own connections):
on a 2-core machine PostgreSQL is the bottleneck, the parser uses about a third of a core.
Other backends (the embedded SQLite default) use the API's `readings_store()` per batch, in the
caller's thread.
"""

import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from telemetry.files import ReadingChunk, RejectedLine, line_text
from telemetry.partitions import forget_known_partitions, partitions_ensure
from telemetry.services import (
    NOTHING_STORED,
    devices_resolve,
    postgres_conflicts_sql,
    postgres_store_sql,
    readings_store,
    unknown_device_errors,
)
from telemetry.streams import STREAMS, Item, Stream

DEFAULT_CHUNK_SIZE = 100_000

# SQLite: rows per readings_store() call, so a statement stays under its 32,766 parameters.
_GENERIC_BATCH = 1_000
# Writer threads (connections) storing chunks in parallel on PostgreSQL.
_WRITERS = 2
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)


@dataclass(frozen=True)
class ChunkResult:
    """One committed chunk."""

    rows_read: int
    stored: int
    duplicates: int
    rejected: int
    conflicts: int = 0


@dataclass(frozen=True)
class ImportResult:
    rows_read: int
    stored: int
    duplicates: int
    rejected: int
    chunks: int
    seconds: float
    conflicts: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"rows read {self.rows_read}, stored {self.stored}, duplicates {self.duplicates}, "
            f"rejected {self.rejected}, conflicts {self.conflicts}, chunks {self.chunks}, "
            f"{self.seconds:.1f} s, {self.rows_per_second:,.0f} rows/s"
        )


def readings_import(
    *,
    chunks: Iterable[ReadingChunk],
    on_reject: Callable[[RejectedLine], None] | None = None,
    on_chunk: Callable[[ChunkResult], None] | None = None,
) -> ImportResult:
    """Store `chunks`, one transaction each; report rejected rows and each committed chunk.

    Idempotent: a chunk stored twice changes nothing the second time. An exception (or an
    interrupt) leaves every committed chunk in place and none half-written.
    `TELEMETRY_AUTO_REGISTER` decides whether readings of unknown devices register them.
    """
    started = time.perf_counter()
    register = settings.TELEMETRY_AUTO_REGISTER
    known: dict[str, dict[str, int]] = {stream.kind: {} for stream in STREAMS}
    totals = {"rows": 0, "stored": 0, "duplicates": 0, "conflicts": 0, "rejected": 0, "chunks": 0}

    def committed(result: ChunkResult) -> None:
        totals["rows"] += result.rows_read
        totals["stored"] += result.stored
        totals["duplicates"] += result.duplicates
        totals["conflicts"] += result.conflicts
        totals["rejected"] += result.rejected
        totals["chunks"] += 1
        if on_chunk is not None:
            on_chunk(result)

    writer = _Writer.for_connection()
    try:
        for chunk in chunks:
            rejected = list(chunk.rejected)
            _resolve_devices(chunk, known, register, rejected)
            for rejection in rejected:
                if on_reject is not None:
                    on_reject(rejection)
            writer.submit(chunk, len(rejected), committed)
        writer.drain()
    finally:
        writer.close()
    return ImportResult(
        rows_read=totals["rows"],
        stored=totals["stored"],
        duplicates=totals["duplicates"],
        rejected=totals["rejected"],
        chunks=totals["chunks"],
        seconds=time.perf_counter() - started,
        conflicts=totals["conflicts"],
    )


def _resolve_devices(
    chunk: ReadingChunk,
    known: dict[str, dict[str, int]],
    register: bool,
    rejected: list[RejectedLine],
) -> None:
    """Look up (and register) the chunk's devices; drop and reject readings of unknown ones.

    Registration commits on its own (outside the chunk's transaction): a registered device with
    no readings yet is what an interrupted import may leave, and the re-run uses it.
    """
    for stream in STREAMS:
        readings = chunk.readings[stream.kind]
        if not readings:
            continue
        ids = known[stream.kind]
        external_id = attrgetter(stream.registry_id)
        wanted = set(map(external_id, readings)) - ids.keys()
        if wanted:
            ids.update(devices_resolve(stream=stream, external_ids=wanted, register=register))
        unknown = wanted - ids.keys()
        if not unknown:
            continue
        lines, originals = chunk.lines[stream.kind], chunk.originals[stream.kind]
        kept, kept_lines, kept_originals = [], [], []
        for index, reading in enumerate(readings):
            if external_id(reading) in unknown:
                rejected.append(
                    RejectedLine(
                        chunk.source,
                        lines[index] if lines else 0,
                        line_text(originals[index]) if originals else "",
                        unknown_device_errors(stream, external_id(reading)),
                    )
                )
                continue
            kept.append(reading)
            if lines:
                kept_lines.append(lines[index])
                kept_originals.append(originals[index])
        readings[:] = kept
        lines[:] = kept_lines
        originals[:] = kept_originals
    chunk.device_ids = known


class _Writer:
    """Stores chunks: inline, or on PostgreSQL in writer threads overlapping the parsing.

    Threaded, each writer has its own connection; on PostgreSQL writer 0 stores the meter part of
    every chunk and writer 1 the vehicle part, one transaction each, so the two never wait on each
    other's live or rollup rows (two writers sharing whole chunks did: that was slower than one).
    Results are reported in submission order. A part is idempotent on its own, so an import
    interrupted between the two parts of a chunk is completed by running it again.
    """

    def __init__(self, *, writers: int):
        self.pools = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-writer-{n}")
            for n in range(writers)
        ]
        self.next_pool = 0
        self.pending: deque[tuple[Future, Callable[[ChunkResult], None]]] = deque()

    @classmethod
    def for_connection(cls) -> "_Writer":
        # Inside a caller's transaction (tests, a wrapping atomic block) another connection would
        # not see its data and could not join it: store inline then.
        threaded = connection.vendor == "postgresql" and not connection.in_atomic_block
        return cls(writers=_WRITERS if threaded else 0)

    def submit(self, chunk: ReadingChunk, rejected: int, done: Callable[[ChunkResult], None]):
        if connection.vendor == "postgresql":
            works = _encode_postgres(chunk, rejected)
            store = _store_postgres_chunk
        else:
            works = [_encode_generic(chunk, rejected)]
            store = _store_generic_chunk
        part_done = _when_all_parts_done(len(works), done)
        if not self.pools:
            for work in works:
                part_done(store(work))
            return
        # One stream per writer: the meter and vehicle parts of a chunk touch disjoint tables, so
        # their writers never wait on each other's rows. At most one part per writer in flight:
        # memory stays at two chunks.
        for position, work in enumerate(works):
            if len(self.pending) >= len(self.pools):
                self._collect_oldest()
            pool = self.pools[position % len(self.pools)]
            self.pending.append((pool.submit(store, work), part_done))

    def drain(self) -> None:
        while self.pending:
            self._collect_oldest()

    def _collect_oldest(self) -> None:
        future, done = self.pending.popleft()
        done(future.result())

    def close(self) -> None:
        # Interrupted or failed: let the chunks in flight commit or roll back, then stop.
        for future, _ in self.pending:
            future.exception()
        self.pending.clear()
        for pool in self.pools:
            # `connection` resolves per thread: this closes that writer's own connection.
            pool.submit(lambda: connection.close()).result()
            pool.shutdown()


def _when_all_parts_done(
    parts: int, done: Callable[[ChunkResult], None]
) -> Callable[[ChunkResult], None]:
    """Report a chunk once, when all its parts are stored, with their results added up."""
    results: list[ChunkResult] = []

    def part_done(result: ChunkResult) -> None:
        results.append(result)
        if len(results) == parts:
            done(
                ChunkResult(
                    rows_read=sum(r.rows_read for r in results),
                    stored=sum(r.stored for r in results),
                    duplicates=sum(r.duplicates for r in results),
                    conflicts=sum(r.conflicts for r in results),
                    rejected=sum(r.rejected for r in results),
                )
            )

    return part_done


@dataclass
class _PostgresWork:
    """One stream's part of a chunk, as binary COPY data."""

    stream: Stream
    copy_data: bytes
    count: int
    days: set[date]
    rows_read: int
    rejected: int


def _copy_encoder(stream: Stream) -> Callable[[list, dict[str, int], set[int]], bytes]:
    """A function encoding readings of `stream` as binary COPY data of its staging table.

    It is generated from the registry (as `dataclasses` generates methods) so that each row is one
    `struct.pack` call with its fields spelled out: measured 2.4x faster per row than building
    the arguments generically (a loop over the fields), and the parser thread encodes every row.
    The names spliced in are the registry's attribute names, never input.
    """
    fields = "".join(f", 8, reading.{name}" for name in stream.reading_fields)
    row = f"{2 + len(stream.columns)}, 8, ids[reading.{stream.registry_id}], 8, micros{fields}"
    source = f"""
def encode(readings, ids, day_numbers):
    parts = [header]
    append = parts.append
    for reading in readings:
        micros = (reading.timestamp - epoch) // one_microsecond
        day_numbers.add(micros // microseconds_per_day)
        append(pack({row}))
    append(trailer)
    return b"".join(parts)
"""
    namespace = {
        "header": _COPY_HEADER,
        "trailer": _COPY_TRAILER,
        "pack": stream.copy_row.pack,
        "epoch": _PG_EPOCH,
        "one_microsecond": timedelta(microseconds=1),
        "microseconds_per_day": 86_400_000_000,
    }
    exec(source, namespace)
    return namespace["encode"]


_COPY_ENCODERS = {stream: _copy_encoder(stream) for stream in STREAMS}


def _encode_postgres(chunk: ReadingChunk, rejected: int) -> list[_PostgresWork]:
    """The chunk as binary COPY data, one part per stream (runs in the parsing thread).

    The first part carries the chunk's rows read and rejected, so the parts' results add up.
    """
    day_numbers: set[int] = set()
    encoded = [
        (
            stream,
            _COPY_ENCODERS[stream](
                chunk.readings[stream.kind], chunk.device_ids[stream.kind], day_numbers
            ),
        )
        for stream in STREAMS
    ]
    epoch_day = _PG_EPOCH.date()
    days = {epoch_day + timedelta(days=number) for number in day_numbers}
    return [
        _PostgresWork(
            stream=stream,
            copy_data=copy_data,
            count=len(chunk.readings[stream.kind]),
            days=days,
            rows_read=chunk.rows_read if position == 0 else 0,
            rejected=rejected if position == 0 else 0,
        )
        for position, (stream, copy_data) in enumerate(encoded)
    ]


def _staging_source(stream: Stream) -> str:
    return f"SELECT device, recorded_at, {', '.join(stream.columns)} FROM {stream.staging_table}"


_STAGED_STORE_SQL = {
    stream: postgres_store_sql(stream, _staging_source(stream)) for stream in STREAMS
}
_STAGED_CONFLICTS_SQL = {
    stream: postgres_conflicts_sql(stream, _staging_source(stream)) for stream in STREAMS
}


def _store_postgres_chunk(work: _PostgresWork) -> ChunkResult:
    """COPY one stream's part of a chunk into a temporary staging table and store it."""
    partitions_ensure(days=work.days)
    try:
        stored, conflicts = _copy_and_store(work)
    except IntegrityError as error:
        # Another process dropped a partition this process still believed in: relearn, retry.
        if "no partition of relation" not in str(error):
            raise
        forget_known_partitions()
        partitions_ensure(days=work.days)
        stored, conflicts = _copy_and_store(work)
    copied = work.count
    return ChunkResult(
        rows_read=work.rows_read,
        stored=stored,
        duplicates=copied - stored,
        rejected=work.rejected,
        conflicts=conflicts,
    )


def _copy_and_store(work: _PostgresWork) -> tuple[int, int]:
    """(rows stored, conflicts) of one stream's part of a chunk."""
    if not work.count:
        return 0, 0
    received_at = timezone.now()
    table = work.stream.staging_table
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        # A chunk's sorts and CTE results fit in memory instead of spilling to temporary files.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        # ON COMMIT DELETE ROWS empties the table at each commit; the DELETE covers several
        # chunks in one outer transaction (a test, a caller's atomic block).
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ({work.stream.staging_ddl}) "
            "ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"DELETE FROM {table}")
        with cursor.cursor.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(work.copy_data)
        cursor.execute(_STAGED_STORE_SQL[work.stream], [received_at])
        stored, copied = cursor.fetchone()
        conflicts = 0
        if stored < copied:
            cursor.execute(_STAGED_CONFLICTS_SQL[work.stream])
            conflicts = cursor.fetchone()[0]
        return stored, conflicts


@dataclass
class _GenericWork:
    items: list[tuple[Stream, list[Item]]]
    rows_read: int
    rejected: int


def _encode_generic(chunk: ReadingChunk, rejected: int) -> _GenericWork:
    items = [(stream, stream.items(enumerate(chunk.readings[stream.kind]))) for stream in STREAMS]
    return _GenericWork(items=items, rows_read=chunk.rows_read, rejected=rejected)


def _store_generic_chunk(work: _GenericWork) -> ChunkResult:
    received_at = timezone.now()
    counts = NOTHING_STORED
    with transaction.atomic(durable=True):
        for stream, items in work.items:
            for start in range(0, len(items), _GENERIC_BATCH):
                outcome = readings_store(
                    stream=stream,
                    items=items[start : start + _GENERIC_BATCH],
                    received_at=received_at,
                )
                if outcome.unknown:  # resolved above; deleted since: fail, lose nothing
                    raise RuntimeError(
                        f"{stream.kind} devices deleted while importing: {sorted(outcome.unknown)}"
                    )
                counts += outcome.counts
    return ChunkResult(
        rows_read=work.rows_read,
        stored=counts.accepted,
        duplicates=counts.duplicates,
        rejected=work.rejected,
        conflicts=counts.conflicts,
    )
