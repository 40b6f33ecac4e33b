from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from fleet.models import Meter, Vehicle


class AlarmType(models.TextChoices):
    LOW_EFFICIENCY = "LOW_EFFICIENCY", "efficiency below the threshold (FAULT_DETECTED)"
    ANOMALY = "ANOMALY", "more DC delivered than AC consumed"
    DEVICE_OFFLINE = "DEVICE_OFFLINE", "a mapped device stopped reporting"


class AlarmSubject(models.TextChoices):
    """What an alarm is about: the vehicle (efficiency, a silent vehicle) or a silent meter."""

    VEHICLE = "VEHICLE", "vehicle"
    METER = "METER", "meter"


class AlarmQuerySet(models.QuerySet):
    def active(self) -> "AlarmQuerySet":
        return self.filter(cleared_at__isnull=True)

    def cleared(self) -> "AlarmQuerySet":
        return self.filter(cleared_at__isnull=False)


class Alarm(models.Model):
    """One row per alarm: opened when a verdict turns bad, cleared (never deleted) when it is good.

    `vehicle` and `meter` are the devices concerned; `subject` says which one the alarm is about
    (the one-active-alarm rule is per subject and type). `figures` are the figures at opening,
    `latest` those of the newest evaluation (JSON, camelCase as on the wire).
    """

    type = models.CharField(max_length=20, choices=AlarmType.choices)
    subject = models.CharField(max_length=10, choices=AlarmSubject.choices)
    vehicle = models.ForeignKey(
        Vehicle, on_delete=models.CASCADE, null=True, blank=True, related_name="alarms"
    )
    meter = models.ForeignKey(
        Meter, on_delete=models.CASCADE, null=True, blank=True, related_name="alarms"
    )
    opened_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    figures = models.JSONField(default=dict, help_text="The figures when the alarm opened.")
    latest = models.JSONField(default=dict, help_text="The figures of the newest evaluation.")
    updated_at = models.DateTimeField(default=timezone.now)

    objects = AlarmQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # At most one active alarm per (vehicle, type) for the alarms about a vehicle...
            models.UniqueConstraint(
                fields=["vehicle", "type"],
                condition=Q(cleared_at__isnull=True, subject="VEHICLE"),
                name="alarms_alarm_one_active_per_vehicle",
            ),
            # ... and per (meter, type) for those about a meter.
            models.UniqueConstraint(
                fields=["meter", "type"],
                condition=Q(cleared_at__isnull=True, subject="METER"),
                name="alarms_alarm_one_active_per_meter",
            ),
            models.CheckConstraint(
                condition=(Q(subject="VEHICLE", vehicle__isnull=False))
                | Q(subject="METER", meter__isnull=False),
                name="alarms_alarm_subject_present",
            ),
            models.CheckConstraint(
                condition=Q(type="DEVICE_OFFLINE") | Q(subject="VEHICLE"),
                name="alarms_alarm_efficiency_is_about_a_vehicle",
            ),
            models.CheckConstraint(
                condition=Q(cleared_at__isnull=True) | Q(cleared_at__gte=models.F("opened_at")),
                name="alarms_alarm_cleared_after_opened",
            ),
        ]
        indexes = [
            # alarms_evaluate(): the active alarms (few) of every kind, and the "active" list.
            models.Index(
                fields=["type"], condition=Q(cleared_at__isnull=True), name="alarms_alarm_active"
            ),
            # alarm_list(vehicleId=…) / the vehicle admin's link, newest first.
            models.Index(fields=["vehicle", "-opened_at"], name="alarms_alarm_vehicle_opened"),
            # alarm_list(meterId=…) / the meter admin's link, newest first.
            models.Index(fields=["meter", "-opened_at"], name="alarms_alarm_meter_opened"),
            # The list's cursor order.
            models.Index(fields=["-opened_at", "-id"], name="alarms_alarm_opened"),
        ]

    def __str__(self) -> str:
        device = self.vehicle if self.subject == AlarmSubject.VEHICLE else self.meter
        state = "active" if self.cleared_at is None else "cleared"
        return f"{self.type} {self.subject.lower()} {device} ({state})"

    @property
    def is_active(self) -> bool:
        return self.cleared_at is None
