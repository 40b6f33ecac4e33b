"""Writes of alarms: the evaluation that opens and clears them, and acknowledgement."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from alarms.models import Alarm, AlarmSubject, AlarmType
from alarms.selectors import SilentDevice, silent_devices
from analytics.selectors import (
    PerformanceStatus,
    VehicleFigures,
    fleet_attribution,
    fleet_vehicle_figures,
    fleet_window,
)
from api.bulk import rows_insert
from fleet.models import Meter, MeterAssignment, Vehicle
from notifications.models import DeliveryEvent
from notifications.services import deliveries_enqueue
from telemetry.models import MeterStatus, VehicleStatus

# pg_advisory_xact_lock key of alarms_evaluate(): one evaluation at a time, across processes.
EVALUATION_LOCK_KEY = 7_411_001

# Statuses in which DC <= AC was judged on a real charge: what clears an ANOMALY.
_JUDGED_CONSISTENT = {PerformanceStatus.OK, PerformanceStatus.FAULT_DETECTED}

_Key = tuple[str, str, int]  # (type, subject, pk of the subject)


@dataclass(frozen=True)
class AlarmEvaluation:
    evaluated_at: datetime
    window_start: datetime
    vehicles: int
    opened: dict[str, int] = field(default_factory=dict)
    cleared: dict[str, int] = field(default_factory=dict)
    active: int = 0
    deliveries: int = 0


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _efficiency_figures(
    figures: VehicleFigures, *, start: datetime, end: datetime, threshold: float
) -> dict:
    return {
        "windowStart": _iso(start),
        "windowEnd": _iso(end),
        "meterIds": list(figures.meter_ids),
        "totalAcConsumedKwh": figures.ac_kwh,
        "totalDcDeliveredKwh": figures.dc_kwh,
        "efficiencyPct": figures.efficiency_pct,
        "status": figures.status,
        "thresholdPct": threshold,
    }


def _offline_figures(last_reading_at: datetime | None, *, now: datetime) -> dict:
    silent = None if last_reading_at is None else (now - last_reading_at).total_seconds() / 60
    return {
        "lastReadingAt": _iso(last_reading_at),
        "silentMinutes": None if silent is None else round(silent, 1),
        "offlineAfterMinutes": settings.ALARM_OFFLINE_AFTER_MINUTES,
        "evaluatedAt": _iso(now),
    }


ATTRIBUTION_DAYS = 7


def _attribution_of(
    vehicles: dict[int, str], *, now: datetime, threshold: float
) -> dict[int, list[dict]]:
    """The charger or vehicle to blame, per vehicle pk, for the figures of LOW_EFFICIENCY alarms.

    One fleet attribution statement over the last ATTRIBUTION_DAYS, run only when such alarms
    open; a vehicle the history says nothing about is left out (its alarm carries None).
    """
    if not vehicles:
        return {}
    attribution = fleet_attribution(days=ATTRIBUTION_DAYS, now=now, threshold=threshold)
    found = {}
    for pk, code in vehicles.items():
        suspects = attribution.for_vehicle(code)
        if suspects:
            found[pk] = [
                {
                    "verdict": suspect.verdict,
                    "meterId": suspect.meter_id,
                    "vehicleId": suspect.vehicle_id,
                    "pairings": [
                        {
                            "vehicleId": p.vehicle_id,
                            "meterId": p.meter_id,
                            "efficiencyPct": p.efficiency_pct,
                            "status": p.status,
                        }
                        for p in suspect.pairings
                    ],
                }
                for suspect in suspects
            ]
    return found


def _lock() -> None:
    """Serialize evaluations: PostgreSQL's transaction-scoped advisory lock.

    SQLite has one writer at a time; its transaction is the lock there.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EVALUATION_LOCK_KEY])


class _Plan:
    """The alarm changes of one evaluation, gathered before they are written in bulk."""

    def __init__(self, active: list[Alarm], now: datetime):
        self.now = now
        self.active: dict[_Key, Alarm] = {
            (
                a.type,
                a.subject,
                a.vehicle_id if a.subject == AlarmSubject.VEHICLE else a.meter_id,
            ): a
            for a in active
        }
        self.new: list[Alarm] = []
        self.cleared: list[Alarm] = []
        self.touched: list[Alarm] = []

    def refresh(self, key: _Key, latest: dict) -> Alarm | None:
        alarm = self.active.get(key)
        if alarm is not None:
            alarm.latest = latest
            alarm.updated_at = self.now
            self.touched.append(alarm)
        return alarm

    def open(self, alarm: Alarm) -> None:
        alarm.opened_at = alarm.updated_at = self.now
        alarm.latest = dict(alarm.figures)
        self.new.append(alarm)

    def clear(self, alarm: Alarm) -> None:
        # Never before it opened, even if the clock stepped back since.
        alarm.cleared_at = max(self.now, alarm.opened_at)
        self.cleared.append(alarm)


