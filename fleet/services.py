"""Writes to the device registry and the vehicle-meter assignments.

Lock order, for every writer of assignments: vehicle rows (by `vehicle_id`), then meter rows (by
`meter_id`). Two concurrent reassignments of one vehicle (or of one meter) therefore run one after
the other, and no two writers can wait on each other in a cycle: `mappings_import` takes all its
vehicles before any meter, `meter_assign` one vehicle then one meter.

The rule itself (what a new period closes, what is refused) is `fleet.rules.AssignmentPlan`, applied
to the periods read once the locks are held; the writes are then set-based.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from fleet.models import Meter, MeterAssignment, Vehicle
from fleet.rules import AssignmentPlan, MappingAction, MappingOutcome
from fleet.selectors import assignment_plan_load, id_chunks


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
    # What each line does (or did), in file order; `applied` is False for a preview.
    outcomes: tuple[MappingOutcome, ...] = ()
    applied: bool = True


def meter_assign(
    *, vehicle: Vehicle, meter: Meter, valid_from: datetime | None = None
) -> MeterAssignment:
    """Make `meter` serve `vehicle` from `valid_from` (default now), closing what it replaces.

    The vehicle's open assignment and the meter's open assignment (the meter moved to another
    vehicle) end at `valid_from`. Any other overlap, such as a back-dated start that cuts into a
    closed period, is refused with `AssignmentConflict`; so is a retired device. Re-assigning the
    current pair is a no-op.

    Composable: inside a caller's transaction it joins it (`atomic(savepoint=False)`, as Zulip's
    actions do), so the admin's new vehicle and its first assignment commit together or not at
    all; a refusal then rolls back the caller's whole transaction. Alone, it is its own.
    """
    with transaction.atomic(savepoint=False):
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


def mappings_import(
    *, rows: Iterable[MappingRow], atomic: bool, apply: bool = True
) -> MappingImportResult:
    """Apply many assignments, in file order, with the rules of `meter_assign`; set-based.

    Each line sees what the lines before it did. `atomic=True`: all or nothing (the first refused
    line raises `AssignmentConflict` naming its line). `atomic=False`: refused lines are reported
    with their reason, the others applied. `apply=False` is the preview: the same plan, nothing
    written, no lock taken; the admin's upload page shows it and then applies with `apply=True`.

    Set-based: the devices are locked in the module's order and their periods read in a few
    statements, the lines are planned in memory (`AssignmentPlan`), then the unknown devices the
    plan needs are registered with one insert per table, the periods it closes updated and the new
    ones inserted, one statement each on PostgreSQL (measured figures: README, Fleet admin).
    """
    rows = list(rows)
    with transaction.atomic(durable=True):
        vehicles = _devices_read(Vehicle, {row.vehicle_id for row in rows}, lock=apply)
        meters = _devices_read(Meter, {row.meter_id for row in rows}, lock=apply)
        plan = assignment_plan_load(
            vehicle_pks=[pk for pk, _ in vehicles.values()],
            meter_pks=[pk for pk, _ in meters.values()],
        )
        plan.retired_vehicle_ids = {key for key, (_, retired) in vehicles.items() if retired}
        plan.retired_meter_ids = {key for key, (_, retired) in meters.items() if retired}
        now = timezone.now()  # read once the locks are held (see _assign)
        outcomes: list[MappingOutcome] = []
        for row in rows:
            outcome = _plan_row(plan, row, now)
            if atomic and outcome.action is MappingAction.REFUSED:
                raise AssignmentConflict(f"line {row.line}: {outcome.reason}")
            outcomes.append(outcome)
        if apply:
            _plan_write(
                plan,
                vehicle_pks=_devices_register(Vehicle, vehicles, plan.created, "vehicle_id"),
                meter_pks=_devices_register(Meter, meters, plan.created, "meter_id"),
            )
    actions = [outcome.action for outcome in outcomes]
    return MappingImportResult(
        assigned=actions.count(MappingAction.ASSIGN),
        unchanged=actions.count(MappingAction.UNCHANGED),
        errors=tuple(
            (outcome.line, outcome.reason)
            for outcome in outcomes
            if outcome.action is MappingAction.REFUSED
        ),
        outcomes=tuple(outcomes),
        applied=apply,
    )


def _plan_row(plan: AssignmentPlan, row: MappingRow, now: datetime) -> MappingOutcome:
    if row.valid_from is not None and timezone.is_naive(row.valid_from):
        return MappingOutcome(
            row.line,
            row.vehicle_id,
            row.meter_id,
            row.valid_from,
            MappingAction.REFUSED,
            reason="validFrom must carry a UTC offset.",
        )
    outcome, _ = plan.apply(
        vehicle_id=row.vehicle_id,
        meter_id=row.meter_id,
        valid_from=row.valid_from or now,
        line=row.line,
    )
    return outcome


def _assign(
    *, vehicle: Vehicle, meter: Meter, valid_from: datetime | None
) -> tuple[MeterAssignment, bool]:
    if valid_from is not None and timezone.is_naive(valid_from):
        raise ValidationError("validFrom must carry a UTC offset.")
    # Lock order: vehicle, then meter (see the module docstring).
    vehicle = Vehicle.objects.select_for_update().get(pk=vehicle.pk)
    meter = Meter.objects.select_for_update().get(pk=meter.pk)
    # "Now" is read once the locks are held: read before, a writer that waited for the lock would
    # start earlier than the assignment it waited for and be refused as an overlap.
    valid_from = valid_from or timezone.now()
    plan = assignment_plan_load(vehicle_pks=[vehicle.pk], meter_pks=[meter.pk])
    plan.retired_vehicle_ids = {vehicle.vehicle_id} if vehicle.retired_at else set()
    plan.retired_meter_ids = {meter.meter_id} if meter.retired_at else set()
    outcome, period = plan.apply(
        vehicle_id=vehicle.vehicle_id, meter_id=meter.meter_id, valid_from=valid_from
    )
    if outcome.action is MappingAction.REFUSED:
        raise AssignmentConflict(outcome.reason)
    if outcome.action is MappingAction.UNCHANGED:
        return MeterAssignment.objects.get(pk=period.pk), False
    (created_pk,) = _plan_write(
        plan,
        vehicle_pks={vehicle.vehicle_id: vehicle.pk},
        meter_pks={meter.meter_id: meter.pk},
    )
    return MeterAssignment.objects.get(pk=created_pk), True


def _plan_write(
    plan: AssignmentPlan, *, vehicle_pks: dict[str, int], meter_pks: dict[str, int]
) -> list[int]:
    """Close the periods the plan ends, then insert the new ones; the new rows' ids.

    Closing first keeps every intermediate state within the constraints: closing only shrinks
    periods, and the new rows, already given their final end, overlap nothing.
    """
    closed = plan.closed_existing()
    created = plan.created
    new_rows = (
        [vehicle_pks[p.vehicle_id] for p in created],
        [meter_pks[p.meter_id] for p in created],
        [p.valid_from for p in created],
        [p.valid_to for p in created],
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if closed:
                cursor.execute(_CLOSE_SQL, [[p.pk for p in closed], [p.valid_to for p in closed]])
            if not created:
                return []
            cursor.execute(_INSERT_SQL, list(new_rows))
            return [pk for (pk,) in cursor.fetchall()]
    MeterAssignment.objects.bulk_update(
        [MeterAssignment(pk=p.pk, valid_to=p.valid_to) for p in closed],
        ["valid_to"],
        batch_size=_BATCH,
    )
    rows = MeterAssignment.objects.bulk_create(
        [
            MeterAssignment(vehicle_id=v, meter_id=m, valid_from=start, valid_to=end)
            for v, m, start, end in zip(*new_rows, strict=True)
        ],
        batch_size=_BATCH,
    )
    return [row.pk for row in rows]


# The set-based writes of `mappings_import` on PostgreSQL: one statement each, whatever the number
# of lines, the values passed as arrays. The ORM's `bulk_update` (a CASE of one branch per row) and
# `bulk_create` (a parameter per value) took 13 s of 30 s for 10,000 lines on the shared test
# machine; these statements leave the time to the database. Measured figures: README, Fleet admin.
_CLOSE_SQL = """
UPDATE fleet_meterassignment AS assignment SET valid_to = closing.valid_to
FROM unnest(%s::bigint[], %s::timestamptz[]) AS closing (id, valid_to)
WHERE assignment.id = closing.id
"""
_INSERT_SQL = """
INSERT INTO fleet_meterassignment (vehicle_id, meter_id, valid_from, valid_to, created_at)
SELECT vehicle_id, meter_id, valid_from, valid_to, now()
FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::timestamptz[])
    AS new (vehicle_id, meter_id, valid_from, valid_to)
