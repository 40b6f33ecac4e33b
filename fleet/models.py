from django.contrib.postgres.fields import DateTimeRangeField, RangeBoundary, RangeOperators
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Func, Q
from django.db.models.functions import Now
from django.utils import timezone

from fleet.constraints import PostgresExclusionConstraint
from fleet.rules import assignment_clash, period_text

# The contract's device id, matched in full. Python's `$` also matches before a trailing newline,
# so the end is `\Z` (RegexValidator and msgspec apply the pattern with `re.search`). JSON Schema
# (ECMA 262) has no `\Z` and its `$` is the very end: the OpenAPI document shows the schema form.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}\Z"
DEVICE_ID_SCHEMA_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
DEVICE_ID_RULE = "1–64 characters of A–Z a–z 0–9 _ - . :"
device_id_validator = RegexValidator(
    DEVICE_ID_PATTERN, f"A device id is {DEVICE_ID_RULE}.", code="invalid_device_id"
)


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class DeviceQuerySet(models.QuerySet):
    def active(self):
        """Devices in service (not retired): what fleet lists and alarms show."""
        return self.filter(retired_at__isnull=True)

    def retired(self):
        """Retired devices: kept with their history, assigned no more."""
        return self.filter(retired_at__isnull=False)


class VehicleQuerySet(DeviceQuerySet):
    def with_current_meter(self) -> "VehicleQuerySet":
        """Annotate `current_meter_id` (the meter's external id) from the open assignment."""
        open_assignment = MeterAssignment.objects.filter(
            vehicle=models.OuterRef("pk"), valid_to__isnull=True, valid_from__lte=Now()
        )
        return self.annotate(
            current_meter_id=models.Subquery(open_assignment.values("meter__meter_id")[:1])
        )

    def with_meter(self, has_meter: bool) -> "VehicleQuerySet":
        """Vehicles a meter serves now (True), or that no meter serves now (False)."""
        current = MeterAssignment.objects.current().filter(vehicle=models.OuterRef("pk"))
        return (
            self.filter(models.Exists(current))
            if has_meter
            else self.exclude(models.Exists(current))
        )

    def served_by(self, meter_id: str) -> "VehicleQuerySet":
        """The vehicle (none or one) that the meter with external id `meter_id` serves now."""
        current = MeterAssignment.objects.current().filter(meter__meter_id=meter_id)
        return self.filter(pk__in=current.values("vehicle"))


class MeterQuerySet(DeviceQuerySet):
    def with_current_vehicle(self) -> "MeterQuerySet":
        """Annotate `current_vehicle_id` (the vehicle's external id) from the open assignment."""
        open_assignment = MeterAssignment.objects.filter(
            meter=models.OuterRef("pk"), valid_to__isnull=True, valid_from__lte=Now()
        )
        return self.annotate(
            current_vehicle_id=models.Subquery(open_assignment.values("vehicle__vehicle_id")[:1])
        )

    def with_vehicle(self, has_vehicle: bool) -> "MeterQuerySet":
        """Meters serving a vehicle now (True), or serving none now (False)."""
        current = MeterAssignment.objects.current().filter(meter=models.OuterRef("pk"))
        return (
            self.filter(models.Exists(current))
            if has_vehicle
            else self.exclude(models.Exists(current))
        )

    def serving(self, vehicle_id: str) -> "MeterQuerySet":
        """The meter (none or one) serving the vehicle with external id `vehicle_id` now."""
        current = MeterAssignment.objects.current().filter(vehicle__vehicle_id=vehicle_id)
        return self.filter(pk__in=current.values("meter"))


class Device(models.Model):
    """What vehicles and meters share: a name for people, a depot, and retirement."""

    # Database defaults too: devices registered by set-based SQL (ingest, imports) name neither.
    display_name = models.CharField("display name", max_length=100, blank=True, db_default="")
    # The admin's and the analysts' "devices of this depot" filter.
    depot = models.CharField(
        "depot / site", max_length=64, blank=True, db_index=True, db_default=""
    )
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    # Retired: kept with its history and readings, out of fleet lists and alarms, never assigned.
    retired_at = models.DateTimeField("retired at", null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


class Vehicle(Device):
    """One row per electric vehicle; `vehicle_id` is the id the vehicle reports with."""

    vehicle_id = models.CharField(
        "vehicle id", max_length=64, unique=True, validators=[device_id_validator]
    )
    battery_capacity_kwh = models.FloatField("battery capacity (kWh)", null=True, blank=True)

    objects = VehicleQuerySet.as_manager()

    # The field devices (and every API) name the vehicle by.
    external_id_field = "vehicle_id"

    class Meta:
        ordering = ["vehicle_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(battery_capacity_kwh__isnull=True) | Q(battery_capacity_kwh__gt=0),
                name="fleet_vehicle_battery_capacity_positive",
                violation_error_message="The battery capacity must be above 0 kWh.",
            ),
        ]

    def __str__(self) -> str:
        return self.vehicle_id


