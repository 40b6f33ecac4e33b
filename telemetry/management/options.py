"""Option parsing shared by the telemetry commands."""

from datetime import UTC, datetime

from django.core.management.base import CommandError
from django.utils import timezone


def aware_datetime(option: str, text: str | None) -> datetime | None:
    """`text` as an aware UTC datetime (None stays None); a clear CommandError naming `option`."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} {text!r} is not an ISO 8601 date-time.") from None
    if timezone.is_naive(moment):
        raise CommandError(f"{option} {text!r} needs a UTC offset, e.g. 2026-02-10T00:00:00Z.")
    return moment.astimezone(UTC)
