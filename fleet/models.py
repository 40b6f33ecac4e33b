from django.contrib.postgres.fields import DateTimeRangeField, RangeBoundary, RangeOperators
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Func, Q
from django.db.models.functions import Now
from django.utils import timezone

from fleet.constraints import PostgresExclusionConstraint

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


class VehicleQuerySet(models.QuerySet):
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


class MeterQuerySet(models.QuerySet):
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


class Vehicle(models.Model):
    """One row per electric vehicle; `vehicle_id` is the id the vehicle reports with."""

    vehicle_id = models.CharField(
        "vehicle id", max_length=64, unique=True, validators=[device_id_validator]
    )
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)

    objects = VehicleQuerySet.as_manager()

    # The field devices (and every API) name the vehicle by.
    external_id_field = "vehicle_id"

    class Meta:
        ordering = ["vehicle_id"]

    def __str__(self) -> str:
        return self.vehicle_id


class Meter(models.Model):
    """One row per smart meter (grid side); `meter_id` is the id the meter reports with."""

    meter_id = models.CharField(
        "meter id", max_length=64, unique=True, validators=[device_id_validator]
    )
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)

    objects = MeterQuerySet.as_manager()

    # The field devices (and every API) name the meter by.
    external_id_field = "meter_id"

    class Meta:
        ordering = ["meter_id"]

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
        clashes = (
            MeterAssignment.objects.overlapping(self.valid_from, self.valid_to)
            .filter(Q(vehicle_id=self.vehicle_id) | Q(meter_id=self.meter_id))
            .exclude(pk=self.pk)
            .select_related("vehicle", "meter")
        )
        clash = clashes.first()
        if clash is not None:
            raise ValidationError(f"This period overlaps the assignment {clash.describe()}.")

    def describe(self) -> str:
        end = f"{self.valid_to:%Y-%m-%d %H:%M:%S%z}" if self.valid_to else "open"
        return (
            f"of vehicle {self.vehicle.vehicle_id} to meter {self.meter.meter_id} "
            f"from {self.valid_from:%Y-%m-%d %H:%M:%S%z} to {end}"
        )