RETURNING id
"""
# Registering unknown devices: `ON CONFLICT DO NOTHING`, a concurrent registration wins quietly.
_REGISTER_SQL = {
    "fleet_vehicle": """
INSERT INTO fleet_vehicle (vehicle_id, display_name, depot, created_at)
SELECT unnest(%s::varchar[]), '', '', now() ON CONFLICT (vehicle_id) DO NOTHING
""",
    "fleet_meter": """
INSERT INTO fleet_meter (meter_id, display_name, depot, created_at)
SELECT unnest(%s::varchar[]), '', '', now() ON CONFLICT (meter_id) DO NOTHING
""",
}
_BATCH = 1000


def _devices_read(
    model: type[Model], external_ids: set[str], *, lock: bool
) -> dict[str, tuple[int, bool]]:
    """{external id: (pk, retired)} of the registered ones, locked in id order with `lock`."""
    field = model.external_id_field
    keys = sorted(external_ids)
    if connection.vendor == "postgresql":
        # One statement with the ids as an array (see _PERIODS_SQL in fleet.selectors for why).
        table, column = model._meta.db_table, model._meta.get_field(field).column
        sql = _DEVICES_SQL.format(table=table, column=column, lock="FOR UPDATE" if lock else "")
        with connection.cursor() as cursor:
            cursor.execute(sql, [keys])
            return {key: (pk, retired_at is not None) for key, pk, retired_at in cursor}
    found: dict[str, tuple[int, bool]] = {}
    for chunk in id_chunks(keys):
        devices = model.objects.filter(**{f"{field}__in": chunk}).order_by(field)
        if lock:
            devices = devices.select_for_update()
        for key, pk, retired_at in devices.values_list(field, "pk", "retired_at"):
            found[key] = (pk, retired_at is not None)
    return found


# Identifiers only are formatted in (the model's own table and column); the ids are a parameter.
_DEVICES_SQL = """
SELECT {column}, id, retired_at FROM {table} WHERE {column} = ANY(%s::varchar[])
ORDER BY {column} {lock}
"""


def _devices_register(
    model: type[Model], known: dict[str, tuple[int, bool]], created: list, attribute: str
) -> dict[str, int]:
    """{external id: pk} for every device the new periods name; registers the unknown ones."""
    pks = {key: pk for key, (pk, _) in known.items()}
    missing = sorted({getattr(p, attribute) for p in created} - pks.keys())
    field = model.external_id_field
    if not missing:
        return pks
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_REGISTER_SQL[model._meta.db_table], [missing])
    else:
        model.objects.bulk_create(
            [model(**{field: key}) for key in missing], batch_size=_BATCH, ignore_conflicts=True
        )
    # Not locked: the meters are locked already (lock order). A device registered just now by a
    # concurrent writer and given a period by it meanwhile is the rare case the plan cannot see:
    # the exclusion constraints then refuse the insert and the whole import rolls back.
    registered = _devices_read(model, set(missing), lock=False)
    pks.update((key, pk) for key, (pk, _) in registered.items())
    return pks


def device_retire(*, device: Vehicle | Meter, at: datetime | None = None) -> Vehicle | Meter:
    """Retire a vehicle or meter at `at` (default now): its open assignment ends then.

    The device keeps its history and readings; it leaves the fleet lists and alarms and can no
    longer be assigned. Retiring a retired device changes nothing.
    """
    if at is not None and timezone.is_naive(at):
        raise ValidationError("The retirement moment must carry a UTC offset.")
    with transaction.atomic(savepoint=False):
        model = type(device)
        device = model.objects.select_for_update().get(pk=device.pk)
        if device.retired_at is not None:
            return device
        at = at or timezone.now()
        field = "vehicle" if model is Vehicle else "meter"
        open_assignment = MeterAssignment.objects.open().filter(**{field: device}).first()
        if open_assignment is not None:
            if open_assignment.valid_from >= at:
                raise AssignmentConflict(
                    f"{model._meta.verbose_name.capitalize()} {device} has an assignment starting "
                    f"at {open_assignment.valid_from.isoformat()}: retire it after that moment."
                )
            open_assignment.valid_to = at
            open_assignment.save(update_fields=["valid_to"])
        device.retired_at = at
        device.save(update_fields=["retired_at"])
        return device
