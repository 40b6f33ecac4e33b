"""Rounding instants to whole UTC hours: the grain of the hourly rollups.

One home for the rule, shared by analytics (which hours a window reads from the rollups) and the
telemetry plumbing (which hours a batch touches).
"""

from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)


def hour_floor(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment` (aware, UTC)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    """`moment` itself when it starts an hour, else the start of the next UTC hour."""
    floor = hour_floor(moment)
    return floor if floor == moment else floor + HOUR
