"""Builders of readings for tests: wire payloads (camelCase) and rows stored via the service."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from telemetry.schemas import ParsedReadings, ReadingLimits, readings_parse
from telemetry.services import IngestResult, readings_ingest

T0 = datetime(2026, 2, 10, 10, 0, tzinfo=UTC)


def meter_payload(
    meter_id: str = "M-1", *, at: datetime = T0, kwh: float = 1.0, voltage: float = 230.0
) -> dict:
    return {
        "meterId": meter_id,
        "kwhConsumedAc": kwh,
        "voltage": voltage,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
    }


def vehicle_payload(
    vehicle_id: str = "V-1",
    *,
    at: datetime = T0,
    kwh: float = 0.9,
    soc: float = 50.0,
    temp: float = 30.0,
) -> dict:
    return {
        "vehicleId": vehicle_id,
        "soc": soc,
        "kwhDeliveredDc": kwh,
        "batteryTemp": temp,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
    }


def every_minute(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(minutes=i) for i in range(count)]


def ingest(payloads: list[dict] | dict, *, now: datetime | None = None) -> IngestResult:
    """Store readings through the ingest service exactly as the API would (no key scope).

    Without the age limit (as `import_telemetry --allow-older`): the fixtures' fixed days (T0)
    must stay storable however far the real clock has moved on.
    """
    now = now or timezone.now()
    limits = ReadingLimits.of(now=now, max_future=timedelta(minutes=5), allow_older=True)
    parsed: ParsedReadings = readings_parse(payloads, now=now, limits=limits)
    assert not parsed.rejected, parsed.rejected
    return readings_ingest(parsed=parsed, api_key=None)
