"""Time rules shared across the apps: whole UTC hours (the grain of the hourly rollups) and how
a moment is shown to a person.

One home for each rule: analytics (which hours a window reads from the rollups), the telemetry
plumbing (which hours a batch touches), the admin (every time it shows).
"""

from datetime import UTC, datetime, timedelta

from django.utils import formats, timezone

HOUR = timedelta(hours=1)


def hour_floor(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment` (aware, UTC)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    """`moment` itself when it starts an hour, else the start of the next UTC hour."""
    floor = hour_floor(moment)
    return floor if floor == moment else floor + HOUR


def display_time(value: datetime | None) -> str:
    """`2026-11-23 10:15:00 UTC`: the time in TIME_ZONE, with its zone; "—" for none."""
    if value is None:
        return "—"
    return formats.date_format(timezone.localtime(value), "DATETIME_FORMAT")
