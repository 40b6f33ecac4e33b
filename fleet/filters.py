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


def _device_filterset(
    model, *, counterpart: str, has_counterpart, by_counterpart, has_help: str, by_help: str
) -> type[DeviceFilter]:
    """The list filters of vehicles or meters: own id, id prefix, and the counterpart served now."""
    kind = model._meta.model_name
    field = model.external_id_field
    filters_by_name = {
        f"{kind}Id": _id_exact(field, f"Exactly this {kind} id."),
        f"{kind}IdPrefix": _id_prefix(field, kind),
        f"has{counterpart.capitalize()}": _has_counterpart(has_counterpart, has_help),
        f"{counterpart}Id": _counterpart_id(by_counterpart, by_help),
    }
    meta = type("Meta", (), {"model": model, "fields": []})
    return type(
        f"{model.__name__}Filter",
        (DeviceFilter,),
        {"__module__": __name__, **filters_by_name, "Meta": meta},
    )


VehicleFilter = _device_filterset(
    Vehicle,
    counterpart="meter",
    has_counterpart=VehicleQuerySet.with_meter,
    by_counterpart=VehicleQuerySet.served_by,
    has_help="Only vehicles a meter serves now (true), or none.",
    by_help="The vehicle this meter serves now.",
)
MeterFilter = _device_filterset(
    Meter,
    counterpart="vehicle",
    has_counterpart=MeterQuerySet.with_vehicle,
    by_counterpart=MeterQuerySet.serving,
    has_help="Only meters serving a vehicle now (true), or none.",
    by_help="The meter serving this vehicle now.",
)
