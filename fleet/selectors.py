"""Reads of the device registry and the vehicle-meter assignments."""

from datetime import datetime

from django.db.models import Prefetch, Q

from fleet.models import Meter, MeterAssignment, MeterQuerySet, Vehicle, VehicleQuerySet


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


def assignment_conflict_find(
    *, vehicle: Vehicle, meter: Meter, valid_from: datetime
) -> MeterAssignment | None:
    """The assignment that `meter_assign()` would refuse to cut into, if any (a preview).

    `meter_assign()` closes the open assignments of the vehicle and of the meter that started
    before `valid_from`; any other assignment of either that reaches past `valid_from` is a
    conflict. Assigning the pair that is already current is no conflict. The service and the
    database constraints stay the authority; this only lets a form explain a refusal up front.
    Either device may be unsaved (being added in the admin).
    """
    devices = Q()
    if vehicle.pk is not None:
        devices |= Q(vehicle=vehicle)
        current = assignment_current(vehicle=vehicle)
        if (
            current is not None
            and current.meter_id == meter.pk
            and current.valid_from <= valid_from
        ):
            return None
    if meter.pk is not None:
        devices |= Q(meter=meter)
    if not devices:
        return None  # two devices not registered yet: nothing to overlap
    closable = Q(valid_to__isnull=True, valid_from__lt=valid_from)
    return (
        MeterAssignment.objects.overlapping(valid_from, None)
        .filter(devices)
        .exclude(closable)
        .select_related("vehicle", "meter")
        .order_by("valid_from")
        .first()
    )
