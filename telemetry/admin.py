"""Back office of the device keys, and read-only views of live status, history and rollups.

The history tables hold billions of rows: their lists never count them (a lookahead paginator
with "newer / older" links, `show_full_result_count = False`, an honest count bounded by a
`LIMIT`), list newest first, drill down by date with bounded queries, find a device by its exact
id, and link to no row (`id` is not indexed on the partitioned tables, whose real key is
(device, recorded_at)). See telemetry/admin_display.py.
"""

from django.contrib import admin
from django.contrib.admin.views.main import PAGE_VAR
from django.db import DEFAULT_DB_ALIAS
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from telemetry.admin_display import (
    EXACT_COUNT_LIMIT,
    LookaheadChangeList,
    LookaheadPaginator,
    date_drilldown,
    honest_count,
)
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

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        # The operator sees the primary, never a replica's lagging copy (api.routers); the
        # device's id titles each row and page (`__str__`): joined, not one query per row.
        return super().get_queryset(request).using(DEFAULT_DB_ALIAS).select_related("device")

    def get_search_results(self, request, queryset, search_term):
        """An exact device id: one index lookup, then that device's own key range."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(**{self.device_id_field: term}), False

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        # The links from a vehicle's or meter's row (no dropdown of 100,000 devices).
        return lookup == "device__id__exact" or super().lookup_allowed(lookup, value, request)


class LookaheadListAdmin(ReadOnlyAdmin):
    """A list of a table too large to count: newer / older pages, an honest count, a drill-down."""

    paginator = LookaheadPaginator
    list_max_show_all = 0  # no "show all" of a table of billions
    change_list_template = "admin/telemetry/lookahead_change_list.html"
    count_limit = EXACT_COUNT_LIMIT  # counted exactly up to here, past it "more than"

    def get_changelist(self, request, **kwargs):
        return LookaheadChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        try:
            page_number = int(request.GET.get(PAGE_VAR, 1))
        except ValueError:
            page_number = 1
        return self.paginator(
            queryset, per_page, orphans, allow_empty_first_page, page_number=page_number
        )

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            context.update(self._list_context(context["cl"]))
        return response

    def _list_context(self, cl) -> dict:
        page = cl.page_num
        return {
            "previous_page_url": cl.get_query_string({PAGE_VAR: page - 1}) if page > 1 else "",
            "next_page_url": (
                cl.get_query_string({PAGE_VAR: page + 1}) if cl.paginator.has_next else ""
            ),
            "first_page_url": cl.get_query_string(remove=[PAGE_VAR]),
            "past_the_end": page > 1 and not cl.result_list,
            "count_label": honest_count(cl.queryset, limit=self.count_limit).label(
                str(cl.opts.verbose_name), str(cl.opts.verbose_name_plural)
            ),
            "drilldown": date_drilldown(cl, self.date_hierarchy) if self.date_hierarchy else None,
            "subtitle": self._device_subtitle(cl),
        }

    def _device_subtitle(self, cl) -> str | None:
        """ "of V-1" when the list is one device's (the link from its row)."""
        pk = cl.params.get("device__id__exact")
        if not pk:
            return None
        device_model = cl.model._meta.get_field("device").related_model
        code = (
            device_model.objects.filter(pk=pk)
            .values_list(device_model.external_id_field, flat=True)
            .first()
        )
        return f"of {device_model._meta.verbose_name} {code}" if code else None


class HistoryAdmin(LookaheadListAdmin):
    list_display_links = None
    date_hierarchy = "recorded_at"
    # Newest first: an ordered Append over the day partitions (newest partition first), so a
    # page reads the newest partition only; one device's list is its primary key backwards.
    ordering = ("-recorded_at", "-device_id")


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


class HourlyAdmin(LookaheadListAdmin):
    date_hierarchy = "hour"
    # Newest first: served by the hour index (telemetry_*hourly_hour); one device's list by the
    # unique (device, hour) index backwards.
    ordering = ("-hour", "-device_id")

    @admin.display(description="energy (kWh)")
    def energy(self, rollup) -> float:
        return round(rollup.energy_kwh, 4)


@admin.register(MeterHourly)
class MeterHourlyAdmin(HourlyAdmin):
    list_display = ("device", "hour", "energy", "reading_count")
    fields = list_display
    readonly_fields = ("energy",)
    search_fields = ("device__meter_id",)
    search_help_text = "The exact meter id."
    device_id_field = "device__meter_id"


@admin.register(VehicleHourly)
class VehicleHourlyAdmin(HourlyAdmin):
    list_display = ("device", "hour", "energy", "average_battery_temp", "reading_count")
    fields = list_display
    readonly_fields = ("energy", "average_battery_temp")
    search_fields = ("device__vehicle_id",)
    search_help_text = "The exact vehicle id."
    device_id_field = "device__vehicle_id"

    @admin.display(description="average battery temperature (°C)")
    def average_battery_temp(self, rollup) -> float | None:
        if not rollup.reading_count:
            return None
        return round(rollup.battery_temp_sum_c / rollup.reading_count, 1)
