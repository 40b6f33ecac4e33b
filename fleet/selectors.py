"""Reads of the device registry and the vehicle-meter assignments."""

from collections.abc import Iterable, Iterator
from datetime import datetime

from django.db import connection
from django.db.models import Prefetch

from fleet.models import Meter, MeterAssignment, MeterQuerySet, Vehicle, VehicleQuerySet
from fleet.rules import AssignmentPlan, MappingOutcome, PlannedPeriod


def vehicle_list() -> VehicleQuerySet:
    """Vehicles by id, each with `current_meter_id`; chain the queryset's filters onto it."""
    return Vehicle.objects.with_current_meter().order_by("vehicle_id")


def meter_list() -> MeterQuerySet:
    """Meters by id, each with `current_vehicle_id`; chain the queryset's filters onto it."""
    return Meter.objects.with_current_vehicle().order_by("meter_id")


def vehicle_get(*, vehicle_id: str) -> Vehicle:
    """One vehicle with `current_meter_id` and `assignment_history` (newest first).

    Raises `Vehicle.DoesNotExist` for an unknown id.
    """
    history = MeterAssignment.objects.select_related("meter").order_by("-valid_from")
    return (
        Vehicle.objects.with_current_meter()
        .prefetch_related(Prefetch("assignments", queryset=history, to_attr="assignment_history"))
        .get(vehicle_id=vehicle_id)
    )


def assignment_current(*, vehicle: Vehicle) -> MeterAssignment | None:
    """The vehicle's open assignment, if it has one."""
    return MeterAssignment.objects.open().filter(vehicle=vehicle).first()


def assignment_plan_load(
    *, vehicle_pks: Iterable[int | None], meter_pks: Iterable[int | None]
) -> AssignmentPlan:
    """An `AssignmentPlan` holding every period of these vehicles and meters (None: unsaved)."""
    vehicle_pks = sorted({pk for pk in vehicle_pks if pk is not None})
    meter_pks = sorted({pk for pk in meter_pks if pk is not None})
    plan = AssignmentPlan()
    for pk, vehicle_id, meter_id, valid_from, valid_to in _periods_of(vehicle_pks, meter_pks):
        plan.add_existing(PlannedPeriod(vehicle_id, meter_id, valid_from, valid_to, pk=pk))
    return plan


# The periods of many devices at once, on PostgreSQL: the ids passed as two arrays in one
# statement. The ORM's `__in` needs a parameter per id, so 100,000 devices meant 20 statements
# whose parameter handling alone took longer than the database (14 of 25 s on the shared machine).
_PERIODS_SQL = """
SELECT assignment.id, vehicle.vehicle_id, meter.meter_id, assignment.valid_from,
       assignment.valid_to
FROM fleet_meterassignment AS assignment
JOIN fleet_vehicle AS vehicle ON vehicle.id = assignment.vehicle_id
JOIN fleet_meter AS meter ON meter.id = assignment.meter_id
WHERE assignment.vehicle_id = ANY(%s::bigint[]) OR assignment.meter_id = ANY(%s::bigint[])
"""


def _periods_of(vehicle_pks: list[int], meter_pks: list[int]) -> Iterator[tuple]:
    if not (vehicle_pks or meter_pks):
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_PERIODS_SQL, [vehicle_pks, meter_pks])
            yield from cursor.fetchall()
        return
    seen: set[int] = set()
    columns = ("pk", "vehicle__vehicle_id", "meter__meter_id", "valid_from", "valid_to")
    for field, pks in (("vehicle_id", vehicle_pks), ("meter_id", meter_pks)):
        for chunk in id_chunks(pks):
            for row in MeterAssignment.objects.filter(**{f"{field}__in": chunk}).values_list(
                *columns
            ):
                if row[0] not in seen:
                    seen.add(row[0])
                    yield row


def id_chunks(values: list) -> Iterator[list]:
    """`values` in lists small enough for one `__in` (SQLite takes at most 999 parameters)."""
    size = 10_000 if connection.vendor == "postgresql" else 900
    for start in range(0, len(values), size):
        yield values[start : start + size]


def assignment_preview(*, vehicle: Vehicle, meter: Meter, valid_from: datetime) -> MappingOutcome:
    """What `meter_assign()` would do now: assign (ending which periods), unchanged, or refuse.

    The rule is the service's own (`AssignmentPlan`); this only lets a form explain a refusal, or
    ask to confirm taking a meter from another vehicle, before the save. Either device may be
    unsaved (being added in the admin). The service, under its locks, stays the authority.
    """
    plan = assignment_plan_load(vehicle_pks=[vehicle.pk], meter_pks=[meter.pk])
    if vehicle.retired_at is not None:
        plan.retired_vehicle_ids.add(vehicle.vehicle_id)
    if meter.retired_at is not None:
        plan.retired_meter_ids.add(meter.meter_id)
    outcome, _ = plan.apply(
        vehicle_id=vehicle.vehicle_id, meter_id=meter.meter_id, valid_from=valid_from
    )
    return outcome
