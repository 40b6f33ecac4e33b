"""Filters of the live-status lists (camelCase query parameters, as on the wire).

Every value is validated: one that does not parse or is out of range is a 400 naming the
parameter, never an ignored filter.
"""

import django_filters

from api.filters import StrictBooleanFilter, StrictFilterSet
from fleet.models import device_id_validator
from telemetry.models import MeterStatus, VehicleStatus


class DeviceCodeInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    """One device id, or several separated by commas; each must be a whole device id."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("validators", [device_id_validator])
        kwargs.setdefault("strip", False)  # "V-1\n" is not V-1
        super().__init__(*args, **kwargs)


class SocFilter(django_filters.NumberFilter):
    """A state of charge in percent, 0 to 100."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=0, max_value=100, **kwargs)


def _stale_filter() -> StrictBooleanFilter:
    # Filters on the `stale` annotation of the status selectors.
    return StrictBooleanFilter(
        field_name="stale",
        label="true: only devices whose newest reading was received more than "
        "TELEMETRY_STALE_AFTER_SECONDS ago; false: only the others.",
    )


def _device_code_filter(kind: str) -> DeviceCodeInFilter:
    # Filters on the `<kind>_code` annotation of the status selectors.
    return DeviceCodeInFilter(
        field_name=f"{kind}_code", label=f"Only these {kind}s (comma-separated ids)."
    )


class VehicleStatusFilter(StrictFilterSet):
    socLt = SocFilter(
        method="filter_soc_lt",
        label="Only vehicles whose state of charge (%, 0 to 100) is below this.",
    )
    socGt = SocFilter(
        method="filter_soc_gt",
        label="Only vehicles whose state of charge (%, 0 to 100) is above this.",
    )
    stale = _stale_filter()
    vehicleId = _device_code_filter("vehicle")

    class Meta:
        model = VehicleStatus
        fields: list[str] = []

    def filter_soc_lt(self, queryset, name, value):
        return queryset.soc_below(value)

    def filter_soc_gt(self, queryset, name, value):
        return queryset.soc_above(value)


class MeterStatusFilter(StrictFilterSet):
    stale = _stale_filter()
    meterId = _device_code_filter("meter")

    class Meta:
        model = MeterStatus
        fields: list[str] = []
