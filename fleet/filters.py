"""Query-string filters of the fleet lists; parameter names are camelCase, as on the wire.

Every value is validated (ids in full, booleans strictly): a bad one is a 400 naming it. Retired
devices are left out unless `retired=true`.

Every filter is served by an index: the unique (and `varchar_pattern_ops`) indexes on the device
ids, and the partial unique indexes on the open assignments.
"""

from django_filters import rest_framework as filters

from api.filters import StrictBooleanFilter, StrictFilterSet
from api.params import device_id_prefix_validator
from fleet.models import Meter, MeterQuerySet, Vehicle, VehicleQuerySet, device_id_validator


def _id_exact(field_name: str, help_text: str) -> filters.CharFilter:
    return filters.CharFilter(
        field_name=field_name, strip=False, validators=[device_id_validator], help_text=help_text
    )


def _id_prefix(field_name: str, kind: str) -> filters.CharFilter:
    return filters.CharFilter(
        field_name=field_name,
        lookup_expr="startswith",
        strip=False,
        validators=[device_id_prefix_validator],
        help_text=f"{kind.capitalize()} ids starting with this text (case-sensitive).",
    )


def _counterpart_id(method, help_text: str) -> filters.CharFilter:
    return filters.CharFilter(
        method=lambda queryset, name, value: method(queryset, value),
        strip=False,
        validators=[device_id_validator],
        help_text=help_text,
    )


def _has_counterpart(method, help_text: str) -> StrictBooleanFilter:
    return StrictBooleanFilter(
        method=lambda queryset, name, value: method(queryset, value), help_text=help_text
    )


class DeviceFilter(StrictFilterSet):
    retired = StrictBooleanFilter(
        method=lambda queryset, name, value: queryset,  # applied in filter_queryset
        help_text="Include retired devices (true); by default only devices in service.",
    )

    def filter_queryset(self, queryset):
        if not self.form.cleaned_data.get("retired"):
            queryset = queryset.active()
        return super().filter_queryset(queryset)


class VehicleFilter(DeviceFilter):
    vehicleId = _id_exact("vehicle_id", "Exactly this vehicle id.")
    vehicleIdPrefix = _id_prefix("vehicle_id", "vehicle")
    hasMeter = _has_counterpart(
        VehicleQuerySet.with_meter,
        "Only vehicles a meter serves now (true), or none.",
    )
    meterId = _counterpart_id(VehicleQuerySet.served_by, "The vehicle this meter serves now.")

    class Meta:
        model = Vehicle
        fields: list[str] = []


class MeterFilter(DeviceFilter):
    meterId = _id_exact("meter_id", "Exactly this meter id.")
    meterIdPrefix = _id_prefix("meter_id", "meter")
    hasVehicle = _has_counterpart(
        MeterQuerySet.with_vehicle,
        "Only meters serving a vehicle now (true), or none.",
    )
    vehicleId = _counterpart_id(MeterQuerySet.serving, "The meter serving this vehicle now.")

    class Meta:
        model = Meter
        fields: list[str] = []
