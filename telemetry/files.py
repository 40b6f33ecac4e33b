"""Import files: NDJSON and CSV (gzipped or not) parsed and validated into chunks of readings.

Every row is validated with the API's rules (the msgspec structs of `telemetry.schemas`, the same
`ReadingLimits`: future skew, maximum age unless `allow_older`, kWh per reading) so an imported
reading is indistinguishable from an ingested one. Bad rows are reported with their file and line,
never dropped silently. `telemetry.bulk` stores the chunks.
"""

import csv
import gzip
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import msgspec
from django.conf import settings
from django.utils import timezone

from telemetry.schemas import MalformedBody, ReadingLimits, decode_json, readings_parse
from telemetry.streams import STREAMS, STREAMS_BY_KIND

NDJSON = "ndjson"
CSV = "csv"
FORMATS = (NDJSON, CSV)

# The CSV header `simulate_fleet` writes. `kwh` is kwhConsumedAc for a meter and kwhDeliveredDc
# for a vehicle; voltage is a meter column, soc and batteryTemp are vehicle columns.
CSV_HEADER = ("type", "deviceId", "timestamp", "kwh", "voltage", "soc", "batteryTemp")
# Columns a CSV may have (any order, header required). The wire names work too, as in the API.
CSV_TEXT_COLUMNS = ("type", "deviceId", *(stream.wire_id for stream in STREAMS), "timestamp")
CSV_NUMBER_COLUMNS = (
    "kwh",
    *dict.fromkeys(name for stream in STREAMS for name in stream.wire_fields),
)
_NON_FIELD = "nonFieldErrors"

# NDJSON fast path: the id key that names a line's stream, and that stream's decoder.
_DECODERS = tuple(
    (f'"{stream.wire_id}"'.encode(), msgspec.json.Decoder(stream.reading_struct))
    for stream in STREAMS
)
_KIND_OF_STRUCT = {stream.reading_struct: stream.kind for stream in STREAMS}


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


def _per_kind() -> dict[str, list]:
    return {stream.kind: [] for stream in STREAMS}


@dataclass
class ReadingChunk:
    """Validated readings of one source, ready to store, and the rows of it that were rejected.

    `readings` holds the parsed readings per stream kind. With `keep_lines` (file imports with
    device registration off), `lines` and `originals` run parallel to them, so a reading refused
    later for its unknown device can still be reported by line. Otherwise they stay empty: no
    memory spent on what cannot be needed.
    """

    source: str
    keep_lines: bool = False
    readings: dict[str, list] = field(default_factory=_per_kind)
    lines: dict[str, list[int]] = field(default_factory=_per_kind)
    originals: dict[str, list[str | bytes]] = field(default_factory=_per_kind)
    rejected: list[RejectedLine] = field(default_factory=list)
    rows_read: int = 0
    # External id -> primary key, per kind; filled in by `telemetry.bulk.readings_import()`.
    device_ids: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def reading_count(self) -> int:
        return sum(map(len, self.readings.values()))

    def add(self, reading, line_number: int, original: str | bytes) -> None:
        kind = _KIND_OF_STRUCT[type(reading)]
        self.readings[kind].append(reading)
        if self.keep_lines:
            self.lines[kind].append(line_number)
            self.originals[kind].append(original)


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
    rows_of = _ndjson_rows if fmt == NDJSON else _csv_rows
    keep_lines = not settings.TELEMETRY_AUTO_REGISTER

    def clock() -> ReadingLimits:
        return ReadingLimits.of(now=timezone.now(), max_future=max_future, allow_older=allow_older)

    # The limits of the chunk being filled: fixed per chunk, as the API fixes them per request.
    limits = [clock()]
    source = str(path)
    with open_binary(path) as stream:
        chunk = ReadingChunk(source, keep_lines)
        for line_number, original, reading, errors in rows_of(stream, source, limits):
            chunk.rows_read += 1
            if errors:
                chunk.rejected.append(
                    RejectedLine(source, line_number, line_text(original), errors)
                )
                continue
            chunk.add(reading, line_number, original)
            if chunk.reading_count >= chunk_size:
                yield chunk
                chunk = ReadingChunk(source, keep_lines)
                limits[0] = clock()
        if chunk.rows_read:
            yield chunk