def _plan_efficiency(
    plan: _Plan,
    all_figures: list[VehicleFigures],
    *,
    start: datetime,
    end: datetime,
    threshold: float,
) -> None:
    clear_above = threshold + settings.ALARM_CLEAR_MARGIN_PCT

    def efficiency_recovered(figures: VehicleFigures) -> bool:
        # Hysteresis: back above the threshold by the margin, not merely at it. A window with
        # nothing to judge (IDLE, INSUFFICIENT_DATA) keeps the alarm: no evidence of a fix.
        return figures.efficiency_pct is not None and figures.efficiency_pct >= clear_above

    def consistent(figures: VehicleFigures) -> bool:
        return figures.status in _JUDGED_CONSISTENT

    rules = (
        (AlarmType.LOW_EFFICIENCY, PerformanceStatus.FAULT_DETECTED, efficiency_recovered),
        (AlarmType.ANOMALY, PerformanceStatus.ANOMALY, consistent),
    )
    for figures in all_figures:
        latest = _efficiency_figures(figures, start=start, end=end, threshold=threshold)
        vehicle = Vehicle(pk=figures.vehicle_pk, vehicle_id=figures.vehicle_id)
        for alarm_type, opening_status, clears in rules:
            alarm = plan.refresh((alarm_type, AlarmSubject.VEHICLE, vehicle.pk), latest)
            if alarm is not None:
                if clears(figures):
                    plan.clear(alarm)
            elif figures.status == opening_status:
                plan.open(
                    Alarm(
                        type=alarm_type,
                        subject=AlarmSubject.VEHICLE,
                        vehicle=vehicle,
                        figures=dict(latest),
                    )
                )


def _plan_offline(plan: _Plan, silent: list[SilentDevice]) -> None:
    still_silent: set[_Key] = set()
    for device in silent:
        pk = device.vehicle_pk if device.subject == AlarmSubject.VEHICLE else device.meter_pk
        key = (AlarmType.DEVICE_OFFLINE, device.subject, pk)
        still_silent.add(key)
        latest = _offline_figures(device.last_reading_at, now=plan.now)
        if plan.refresh(key, latest) is None:
            plan.open(
                Alarm(
                    type=AlarmType.DEVICE_OFFLINE,
                    subject=device.subject,
                    vehicle=Vehicle(pk=device.vehicle_pk, vehicle_id=device.vehicle_id),
                    meter=Meter(pk=device.meter_pk, meter_id=device.meter_id),
                    figures=latest,
                )
            )
    reporting = [
        alarm
        for key, alarm in plan.active.items()
        if key[0] == AlarmType.DEVICE_OFFLINE and key not in still_silent
    ]
    if not reporting:
        return
    # Reporting again (or no longer mapped): clear, with the newest reading as the latest figures.
    last_vehicle = dict(
        VehicleStatus.objects.filter(
            device__in=[a.vehicle_id for a in reporting if a.subject == AlarmSubject.VEHICLE]
        ).values_list("device", "recorded_at")
    )
    last_meter = dict(
        MeterStatus.objects.filter(
            device__in=[a.meter_id for a in reporting if a.subject == AlarmSubject.METER]
        ).values_list("device", "recorded_at")
    )
    for alarm in reporting:
        last = (
            last_vehicle.get(alarm.vehicle_id)
            if alarm.subject == AlarmSubject.VEHICLE
            else last_meter.get(alarm.meter_id)
        )
        plan.refresh(alarm_key(alarm), _offline_figures(last, now=plan.now))
        plan.clear(alarm)


def alarm_key(alarm: Alarm) -> _Key:
    pk = alarm.vehicle_id if alarm.subject == AlarmSubject.VEHICLE else alarm.meter_id
    return (alarm.type, alarm.subject, pk)


