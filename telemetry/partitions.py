"""Daily partitions of the history tables (PostgreSQL only).

A partition covers one UTC day: `<history table>_p20260210` (the history tables of
`telemetry.streams`) holds 2026-02-10T00:00Z <= recorded_at < 2026-02-11T00:00Z. Retention drops
whole partitions.
"""

import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction

from telemetry.streams import STREAMS

_PARENTS = tuple(stream.history for stream in STREAMS)
_PARTITION_NAME = re.compile(
    rf"^(?P<parent>{'|'.join(map(re.escape, _PARENTS))})_p(?P<day>\d{{8}})$"
)

# Days known to have partitions, per process: the ingest path asks for every request, so after the
# first request of a day this is a set lookup, not a catalog query.
_known_days: set[date] = set()
_known_lock = threading.Lock()


@dataclass(frozen=True)
class Partition:
    table: str
    parent: str
    day: date


def partitioning_enabled() -> bool:
    return connection.vendor == "postgresql"


def partition_name(parent: str, day: date) -> str:
    """The partition of history table `parent` (a `Stream.history`) for `day`."""
    return f"{parent}_p{day:%Y%m%d}"


def partitions_ensure(*, days: set[date]) -> int:
    """Create the partitions of `days` that do not exist yet; return how many were created.

    Each day is created in its own short transaction, outside the caller's: an empty partition is
    harmless if the caller then fails. A transaction-scoped advisory lock serialises concurrent
    creators of one day, so two first readings of a new day both succeed.
    """
    if not partitioning_enabled():
        return 0
    missing = days - _known_days
    created = 0
    for day in sorted(missing):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x7E1E, day.toordinal()])
            for parent in _PARENTS:
                created += _create_partition(cursor, parent, day)
        with _known_lock:
            _known_days.add(day)
    return created


def partitions_list() -> list[Partition]:
    """Every existing daily partition of the history tables, oldest first."""
    if not partitioning_enabled():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT child.relname
            FROM pg_inherits
            JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            WHERE parent.relname = ANY(%s)
            """,
            [list(_PARENTS)],
        )
        names = [row[0] for row in cursor.fetchall()]
    partitions = []
    for name in names:
        match = _PARTITION_NAME.match(name)
        if match:
            day = datetime.strptime(match["day"], "%Y%m%d").date()
            partitions.append(Partition(table=name, parent=match["parent"], day=day))
    return sorted(partitions, key=lambda partition: (partition.day, partition.parent))


def partitions_drop(*, partitions: list[Partition]) -> None:
    """Drop whole partitions (retention): instant, no DELETE, no vacuum debt."""
    for partition in partitions:
        with transaction.atomic(), connection.cursor() as cursor:
            # The name comes from the catalog and matched _PARTITION_NAME: safe to quote in.
            cursor.execute(f'DROP TABLE IF EXISTS "{partition.table}"')
        with _known_lock:
            _known_days.discard(partition.day)


def forget_known_partitions() -> None:
    """Clear the per-process cache (tests that drop tables, `manage_partitions`)."""
    with _known_lock:
        _known_days.clear()


def _create_partition(cursor, parent: str, day: date) -> int:
    name = partition_name(parent, day)
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    if cursor.fetchone()[0]:
        return 0
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    # Identifiers cannot be parameters; `name` is built from a constant and a date.
    cursor.execute(
        f'CREATE TABLE "{name}" PARTITION OF "{parent}" FOR VALUES FROM (%s) TO (%s)',
        [start, end],
    )
    return 1