# A row of a file: (line number, the line as read, the reading or None, errors or None).
Row = tuple[int, str | bytes, Any, dict[str, list[str]] | None]


def _ndjson_rows(stream: IO[bytes], source: str, limits: list[ReadingLimits]) -> Iterator[Row]:
    """NDJSON: one reading object per line.

    Fast path: a line that names exactly one stream's id key (`meterId`, `vehicleId`; and has no
    escapes, which could spell a key differently) is decoded straight into that stream's struct,
    the same validation the API applies after `decode_json`. Anything the fast path refuses goes
    through `decode_json` and `readings_parse`, the API's own code, which decides and words the
    error.
    """
    for line_number, line in enumerate(stream, 1):
        if len(line) < 3 and not line.strip():
            continue
        reading = None
        if b"\\" not in line:
            named = [decoder for key, decoder in _DECODERS if key in line]
            try:
                if len(named) == 1:
                    reading = named[0].decode(line)
            except (msgspec.ValidationError, msgspec.DecodeError):
                reading = None
            if reading is not None and not limits[0].admits(reading):
                reading = None
        if reading is not None:
            yield line_number, line, reading, None
            continue
        try:
            payload = decode_json(line)
        except MalformedBody as error:
            yield line_number, line, None, {_NON_FIELD: [str(error)]}
            continue
        yield line_number, line, *_validate_item(payload, limits[0])


def _csv_rows(stream: IO[bytes], source: str, limits: list[ReadingLimits]) -> Iterator[Row]:
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
    for cells in reader:
        if not cells:
            continue
        line_number = reader.line_num
        original = last_line[0].rstrip("\r\n")
        if len(cells) != width:
            errors = {
                _NON_FIELD: [f"Expected {width} columns as in the header, found {len(cells)}."]
            }
            yield line_number, original, None, errors
            continue
        item, errors = _csv_item(cells, text_columns, number_columns)
        reading = None
        if not errors:
            reading = _convert_fast(item)
            if reading is None or not limits[0].admits(reading):
                reading, errors = _validate_item(item, limits[0])
        yield line_number, original, reading, errors or None


def _csv_columns(
    path: Path, header: list[str]
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    names = [name.strip() for name in header]
    ids = {stream.wire_id for stream in STREAMS}
    if "timestamp" not in names or not {"deviceId", *ids} & set(names):
        raise ImportFileError(
            f"{path}: the CSV header must name timestamp and deviceId (with type) or "
            f"{'/'.join(stream.wire_id for stream in STREAMS)}; "
            f"expected e.g. {','.join(CSV_HEADER)}, found {','.join(names)}."
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
        stream = STREAMS_BY_KIND.get(kind)
        if stream is None:
            kinds = " or ".join(f'"{kind}"' for kind in STREAMS_BY_KIND)
            errors["type"] = [f"Must be {kinds} when the row has {generic[0]}."]
        else:
            if "deviceId" in item:
                item[stream.wire_id] = item.pop("deviceId")
            if "kwh" in item:
                item[stream.wire_energy] = item.pop("kwh")
    return item, errors


def _convert_fast(item: dict[str, Any]) -> Any:
    """The struct for an unambiguous, valid item; None sends it to the API's validation."""
    named = [stream for stream in STREAMS if stream.wire_id in item]
    if len(named) != 1:
        return None
    try:
        return msgspec.convert(item, named[0].reading_struct)
    except msgspec.ValidationError:
        return None


def _validate_item(payload: Any, limits: ReadingLimits) -> tuple[Any, dict[str, list[str]]]:
    """Validate one reading exactly as the API validates one item of a batch."""
    parsed = readings_parse([payload], now=limits.now, limits=limits)
    if parsed.rejected:
        return None, parsed.rejected[0].errors
    return next(stream.parsed(parsed)[0][1] for stream in STREAMS if stream.parsed(parsed)), {}


def line_text(original: str | bytes) -> str:
    """A row as `RejectedLine.original` shows it."""
    if isinstance(original, bytes):
        return original.decode("utf-8", "replace").rstrip("\r\n")
    return original