def _meters_of_new_efficiency_alarms(plan: _Plan, all_figures: list[VehicleFigures]) -> None:
    """The meter concerned: the one serving the vehicle now, else its last one in the window."""
    vehicles = {
        a.vehicle_id: a for a in plan.new if a.type != AlarmType.DEVICE_OFFLINE
    }  # one per vehicle and type; both types share the meter
    if not vehicles:
        return
    serving = dict(
        MeterAssignment.objects.open()
        .filter(vehicle__in=list(vehicles))
        .values_list("vehicle_id", "meter__meter_id")
    )
    codes = {
        f.vehicle_pk: serving.get(f.vehicle_pk) or f.meter_ids[-1]
        for f in all_figures
        if f.vehicle_pk in vehicles
    }
    meters = {m.meter_id: m for m in Meter.objects.filter(meter_id__in=set(codes.values()))}
    for alarm in plan.new:
        if alarm.type != AlarmType.DEVICE_OFFLINE:
            alarm.meter = meters.get(codes[alarm.vehicle_id])


def alarms_evaluate(*, now: datetime | None = None) -> AlarmEvaluation:
    """Open and clear every alarm from the rollups of the last ALARM_WINDOW_HOURS; idempotent.

    One transaction: the advisory lock, the figures of every mapped vehicle (one statement), the
    silent devices (two), the active alarms, then the changes in bulk and their notification
    deliveries (the outbox). A second evaluation running at the same time waits for the lock and
    then sees this one's alarms, so it opens no duplicates (the partial unique constraints
    would refuse them anyway).
    """
    now = now or timezone.now()
    threshold = settings.ANALYTICS_FAULT_THRESHOLD_PCT
    start, end = fleet_window(hours=settings.ALARM_WINDOW_HOURS, now=now)
    with transaction.atomic(durable=True):
        _lock()
        all_figures = fleet_vehicle_figures(
            start=start,
            end=end,
            threshold=threshold,
            min_charge_kwh=settings.ANALYTICS_MIN_CHARGE_KWH,
        )
        silent = silent_devices(
            silent_since=now - timedelta(minutes=settings.ALARM_OFFLINE_AFTER_MINUTES)
        )
        plan = _Plan(list(Alarm.objects.active()), now)
        _plan_efficiency(plan, all_figures, start=start, end=end, threshold=threshold)
        _plan_offline(plan, silent)
        _meters_of_new_efficiency_alarms(plan, all_figures)
        codes = {figures.vehicle_pk: figures.vehicle_id for figures in all_figures}
        attribution = _attribution_of(
            {
                a.vehicle_id: codes[a.vehicle_id]
                for a in plan.new
                if a.type == AlarmType.LOW_EFFICIENCY
            },
            now=now,
            threshold=threshold,
        )
        for alarm in plan.new:
            if alarm.type == AlarmType.LOW_EFFICIENCY:
                alarm.figures["attribution"] = attribution.get(alarm.vehicle_id)

        rows_insert(model=Alarm, objects=plan.new)
        Alarm.objects.bulk_update(
            plan.touched, ["latest", "updated_at", "cleared_at"], batch_size=1000
        )
        deliveries = deliveries_enqueue(
            changes=[(a, DeliveryEvent.OPENED) for a in plan.new]
            + [(a, DeliveryEvent.CLEARED) for a in plan.cleared],
            now=now,
        )
        active = len(plan.active) - len(plan.cleared) + len(plan.new)
    return AlarmEvaluation(
        evaluated_at=now,
        window_start=start,
        vehicles=len(all_figures),
        opened=dict(Counter(str(a.type) for a in plan.new)),
        cleared=dict(Counter(str(a.type) for a in plan.cleared)),
        active=active,
        deliveries=deliveries,
    )


def alarms_acknowledge(*, alarm_ids: Sequence[int], user) -> int:
    """Acknowledge these alarms as `user`; those already acknowledged keep their first one."""
    with transaction.atomic(durable=True):
        return Alarm.objects.filter(pk__in=alarm_ids, acknowledged_at__isnull=True).update(
            acknowledged_at=timezone.now(), acknowledged_by=user
        )


def alarm_acknowledge(*, alarm_id: int, user) -> bool:
    """Acknowledge one alarm (idempotent); raises Alarm.DoesNotExist. True if this call did it."""
    if not Alarm.objects.filter(pk=alarm_id).exists():
        raise Alarm.DoesNotExist(alarm_id)
    return alarms_acknowledge(alarm_ids=[alarm_id], user=user) == 1
