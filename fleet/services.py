"""Writes to the device registry and the vehicle-meter assignments.

Lock order, for every writer of assignments: the vehicle row, then the meter row. Two concurrent
reassignments of one vehicle (or of one meter) therefore run one after the other, and no two
writers can wait on each other in a cycle.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from fleet.models import Meter, MeterAssignment, Vehicle


class AssignmentConflict(ValidationError):
    """The requested period overlaps an assignment that cannot simply be closed."""


class DeviceNotRegistered(LookupError):
    """No device has this id and registering it was not allowed: `args` = (field, device id)."""


@dataclass(frozen=True)
class MappingRow:
    vehicle_id: str
    meter_id: str
    valid_from: datetime | None
    line: int = 0


@dataclass(frozen=True)
class MappingImportResult:
    assigned: int
    unchanged: int
    errors: tuple[tuple[int, str], ...]


def meter_assign(
    *, vehicle: Vehicle, meter: Meter, valid_from: datetime | None = None
) -> MeterAssignment:
    """Make `meter` serve `vehicle` from `valid_from` (default now), closing what it replaces.

    The vehicle's open assignment and the meter's open assignment (the meter moved to another
    vehicle) end at `valid_from`. Any other overlap, such as a back-dated start that cuts into a
    closed period, is refused with `AssignmentConflict`. Re-assigning the current pair is a no-op.
    """
    with transaction.atomic(durable=True):
        assignment, _ = _assign(vehicle=vehicle, meter=meter, valid_from=valid_from)
        return assignment


@dataclass(frozen=True)
class MappingResult:
    assignment: MeterAssignment
    created: bool


def mapping_create(
    *,
    vehicle_id: str,
    meter_id: str,
    valid_from: datetime | None = None,
    register_unknown: bool = True,
) -> MappingResult:
    """`meter_assign` by external ids; says whether it created a row.

    Unknown devices are registered, or with `register_unknown=False` refused with
    `DeviceNotRegistered` (nothing written). One transaction: two identical concurrent requests
    get one `created=True` between them.
    """
    with transaction.atomic(durable=True):
        if register_unknown:
            vehicle, _ = Vehicle.objects.get_or_create(vehicle_id=vehicle_id)
            meter, _ = Meter.objects.get_or_create(meter_id=meter_id)
        else:
            vehicle = Vehicle.objects.filter(vehicle_id=vehicle_id).first()
            if vehicle is None:
                raise DeviceNotRegistered("vehicleId", vehicle_id)
            meter = Meter.objects.filter(meter_id=meter_id).first()
            if meter is None:
                raise DeviceNotRegistered("meterId", meter_id)
        assignment, created = _assign(vehicle=vehicle, meter=meter, valid_from=valid_from)
        return MappingResult(assignment=assignment, created=created)


def mappings_import(*, rows: Iterable[MappingRow], atomic: bool) -> MappingImportResult:
    """Apply many assignments with the rules of `meter_assign`.

    `atomic=True`: all or nothing (the first bad row raises `AssignmentConflict` naming its line).
    `atomic=False`: each row in its own transaction; bad rows are reported, the others applied.
    """
    if atomic:
        with transaction.atomic(durable=True):
            assigned = unchanged = 0
            for row in rows:
                try:
                    created = _assign_row(row)
                except ValidationError as error:
                    raise AssignmentConflict(f"line {row.line}: {_message(error)}") from error
                assigned += created
                unchanged += not created
            return MappingImportResult(assigned=assigned, unchanged=unchanged, errors=())

    assigned = unchanged = 0
    errors: list[tuple[int, str]] = []
    for row in rows:
        try:
            with transaction.atomic(durable=True):
                created = _assign_row(row)
        except ValidationError as error:
            errors.append((row.line, _message(error)))
            continue
        assigned += created
        unchanged += not created
    return MappingImportResult(assigned=assigned, unchanged=unchanged, errors=tuple(errors))


def _assign_row(row: MappingRow) -> bool:
    """Apply one row; True if an assignment was created, False if it was already in place."""
    vehicle, _ = Vehicle.objects.get_or_create(vehicle_id=row.vehicle_id)
    meter, _ = Meter.objects.get_or_create(meter_id=row.meter_id)
    _, created = _assign(vehicle=vehicle, meter=meter, valid_from=row.valid_from)
    return created


def _assign(
    *, vehicle: Vehicle, meter: Meter, valid_from: datetime | None
) -> tuple[MeterAssignment, bool]:
    if valid_from is not None and timezone.is_naive(valid_from):
        raise ValidationError("validFrom must carry a UTC offset.")
    # Lock order: vehicle, then meter (see the module docstring).
    Vehicle.objects.select_for_update().filter(pk=vehicle.pk).get()
    Meter.objects.select_for_update().filter(pk=meter.pk).get()
    # "Now" is read once the locks are held: read before, a writer that waited for the lock would
    # start earlier than the assignment it waited for and be refused as an overlap.
    valid_from = valid_from or timezone.now()

    current = MeterAssignment.objects.open().filter(vehicle=vehicle).first()
    if current is not None and current.meter_id == meter.pk and current.valid_from <= valid_from:
        return current, False

    MeterAssignment.objects.open().filter(
        Q(vehicle=vehicle) | Q(meter=meter), valid_from__lt=valid_from
    ).update(valid_to=valid_from)

    clash = (
        MeterAssignment.objects.overlapping(valid_from, None)
        .filter(Q(vehicle=vehicle) | Q(meter=meter))
        .select_related("vehicle", "meter")
        .order_by("valid_from")
        .first()
    )
    if clash is not None:
        raise AssignmentConflict(
            f"Vehicle {vehicle.vehicle_id} cannot be assigned to meter {meter.meter_id} from "
            f"{valid_from.isoformat()}: that overlaps the assignment {clash.describe()}."
        )
    assignment = MeterAssignment.objects.create(vehicle=vehicle, meter=meter, valid_from=valid_from)
    return assignment, True


def _message(error: ValidationError) -> str:
    return "; ".join(error.messages)
