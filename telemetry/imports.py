"""Bulk import of readings: files (NDJSON, CSV, gzipped or not) and the fleet simulator.

Every row is validated with the API's rules (the msgspec structs of `telemetry.schemas`, the same
`ReadingLimits`: future skew, maximum age unless `allow_older`, kWh per reading; the same device
registration rule) and stored with the API's statements,
so an imported reading is indistinguishable from an ingested one. Bad rows are reported with their
file and line, never dropped silently.

Storage is chunked: one transaction per chunk, so an interrupted import leaves whole chunks and a
re-run finishes the job. Re-running is idempotent because history is insert-or-ignore and only the
rows actually inserted move the live rows and add to the hourly rollups.

On PostgreSQL a chunk is written by a binary `COPY` into a temporary staging table and then one
`postgres_store_sql()` statement per stream (history, live, rollups) reading from it: COPY needs no
per-column Python lists and PostgreSQL takes binary rows without text parsing. While PostgreSQL
stores chunk N, Python parses and encodes chunk N+1 (a writer thread with its own connection):
on a 2-core machine PostgreSQL is the bottleneck, the parser uses about a third of a core.
Other backends (the embedded SQLite default) use `readings_store()` per chunk, in the caller's
thread.
"""

import csv
import gzip
import io
import math
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import msgspec
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from fleet.models import Meter, MeterAssignment, Vehicle
from fleet.services import AssignmentConflict, MappingImportResult, MappingRow, mappings_import
from telemetry.partitions import forget_known_partitions, partitions_ensure
from telemetry.schemas import (
    MalformedBody,
    MeterReadingIn,
    ReadingLimits,
    VehicleReadingIn,
    decode_json,
    readings_parse,
)
from telemetry.services import (
    METER_STREAM,
    VEHICLE_STREAM,
    Row,
    Stream,
    devices_resolve,
    postgres_conflicts_sql,
    postgres_store_sql,
    readings_store,
)
from telemetry.simulation import (
    METER_KIND,
    FleetPlan,
    csv_line,
    fleet_readings,
    ndjson_line,
    wire_timestamps,
)

NDJSON = "ndjson"
CSV = "csv"
FORMATS = (NDJSON, CSV)
DEFAULT_CHUNK_SIZE = 100_000

# The CSV header `simulate_fleet` writes. `kwh` is kwhConsumedAc for a meter and kwhDeliveredDc
# for a vehicle; voltage is a meter column, soc and batteryTemp are vehicle columns.
CSV_HEADER = ("type", "deviceId", "timestamp", "kwh", "voltage", "soc", "batteryTemp")
# Columns a CSV may have (any order, header required). The wire names work too, as in the API.
CSV_TEXT_COLUMNS = ("type", "deviceId", "meterId", "vehicleId", "timestamp")
CSV_NUMBER_COLUMNS = ("kwh", "kwhConsumedAc", "kwhDeliveredDc", "voltage", "soc", "batteryTemp")
_NON_FIELD = "nonFieldErrors"

_meter_decoder = msgspec.json.Decoder(MeterReadingIn)
_vehicle_decoder = msgspec.json.Decoder(VehicleReadingIn)

# SQLite: rows per readings_store() call, so a statement stays under its 32,766 parameters.
_GENERIC_BATCH = 1_000
# Writer threads (connections) storing chunks in parallel on PostgreSQL.
_WRITERS = 2
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
_MICROSECONDS_PER_DAY = 86_400_000_000
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
# A binary COPY row: field count, then (length, value) per field.
_METER_ROW = struct.Struct(">hiqiqidid")
_VEHICLE_ROW = struct.Struct(">hiqiqididid")


class ImportFileError(ValueError):
    """A file that cannot be imported at all (missing, unknown format, unusable CSV header)."""


@dataclass(frozen=True)
class RejectedLine:
    """A row that was not stored: where it was, what it said, and why."""

    source: str
    line: int
    original: str
    errors: dict[str, list[str]]

    def as_json(self) -> bytes:
        return msgspec.json.encode(
            {
                "file": self.source,
                "line": self.line,
                "errors": self.errors,
                "original": self.original,
            }
        )


