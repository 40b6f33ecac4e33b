"""Back office of the device keys, and read-only views of live status, history and rollups.

The history tables hold billions of rows: their lists never count them (a fixed-count paginator
and `show_full_result_count = False`), sort by the (device, recorded_at) key that the ingest path
writes, find a device by its exact id, and link to no row (`id` is not indexed on the partitioned
tables, whose real key is (device, recorded_at)).
"""

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import DEFAULT_DB_ALIAS
from django.utils.functional import cached_property
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from telemetry.authentication import forget_cached_credentials
from telemetry.models import (
    DeviceAPIKey,
    MeterHourly,
    MeterReading,
    MeterStatus,
    VehicleHourly,
    VehicleReading,
    VehicleStatus,
)

# The library's own key model authenticates nothing here (devices use `DeviceAPIKey`): hide it so
# no one issues a key that cannot work.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


class UncountedPaginator(Paginator):
    """A paginator that never runs COUNT(*): on a table of billions that alone takes minutes.

    The "count" is a ceiling on how deep a person can page (narrow by device instead); pages past
    the data are simply empty.
    """

    PAGE_LIMIT = 1000

    @cached_property
    def count(self) -> int:
        return self.per_page * self.PAGE_LIMIT


@admin.register(DeviceAPIKey)
class DeviceAPIKeyAdmin(APIKeyModelAdmin):
    """Issue and revoke device keys; a new key is shown once, in the message after saving."""

    list_display = ("name", "prefix", "device_id", "created", "last_used_at", "revoked")
    list_filter = ("created", "revoked")
    search_fields = ("name", "prefix", "device_id")
    fields = ("name", "device_id", "expiry_date", "revoked", "prefix", "created", "last_used_at")

    def get_readonly_fields(self, request, obj=None):
        readonly = (*super().get_readonly_fields(request, obj), "created", "last_used_at")
        if obj is not None:
            # A key's scope is part of what was handed to the device: issue a new key instead.
            readonly += ("device_id",)
        return tuple(dict.fromkeys(readonly))

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if obj.revoked:
            # Other workers stop accepting it within API_AUTH_CACHE_SECONDS.
            forget_cached_credentials()


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the ingest path: listed and viewed, never added, changed or deleted."""

    actions = None
    show_full_result_count = False
    list_select_related = ("device",)
    device_id_field = ""  # the device's external id, e.g. "device__meter_id"

    def get_queryset(self, request):
        # The operator sees the primary, never a replica's lagging copy (api.routers).
        return super().get_queryset(request).using(DEFAULT_DB_ALIAS)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_search_results(self, request, queryset, search_term):
        """An exact device id: one index lookup, then that device's own key range."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(**{self.device_id_field: term}), False


class HistoryAdmin(ReadOnlyAdmin):
    paginator = UncountedPaginator
    list_display_links = None
    # Served backwards by the (device, recorded_at) primary key of each partition.
    ordering = ("-device_id", "-recorded_at")


@admin.register(MeterReading)
class MeterReadingAdmin(HistoryAdmin):
    list_display = ("device", "recorded_at", "energy_kwh", "voltage_v")
    search_fields = ("device__meter_id",)
    search_help_text = "The exact meter id."
    device_id_field = "device__meter_id"


@admin.register(VehicleReading)
class VehicleReadingAdmin(HistoryAdmin):
    list_display = ("device", "recorded_at", "energy_kwh", "soc_pct", "battery_temp_c")
    search_fields = ("device__vehicle_id",)
    search_help_text = "The exact vehicle id."
    device_id_field = "device__vehicle_id"


@admin.register(MeterStatus)
class MeterStatusAdmin(ReadOnlyAdmin):
    list_display = ("device", "recorded_at", "energy_kwh", "voltage_v", "received_at")
    search_fields = ("device__meter_id",)
    search_help_text = "The exact meter id."
    device_id_field = "device__meter_id"
    ordering = ("device_id",)


@admin.register(VehicleStatus)
class VehicleStatusAdmin(ReadOnlyAdmin):
    list_display = (
        "device",
        "recorded_at",
        "soc_pct",
        "energy_kwh",
        "battery_temp_c",
        "received_at",
    )
    search_fields = ("device__vehicle_id",)
    search_help_text = "The exact vehicle id."
    device_id_field = "device__vehicle_id"
    ordering = ("device_id",)


class HourlyAdmin(ReadOnlyAdmin):
    paginator = UncountedPaginator
    # Served backwards by the unique (device, hour) index.
    ordering = ("-device_id", "-hour")


@admin.register(MeterHourly)
class MeterHourlyAdmin(HourlyAdmin):
    list_display = ("device", "hour", "energy_kwh", "reading_count")
    search_fields = ("device__meter_id",)
    search_help_text = "The exact meter id."
    device_id_field = "device__meter_id"


@admin.register(VehicleHourly)
class VehicleHourlyAdmin(HourlyAdmin):
    list_display = ("device", "hour", "energy_kwh", "battery_temp_sum_c", "reading_count")
    search_fields = ("device__vehicle_id",)
    search_help_text = "The exact vehicle id."
    device_id_field = "device__vehicle_id"
