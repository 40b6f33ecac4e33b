"""Query-string filters of the fleet lists; parameter names are camelCase, as on the wire.

Every value is validated (ids in full, booleans strictly): a bad one is a 400 naming it.

Every filter is served by an index: the unique (and `varchar_pattern_ops`) indexes on the device
ids, and the partial unique indexes on the open assignments.
"""

from django_filters import rest_framework as filters

from api.filters import StrictBooleanFilter, StrictFilterSet
from api.params import device_id_prefix_validator
from fleet.models import Meter, MeterQuerySet, Vehicle, VehicleQuerySet, device_id_validator


class VehicleFilter(StrictFilterSet):
    vehicleId = filters.CharFilter(
        field_name="vehicle_id",
        strip=False,
        validators=[device_id_validator],
        help_text="Exactly this vehicle id.",
    )
    vehicleIdPrefix = filters.CharFilter(
        field_name="vehicle_id",
        lookup_expr="startswith",
        strip=False,
        validators=[device_id_prefix_validator],
        help_text="Vehicle ids starting with this text (case-sensitive).",
    )
    hasMeter = StrictBooleanFilter(
        method="filter_has_meter", help_text="Only vehicles a meter serves now (true), or none."
    )
    meterId = filters.CharFilter(
        method="filter_meter_id",
        strip=False,
        validators=[device_id_validator],
        help_text="The vehicle this meter serves now.",
    )

    class Meta:
        model = Vehicle
        fields: list[str] = []

    def filter_has_meter(self, queryset: VehicleQuerySet, name: str, value: bool):
        return queryset.with_meter(value)

    def filter_meter_id(self, queryset: VehicleQuerySet, name: str, value: str):
        return queryset.served_by(value)


class MeterFilter(StrictFilterSet):
    meterId = filters.CharFilter(
        field_name="meter_id",
        strip=False,
        validators=[device_id_validator],
        help_text="Exactly this meter id.",
    )
    meterIdPrefix = filters.CharFilter(
        field_name="meter_id",
        lookup_expr="startswith",
        strip=False,
        validators=[device_id_prefix_validator],
        help_text="Meter ids starting with this text (case-sensitive).",
    )
    hasVehicle = StrictBooleanFilter(
        method="filter_has_vehicle", help_text="Only meters serving a vehicle now (true), or none."
    )
    vehicleId = filters.CharFilter(
        method="filter_vehicle_id",
        strip=False,
        validators=[device_id_validator],
        help_text="The meter serving this vehicle now.",
    )

    class Meta:
        model = Meter
        fields: list[str] = []

    def filter_has_vehicle(self, queryset: MeterQuerySet, name: str, value: bool):
        return queryset.with_vehicle(value)

    def filter_vehicle_id(self, queryset: MeterQuerySet, name: str, value: str):
        return queryset.serving(value)