@dataclass
class ReadingChunk:
    """Validated readings of one source, ready to store, and the rows of it that were rejected.

    With `keep_lines` (file imports with device registration off), `*_lines` and `*_originals` run
    parallel to the readings, so a reading refused later for its unknown device can still be
    reported by line. Otherwise they stay empty: no memory spent on what cannot be needed.
    """

    source: str
    keep_lines: bool = False
    meters: list[MeterReadingIn] = field(default_factory=list)
    vehicles: list[VehicleReadingIn] = field(default_factory=list)
    meter_lines: list[int] = field(default_factory=list)
    vehicle_lines: list[int] = field(default_factory=list)
    meter_originals: list[str | bytes] = field(default_factory=list)
    vehicle_originals: list[str | bytes] = field(default_factory=list)
    rejected: list[RejectedLine] = field(default_factory=list)
    rows_read: int = 0
    # External id -> primary key, per kind; filled in by readings_import().
    device_ids: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def reading_count(self) -> int:
        return len(self.meters) + len(self.vehicles)


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


# --- Reading files --------------------------------------------------------------------------------


def file_format(path: Path, requested: str | None = None) -> str:
    """The format of `path`: `requested`, else from the name (`.ndjson`/`.jsonl`/`.csv`, `.gz`)."""
    if requested:
        if requested not in FORMATS:
            raise ImportFileError(f"Unknown format {requested!r}; use one of {', '.join(FORMATS)}.")
        return requested
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    if suffixes and suffixes[-1] in (".ndjson", ".jsonl", ".json"):
        return NDJSON
    if suffixes and suffixes[-1] == ".csv":
        return CSV
    raise ImportFileError(f"{path}: cannot tell the format from the name; pass --format.")


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped if it starts with the gzip magic number."""
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file.")
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 20)
    return path.open("rb", buffering=1 << 20)


def sources_check(paths: Iterable[Path], requested_format: str | None) -> list[tuple[Path, str]]:
    """Fail before storing anything if a file is missing, of unknown format or a bad CSV."""
    checked = []
    for path in paths:
        fmt = file_format(path, requested_format)
        with open_binary(path) as stream:
            if fmt == CSV:
                header = stream.readline().decode("utf-8-sig", "replace")
                _csv_columns(path, next(csv.reader([header]), []))
        checked.append((path, fmt))
    return checked


def file_chunks(
    path: Path,
    fmt: str,
    *,
    chunk_size: int,
    max_future: timedelta | None = None,
    allow_older: bool = False,
) -> Iterator[ReadingChunk]:
    """Parse and validate `path` in chunks of up to `chunk_size` valid readings.

    `allow_older` admits readings older than TELEMETRY_MAX_AGE_DAYS (an operator's deliberate
    historical backfill); every other limit of the API still holds.
    """
    parse = _ndjson_chunks if fmt == NDJSON else _csv_chunks
    keep_lines = not settings.TELEMETRY_AUTO_REGISTER

    def clock() -> ReadingLimits:
        return ReadingLimits.of(now=timezone.now(), max_future=max_future, allow_older=allow_older)

    with open_binary(path) as stream:
        yield from parse(stream, str(path), chunk_size, clock, keep_lines)


def _ndjson_chunks(
    stream: IO[bytes],
    source: str,
    chunk_size: int,
    clock: Callable[[], ReadingLimits],
    keep_lines: bool,
) -> Iterator[ReadingChunk]:
    """NDJSON: one reading object per line.

    Fast path: a line that names exactly one of `meterId`/`vehicleId` (and has no escapes, which
    could spell a key differently) is decoded straight into that struct, the same validation the
    API applies after `decode_json`. Anything the fast path refuses goes through `decode_json` and
    `readings_parse`, the API's own code, which decides and words the error.
    """
    chunk = ReadingChunk(source, keep_lines)
    limits = clock()
    for line_number, line in enumerate(stream, 1):
        if len(line) < 3 and not line.strip():
            continue
        chunk.rows_read += 1
        reading = None
        if b"\\" not in line:
            is_meter, is_vehicle = b'"meterId"' in line, b'"vehicleId"' in line
            try:
                if is_meter and not is_vehicle:
                    reading = _meter_decoder.decode(line)
                elif is_vehicle and not is_meter:
                    reading = _vehicle_decoder.decode(line)
            except (msgspec.ValidationError, msgspec.DecodeError):
                reading = None
            if reading is not None and not limits.admits(reading):
                reading = None
        if reading is None:
            try:
                payload = decode_json(line)
            except MalformedBody as error:
                chunk.rejected.append(
                    RejectedLine(source, line_number, _text(line), {_NON_FIELD: [str(error)]})
                )
                continue
            reading, errors = _validate_item(payload, limits)
            if errors:
                chunk.rejected.append(RejectedLine(source, line_number, _text(line), errors))
                continue
        _add(chunk, reading, line_number, line)
        if chunk.reading_count >= chunk_size:
            yield chunk
            chunk = ReadingChunk(source, keep_lines)
            limits = clock()
    if chunk.rows_read:
        yield chunk


def _csv_chunks(
    stream: IO[bytes],
    source: str,
    chunk_size: int,
    clock: Callable[[], ReadingLimits],
    keep_lines: bool,
) -> Iterator[ReadingChunk]:
    """CSV with a header row (see `CSV_HEADER`); numbers are parsed, then the structs validate."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    last_line = [""]

    def tap() -> Iterator[str]:
        for physical_line in text:
            last_line[0] = physical_line
            yield physical_line

    reader = csv.reader(tap())
    header = next(reader, None)
    if header is None:
        return
    text_columns, number_columns, width = _csv_columns(Path(source), header)
    chunk = ReadingChunk(source, keep_lines)
    limits = clock()
    for cells in reader:
        if not cells:
            continue
        chunk.rows_read += 1
        line_number = reader.line_num
        original = last_line[0].rstrip("\r\n")
        if len(cells) != width:
            errors = {
                _NON_FIELD: [f"Expected {width} columns as in the header, found {len(cells)}."]
            }
            chunk.rejected.append(RejectedLine(source, line_number, original, errors))
            continue
        item, errors = _csv_item(cells, text_columns, number_columns)
        reading = None
        if not errors:
            reading = _convert_fast(item)
            if reading is None or not limits.admits(reading):
                reading, errors = _validate_item(item, limits)
        if errors:
            chunk.rejected.append(RejectedLine(source, line_number, original, errors))
            continue
        _add(chunk, reading, line_number, original)
        if chunk.reading_count >= chunk_size:
            yield chunk
            chunk = ReadingChunk(source, keep_lines)
            limits = clock()
    if chunk.rows_read:
        yield chunk