class Meter(Device):
    """One row per smart meter (grid side); `meter_id` is the id the meter reports with."""

    meter_id = models.CharField(
        "meter id", max_length=64, unique=True, validators=[device_id_validator]
    )
    rated_power_kw = models.FloatField("rated power (kW)", null=True, blank=True)

    objects = MeterQuerySet.as_manager()

    # The field devices (and every API) name the meter by.
    external_id_field = "meter_id"

    class Meta:
        ordering = ["meter_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rated_power_kw__isnull=True) | Q(rated_power_kw__gt=0),
                name="fleet_meter_rated_power_positive",
                violation_error_message="The rated power must be above 0 kW.",
            ),
        ]

    def __str__(self) -> str:
        return self.meter_id


class MeterAssignmentQuerySet(models.QuerySet):
    def overlapping(self, start, end) -> "MeterAssignmentQuerySet":
        """Assignments whose [valid_from, valid_to) meets [start, end); `end=None` is open."""
        query = Q(valid_to__isnull=True) | Q(valid_to__gt=start)
        if end is not None:
            query &= Q(valid_from__lt=end)
        return self.filter(query)

    def open(self) -> "MeterAssignmentQuerySet":
        return self.filter(valid_to__isnull=True)

    def current(self) -> "MeterAssignmentQuerySet":
        """Open assignments that have started (an open one may be dated in the future)."""
        return self.open().filter(valid_from__lte=Now())


class MeterAssignment(models.Model):
    """One row per period in which `meter` served `vehicle`: [valid_from, valid_to), open-ended."""

    vehicle = models.ForeignKey(Vehicle, on_delete=models.PROTECT, related_name="assignments")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="assignments")
    valid_from = models.DateTimeField("valid from")
    valid_to = models.DateTimeField("valid to", null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)

    objects = MeterAssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["vehicle", "-valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")),
                name="fleet_meterassignment_ends_after_start",
            ),
            # with_current_meter(): the open assignment of a vehicle, and at most one.
            models.UniqueConstraint(
                fields=["vehicle"],
                condition=Q(valid_to__isnull=True),
                name="fleet_meterassignment_one_open_per_vehicle",
            ),
            # with_current_vehicle(): the open assignment of a meter, and at most one.
            models.UniqueConstraint(
                fields=["meter"],
                condition=Q(valid_to__isnull=True),
                name="fleet_meterassignment_one_open_per_meter",
            ),
            # Two periods of one vehicle never overlap; its GiST index also serves
            # vehicle_performance()'s "assignments of this vehicle meeting the window".
            PostgresExclusionConstraint(
                name="fleet_meterassignment_vehicle_no_overlap",
                expressions=[
                    ("vehicle", RangeOperators.EQUAL),
                    (TsTzRange("valid_from", "valid_to", RangeBoundary()), RangeOperators.OVERLAPS),
                ],
            ),
            # Two periods of one meter never overlap.
            PostgresExclusionConstraint(
                name="fleet_meterassignment_meter_no_overlap",
                expressions=[
                    ("meter", RangeOperators.EQUAL),
                    (TsTzRange("valid_from", "valid_to", RangeBoundary()), RangeOperators.OVERLAPS),
                ],
            ),
        ]
        indexes = [
            # Assignment history of a vehicle in time order (admin inline, analytics on SQLite).
            models.Index(fields=["vehicle", "valid_from"], name="fleet_assignment_vehicle_from"),
            # Assignment history of a meter in time order.
            models.Index(fields=["meter", "valid_from"], name="fleet_assignment_meter_from"),
        ]

    def __str__(self) -> str:
        end = f"{self.valid_to:%Y-%m-%d %H:%M}" if self.valid_to else "open"
        return f"{self.vehicle} → {self.meter}, {self.valid_from:%Y-%m-%d %H:%M} – {end} UTC"

    def clean(self) -> None:
        """Give the admin a readable message for what the database constraints refuse."""
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValidationError({"valid_to": "The end must be after the start."})
        if not (self.valid_from and self.vehicle_id and self.meter_id):
            return
        # The rows that can meet the period (index-served), then the one rule decides.
        candidates = (
            MeterAssignment.objects.overlapping(self.valid_from, self.valid_to)
            .filter(Q(vehicle_id=self.vehicle_id) | Q(meter_id=self.meter_id))
            .exclude(pk=self.pk)
            .select_related("vehicle", "meter")
        )
        clash = assignment_clash(candidates, valid_from=self.valid_from, valid_to=self.valid_to)
        if clash is not None:
            raise ValidationError(f"This period overlaps the assignment {clash.describe()}.")

    def describe(self) -> str:
        return period_text(
            vehicle_id=self.vehicle.vehicle_id,
            meter_id=self.meter.meter_id,
            start=self.valid_from,
            end=self.valid_to,
        )
