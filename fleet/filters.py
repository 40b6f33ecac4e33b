"""Query-string filters of the fleet lists; parameter names are camelCase, as on the wire.

Every value is validated (ids in full, booleans strictly): a bad one is a 400 naming it.

Every filter is served by an index: the unique (and `varchar_pattern_ops`) indexes on the device
ids, and the partial unique indexes on the open assignments.
"""

from django import forms
from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters

from api.params import device_id_full_validator, device_id_prefix_validator
from fleet.models import Meter, MeterQuerySet, Vehicle, VehicleQuerySet


class StrictBooleanField(forms.NullBooleanField):
    """`true`/`false` (or `1`/`0`); anything else is a 400, never silently ignored."""

    widget = forms.TextInput

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValidationError("Must be true or false.", code="invalid")

    def validate(self, value) -> None:
        return None


class StrictBooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


class VehicleFilter(filters.FilterSet):
    vehicleId = filters.CharFilter(
        field_name="vehicle_id",
        validators=[device_id_full_validator],
        help_text="Exactly this vehicle id.",
    )
    vehicleIdPrefix = filters.CharFilter(
        field_name="vehicle_id",
        lookup_expr="startswith",
        validators=[device_id_prefix_validator],
        help_text="Vehicle ids starting with this text (case-sensitive).",
    )
    hasMeter = StrictBooleanFilter(
        method="filter_has_meter", help_text="Only vehicles a meter serves now (true), or none."
    )
    meterId = filters.CharFilter(
        method="filter_meter_id",
        validators=[device_id_full_validator],
        help_text="The vehicle this meter serves now.",
    )

    class Meta:
        model = Vehicle
        fields: list[str] = []

    def filter_has_meter(self, queryset: VehicleQuerySet, name: str, value: bool):
        return queryset.with_meter(value)

    def filter_meter_id(self, queryset: VehicleQuerySet, name: str, value: str):
        return queryset.served_by(value)


class MeterFilter(filters.FilterSet):
    meterId = filters.CharFilter(
        field_name="meter_id",
        validators=[device_id_full_validator],
        help_text="Exactly this meter id.",
    )
    meterIdPrefix = filters.CharFilter(
        field_name="meter_id",
        lookup_expr="startswith",
        validators=[device_id_prefix_validator],
        help_text="Meter ids starting with this text (case-sensitive).",
    )
    hasVehicle = StrictBooleanFilter(
        method="filter_has_vehicle", help_text="Only meters serving a vehicle now (true), or none."
    )
    vehicleId = filters.CharFilter(
        method="filter_vehicle_id",
        validators=[device_id_full_validator],
        help_text="The meter serving this vehicle now.",
    )

    class Meta:
        model = Meter
        fields: list[str] = []

    def filter_has_vehicle(self, queryset: MeterQuerySet, name: str, value: bool):
        return queryset.with_vehicle(value)

    def filter_vehicle_id(self, queryset: MeterQuerySet, name: str, value: str):
        return queryset.serving(value)
