"""Reads of the dashboard that the analytics selectors do not answer: SoC per bucket, the
assignments of a vehicle in a window, the depots of the filter."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Avg
from django.db.models.functions import Trunc

from fleet.models import MeterAssignment, Vehicle
from telemetry.models import VehicleReading


@dataclass(frozen=True)
class SocBucket:
    start: datetime
    avg_soc_pct: float


@dataclass(frozen=True)
class AssignmentBand:
    meter_id: str
    valid_from: datetime
    valid_to: datetime | None


def vehicle_soc_series(
    *, vehicle_id: str, start: datetime, end: datetime, bucket: str
) -> list[SocBucket]:
    """Average state of charge per UTC hour or day of [start, end); one statement.

    SoC is not in the rollups (a sum of percentages means nothing): an index range scan of one
    vehicle's readings, (device, recorded_at), grouped in SQL. 30 days of minute readings are
    43,200 rows of one device.
    """
    rows = (
        VehicleReading.objects.filter(
            device__vehicle_id=vehicle_id, recorded_at__gte=start, recorded_at__lt=end
        )
        .annotate(bucket=Trunc("recorded_at", bucket))
        .values("bucket")
        .annotate(avg_soc_pct=Avg("soc_pct"))
        .order_by("bucket")
    )
    return [SocBucket(row["bucket"], round(row["avg_soc_pct"], 2)) for row in rows]


def vehicle_assignment_bands(
    *, vehicle_id: str, start: datetime, end: datetime
) -> list[AssignmentBand]:
    """The vehicle's meter assignments that meet [start, end), oldest first."""
    assignments = (
        MeterAssignment.objects.filter(vehicle__vehicle_id=vehicle_id)
        .overlapping(start, end)
        .select_related("meter")
        .order_by("valid_from")
    )
    return [AssignmentBand(a.meter.meter_id, a.valid_from, a.valid_to) for a in assignments]


def depot_choices() -> list[str]:
    """The depots of the fleet's (not retired) vehicles, for the filter: one index-only DISTINCT."""
    values = Vehicle.objects.active().exclude(depot="")
    return list(values.order_by("depot").values_list("depot", flat=True).distinct())