def _csv_columns(
    path: Path, header: list[str]
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    names = [name.strip() for name in header]
    if "timestamp" not in names or not {"deviceId", "meterId", "vehicleId"} & set(names):
        raise ImportFileError(
            f"{path}: the CSV header must name timestamp and deviceId (with type) or "
            f"meterId/vehicleId; expected e.g. {','.join(CSV_HEADER)}, found {','.join(names)}."
        )
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ImportFileError(f"{path}: the CSV header repeats {', '.join(duplicated)}.")
    text_columns = [(name, names.index(name)) for name in CSV_TEXT_COLUMNS if name in names]
    number_columns = [(name, names.index(name)) for name in CSV_NUMBER_COLUMNS if name in names]
    return text_columns, number_columns, len(names)


def _csv_item(
    cells: list[str], text_columns: list[tuple[str, int]], number_columns: list[tuple[str, int]]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A CSV row as the API's JSON object: empty cells absent, numbers as floats."""
    item: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, index in text_columns:
        value = cells[index].strip()
        if value:
            item[name] = value
    for name, index in number_columns:
        value = cells[index].strip()
        if not value:
            continue
        try:
            number = float(value)
        except ValueError:
            errors[name] = [f"{value!r} is not a number."]
            continue
        if not math.isfinite(number):
            errors[name] = [f"{value!r} is not a finite number."]
            continue
        item[name] = number
    kind = item.get("type")
    generic = [name for name in ("deviceId", "kwh") if name in item]
    if generic:
        if kind not in (METER_KIND, "vehicle"):
            errors["type"] = [f'Must be "meter" or "vehicle" when the row has {generic[0]}.']
        else:
            if "deviceId" in item:
                item["meterId" if kind == METER_KIND else "vehicleId"] = item.pop("deviceId")
            if "kwh" in item:
                item["kwhConsumedAc" if kind == METER_KIND else "kwhDeliveredDc"] = item.pop("kwh")
    return item, errors


def _convert_fast(item: dict[str, Any]) -> MeterReadingIn | VehicleReadingIn | None:
    """The struct for an unambiguous, valid item; None sends it to the API's validation."""
    has_meter, has_vehicle = "meterId" in item, "vehicleId" in item
    if has_meter == has_vehicle:
        return None
    try:
        return msgspec.convert(item, MeterReadingIn if has_meter else VehicleReadingIn)
    except msgspec.ValidationError:
        return None


def _validate_item(
    payload: Any, limits: ReadingLimits
) -> tuple[MeterReadingIn | VehicleReadingIn | None, dict[str, list[str]]]:
    """Validate one reading exactly as the API validates one item of a batch."""
    parsed = readings_parse([payload], now=limits.now, limits=limits)
    if parsed.rejected:
        return None, parsed.rejected[0].errors
    readings = parsed.meters or parsed.vehicles
    return readings[0][1], {}


def _add(chunk: ReadingChunk, reading, line_number: int, original: str | bytes) -> None:
    if type(reading) is MeterReadingIn:
        chunk.meters.append(reading)
        if chunk.keep_lines:
            chunk.meter_lines.append(line_number)
            chunk.meter_originals.append(original)
    else:
        chunk.vehicles.append(reading)
        if chunk.keep_lines:
            chunk.vehicle_lines.append(line_number)
            chunk.vehicle_originals.append(original)


def _text(original: str | bytes) -> str:
    if isinstance(original, bytes):
        return original.decode("utf-8", "replace").rstrip("\r\n")
    return original


# --- Storing chunks -------------------------------------------------------------------------------


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
    known: dict[str, dict[str, int]] = {METER_KIND: {}, "vehicle": {}}
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
    for kind, model, id_field, wire_field in (
        (METER_KIND, Meter, "meter_id", "meterId"),
        ("vehicle", Vehicle, "vehicle_id", "vehicleId"),
    ):
        readings = chunk.meters if kind == METER_KIND else chunk.vehicles
        if not readings:
            continue
        ids = known[kind]
        wanted = {getattr(reading, id_field) for reading in readings} - ids.keys()
        if wanted:
            ids.update(
                devices_resolve(
                    model=model, id_field=id_field, external_ids=wanted, register=register
                )
            )
        unknown = wanted - ids.keys()
        if not unknown:
            continue
        lines = chunk.meter_lines if kind == METER_KIND else chunk.vehicle_lines
        originals = chunk.meter_originals if kind == METER_KIND else chunk.vehicle_originals
        kept, kept_lines, kept_originals = [], [], []
        for index, reading in enumerate(readings):
            external_id = getattr(reading, id_field)
            if external_id in unknown:
                message = (
                    f"Unknown {model._meta.verbose_name} {external_id!r}; "
                    "automatic registration is off (TELEMETRY_AUTO_REGISTER)."
                )
                rejected.append(
                    RejectedLine(
                        chunk.source,
                        lines[index] if lines else 0,
                        _text(originals[index]) if originals else "",
                        {wire_field: [message]},
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


def _encode_postgres(chunk: ReadingChunk, rejected: int) -> list[_PostgresWork]:
    """The chunk as binary COPY data, one part per stream (runs in the parsing thread).

    The meter part carries the chunk's rows read and rejected, so the parts' results add up.
    """
    ids = chunk.device_ids
    day_numbers: set[int] = set()
    meter_ids = ids[METER_KIND]
    pack = _METER_ROW.pack
    parts = [_COPY_HEADER]
    for reading in chunk.meters:
        micros = (reading.timestamp - _PG_EPOCH) // _ONE_MICROSECOND
        day_numbers.add(micros // _MICROSECONDS_PER_DAY)
        parts.append(
            pack(
                4,
                8,
                meter_ids[reading.meter_id],
                8,
                micros,
                8,
                reading.kwh_consumed_ac,
                8,
                reading.voltage,
            )
        )
    parts.append(_COPY_TRAILER)
    meter_copy = b"".join(parts)
    vehicle_ids = ids["vehicle"]
    pack = _VEHICLE_ROW.pack
    parts = [_COPY_HEADER]
    for reading in chunk.vehicles:
        micros = (reading.timestamp - _PG_EPOCH) // _ONE_MICROSECOND
        day_numbers.add(micros // _MICROSECONDS_PER_DAY)
        parts.append(
            pack(
                5,
                8,
                vehicle_ids[reading.vehicle_id],
                8,
                micros,
                8,
                reading.kwh_delivered_dc,
                8,
                reading.soc,
                8,
                reading.battery_temp,
            )
        )
    parts.append(_COPY_TRAILER)
    epoch_day = _PG_EPOCH.date()
    days = {epoch_day + timedelta(days=number) for number in day_numbers}
    return [
        _PostgresWork(
            stream=METER_STREAM,
            copy_data=meter_copy,
            count=len(chunk.meters),
            days=days,
            rows_read=chunk.rows_read,
            rejected=rejected,
        ),
        _PostgresWork(
            stream=VEHICLE_STREAM,
            copy_data=b"".join(parts),
            count=len(chunk.vehicles),
            days=days,
            rows_read=0,
            rejected=0,
        ),
    ]


_STAGING = {
    METER_STREAM: (
        "import_staging_meter",
        "device bigint, recorded_at timestamptz, energy_kwh float8, voltage_v float8",
    ),
    VEHICLE_STREAM: (
        "import_staging_vehicle",
        "device bigint, recorded_at timestamptz, energy_kwh float8, soc_pct float8, "
        "battery_temp_c float8",
    ),
}


def _staging_source(stream: Stream) -> str:
    table, _ = _STAGING[stream]
    return f"SELECT device, recorded_at, {', '.join(stream.columns)} FROM {table}"


_STAGED_STORE_SQL = {
    stream: postgres_store_sql(stream, _staging_source(stream))
    for stream in (METER_STREAM, VEHICLE_STREAM)
}
_STAGED_CONFLICTS_SQL = {
    stream: postgres_conflicts_sql(stream, _staging_source(stream))
    for stream in (METER_STREAM, VEHICLE_STREAM)
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
    table, columns = _STAGING[work.stream]
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        # A chunk's sorts and CTE results fit in memory instead of spilling to temporary files.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        # ON COMMIT DELETE ROWS empties the table at each commit; the DELETE covers several
        # chunks in one outer transaction (a test, a caller's atomic block).
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ({columns}) ON COMMIT DELETE ROWS"
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
    meter_rows: list[Row]
    vehicle_rows: list[Row]
    rows_read: int
    rejected: int


def _encode_generic(chunk: ReadingChunk, rejected: int) -> _GenericWork:
    ids = chunk.device_ids
    meter_ids, vehicle_ids = ids[METER_KIND], ids["vehicle"]
    return _GenericWork(
        meter_rows=[
            Row(meter_ids[r.meter_id], r.timestamp, (r.kwh_consumed_ac, r.voltage))
            for r in chunk.meters
        ],
        vehicle_rows=[
            Row(
                vehicle_ids[r.vehicle_id],
                r.timestamp,
                (r.kwh_delivered_dc, r.soc, r.battery_temp),
            )
            for r in chunk.vehicles
        ],
        rows_read=chunk.rows_read,
        rejected=rejected,
    )


def _store_generic_chunk(work: _GenericWork) -> ChunkResult:
    received_at = timezone.now()
    stored = duplicates = conflicts = 0
    with transaction.atomic(durable=True):
        for stream, rows in ((METER_STREAM, work.meter_rows), (VEHICLE_STREAM, work.vehicle_rows)):
            for start in range(0, len(rows), _GENERIC_BATCH):
                counts = readings_store(
                    stream=stream,
                    rows=rows[start : start + _GENERIC_BATCH],
                    received_at=received_at,
                )
                stored += counts.accepted
                duplicates += counts.duplicates
                conflicts += counts.conflicts
    return ChunkResult(
        rows_read=work.rows_read,
        stored=stored,
        duplicates=duplicates,
        rejected=work.rejected,
        conflicts=conflicts,
    )


# --- The fleet simulator --------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulationResult:
    mappings: MappingImportResult
    readings: ImportResult | None
    readings_written: int


def simulation_mappings_apply(*, plan: FleetPlan) -> MappingImportResult:
    """Map the simulated vehicles to their meters (and the mid-period swaps) via the fleet rules.

    Assignments already in place (a re-run with the same start) are skipped; the rest go in one
    transaction, or row by row with conflicts reported if that fails (an earlier run's later start).
    """
    existing = set(
        MeterAssignment.objects.filter(vehicle__vehicle_id__in=plan.vehicle_ids).values_list(
            "vehicle__vehicle_id", "meter__meter_id", "valid_from"
        )
    )
    rows = [
        MappingRow(a.vehicle_id, a.meter_id, a.valid_from, line=number)
        for number, a in enumerate(plan.assignments, 1)
        if (a.vehicle_id, a.meter_id, a.valid_from) not in existing
    ]
    skipped = len(plan.assignments) - len(rows)
    try:
        result = mappings_import(rows=rows, atomic=True)
    except AssignmentConflict:
        result = mappings_import(rows=rows, atomic=False)
    return MappingImportResult(
        assigned=result.assigned, unchanged=result.unchanged + skipped, errors=result.errors
    )


def simulation_chunks(plan: FleetPlan, *, chunk_size: int) -> Iterator[ReadingChunk]:
    """The simulated readings as import chunks (already valid: built by the simulator)."""
    timestamps = [plan.timestamp(step) for step in range(plan.steps)]
    source = f"simulation seed {plan.seed}"
    chunk = ReadingChunk(source)
    for batch in fleet_readings(plan):
        meters, vehicles = chunk.meters, chunk.vehicles
        for reading in batch:
            if reading[0] == METER_KIND:
                _, meter_id, step, kwh, voltage = reading
                meters.append(MeterReadingIn(meter_id, kwh, voltage, timestamps[step]))
            else:
                _, vehicle_id, step, soc, kwh, temp = reading
                vehicles.append(VehicleReadingIn(vehicle_id, soc, kwh, temp, timestamps[step]))
        chunk.rows_read += len(batch)
        if chunk.reading_count >= chunk_size:
            yield chunk
            chunk = ReadingChunk(source)
    if chunk.rows_read:
        yield chunk


def simulation_write_file(
    *, plan: FleetPlan, path: Path, on_batch: Callable[[int], None] | None = None
) -> int:
    """Write the simulated readings to an NDJSON or CSV file (gzipped for `.gz`); return rows."""
    fmt = file_format(path)
    timestamps = wire_timestamps(plan)
    line_of = ndjson_line if fmt == NDJSON else csv_line
    written = 0
    tmp = path.with_name(path.name + ".partial")
    if path.suffix.lower() == ".gz":
        # Level 1: a fleet-day is ~1.5 GB of text; the default level would triple the run time.
        opened = gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1, newline="")  # noqa: SIM115
    else:
        opened = tmp.open("w", encoding="utf-8", newline="", buffering=1 << 20)
    with opened as out:
        if fmt == CSV:
            out.write(",".join(CSV_HEADER) + "\n")
        for batch in fleet_readings(plan):
            out.write("".join([line_of(reading, timestamps) for reading in batch]))
            written += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
    tmp.replace(path)  # a killed run never leaves a half file under the real name
    return written


def simulation_mappings_csv(*, plan: FleetPlan, path: Path) -> None:
    """The plan's assignments as an `import_mappings` CSV."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["vehicleId", "meterId", "validFrom"])
        for assignment in plan.assignments:
            writer.writerow(
                [
                    assignment.vehicle_id,
                    assignment.meter_id,
                    assignment.valid_from.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                ]
            )
