"""Filters of the live-status lists (camelCase query parameters, as on the wire)."""

import django_filters

from telemetry.models import MeterStatus, VehicleStatus


class DeviceCodeInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    """One device id, or several separated by commas."""


class StaleFilter(django_filters.TypedChoiceFilter):
    """`true` / `false` only: an unparsable value is a 400, not an ignored filter.

    (django-filter's BooleanFilter treats any other value as "no filter".) Filters on the
    `stale` annotation of the status selectors.
    """

    def __init__(self):
        super().__init__(
            field_name="stale",
            choices=[("true", "true"), ("false", "false")],
            coerce=lambda value: value == "true",
            label="true: only devices whose newest reading was received more than "
            "TELEMETRY_STALE_AFTER_SECONDS ago; false: only the others.",
        )


class VehicleStatusFilter(django_filters.FilterSet):
    socLt = django_filters.NumberFilter(
        method="filter_soc_lt", label="Only vehicles whose state of charge (%) is below this."
    )
    socGt = django_filters.NumberFilter(
        method="filter_soc_gt", label="Only vehicles whose state of charge (%) is above this."
    )
    stale = StaleFilter()
    vehicleId = DeviceCodeInFilter(
        field_name="vehicle_code", label="Only these vehicles (comma-separated ids)."
    )

    class Meta:
        model = VehicleStatus
        fields: list[str] = []

    def filter_soc_lt(self, queryset, name, value):
        return queryset.soc_below(value)

    def filter_soc_gt(self, queryset, name, value):
        return queryset.soc_above(value)


class MeterStatusFilter(django_filters.FilterSet):
    stale = StaleFilter()
    meterId = DeviceCodeInFilter(
        field_name="meter_code", label="Only these meters (comma-separated ids)."
    )

    class Meta:
        model = MeterStatus
        fields: list[str] = []
