"""Reads of alarms, and the devices `alarms_evaluate` finds silent."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from alarms.models import Alarm, AlarmSubject
from fleet.models import MeterAssignment


class AlarmState:
    ACTIVE = "active"
    CLEARED = "cleared"
    ALL = "all"
    CHOICES = (ACTIVE, CLEARED, ALL)


def alarm_list(
    *,
    state: str = AlarmState.ALL,
    alarm_type: str | None = None,
    vehicle_id: str | None = None,
    meter_id: str | None = None,
    depot: str | None = None,
):
    """Alarms, newest opened first, with their devices and acknowledger joined; `depot`: those
    whose vehicle or meter belongs to that depot."""
    alarms = Alarm.objects.select_related("vehicle", "meter", "acknowledged_by")
    if state == AlarmState.ACTIVE:
        alarms = alarms.active()
    elif state == AlarmState.CLEARED:
        alarms = alarms.cleared()
    if alarm_type:
        alarms = alarms.filter(type=alarm_type)
    if vehicle_id:
        alarms = alarms.filter(vehicle__vehicle_id=vehicle_id)
    if meter_id:
        alarms = alarms.filter(meter__meter_id=meter_id)
    if depot:
        alarms = alarms.filter(Q(vehicle__depot=depot) | Q(meter__depot=depot))
    return alarms.order_by("-opened_at", "-id")


def alarm_get(*, alarm_id: int) -> Alarm:
    """One alarm; raises Alarm.DoesNotExist."""
    return Alarm.objects.select_related("vehicle", "meter", "acknowledged_by").get(pk=alarm_id)


@dataclass(frozen=True)
class SilentDevice:
    """A mapped device whose newest reading is older than the cut-off (or that never reported)."""

    subject: str
    vehicle_pk: int
    vehicle_id: str
    meter_pk: int
    meter_id: str
    last_reading_at: datetime | None


def silent_devices(*, silent_since: datetime) -> list[SilentDevice]:
    """Devices an open assignment maps (since before `silent_since`) with no reading after it.

    Two statements (vehicles, meters): the open assignments (partial unique indexes) joined to
    the one live-status row per device.
    """
    mapped = MeterAssignment.objects.open().filter(valid_from__lte=silent_since)
    found: list[SilentDevice] = []
    for subject, side in ((AlarmSubject.VEHICLE, "vehicle"), (AlarmSubject.METER, "meter")):
        silent = Q(**{f"{side}__status__isnull": True}) | Q(
            **{f"{side}__status__recorded_at__lt": silent_since}
        )
        rows = mapped.filter(silent).values_list(
            "vehicle_id",
            "vehicle__vehicle_id",
            "meter_id",
            "meter__meter_id",
            f"{side}__status__recorded_at",
        )
        found += [
            SilentDevice(subject, vehicle_pk, vehicle_code, meter_pk, meter_code, last)
            for vehicle_pk, vehicle_code, meter_pk, meter_code, last in rows
        ]
    return found
