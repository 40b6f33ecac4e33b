"""Back office of the device registry, sized for 100,000 devices.

Lists never sort or count more than they must (`show_full_result_count = False`, ordering by a
unique indexed id), searches are case-sensitive id prefixes (`LIKE 'x%'`, served on PostgreSQL by
the `varchar_pattern_ops` index Django creates next to each unique `CharField`), related devices are
chosen with autocomplete widgets, and every assignment goes through `fleet.services.meter_assign`.
"""

from django.contrib import admin, messages
from django.db import models
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse

from alarms.admin import alarms_link
from fleet.admin_columns import (
    HasMeterFilter,
    HasVehicleFilter,
    MeterColumns,
    MeterOpenAlarmFilter,
    MeterSeenFilter,
    OpenAlarmFilter,
    SeenFilter,
    VehicleColumns,
    depot_filter,
)
from fleet.admin_views import mappings_upload_view
from fleet.forms import MeterAdminForm, MeterAssignmentAddForm, VehicleAdminForm
from fleet.models import Meter, MeterAssignment, Vehicle
from fleet.services import AssignmentConflict, device_retire


class ServiceConflictMixin:
    """Report a refusal that only appears at save time, after Django's transaction rolled back.

    The save calls `meter_assign()` inside the admin's own transaction. If someone assigned in
    between the form's preview and the save, the service refuses: the whole save (a new device
    included) is rolled back, and the page says so instead of failing the request.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except AssignmentConflict as conflict:
            self.message_user(
                request, f"{'; '.join(conflict.messages)} Nothing was saved.", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())


class PrefixSearchMixin:
    """Search by a case-sensitive prefix of the id: `LIKE 'x%'`, which an index can serve.

    Django's default `icontains` search (`UPPER(id) LIKE '%X%'`) reads the whole table.
    """

    prefix_search_field = ""

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(**{f"{self.prefix_search_field}__startswith": term}), False


class AssignmentHistoryInline(admin.TabularInline):
    """The device's assignments, newest first; read-only (changes go through the service)."""

    model = MeterAssignment
    extra = 0
    can_delete = False
    ordering = ("-valid_from",)
    verbose_name = "assignment"
    verbose_name_plural = "assignment history (newest first)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("vehicle", "meter")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class VehicleHistoryInline(AssignmentHistoryInline):
    fk_name = "vehicle"
    fields = ("meter", "valid_from", "valid_to")


class MeterHistoryInline(AssignmentHistoryInline):
    fk_name = "meter"
    fields = ("vehicle", "valid_from", "valid_to")


class DeviceAdmin(ServiceConflictMixin, PrefixSearchMixin, admin.ModelAdmin):
    show_full_result_count = False
    readonly_fields = ("created_at", "retired_at", "alarms")
    alarm_field = ""  # "vehicle" or "meter": the Alarm field that points at this device
    actions = ("retire_selected",)

    @admin.display(description="alarms")
    def alarms(self, device) -> str:
        return alarms_link(field=self.alarm_field, pk=device.pk)

    def save_model(self, request, obj, form, change) -> None:
        # Inside Django's transaction: the device and its assignment commit together or not at all.
        super().save_model(request, obj, form, change)
        message = form.assign_picked()
        if message:
            self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Retire selected %(verbose_name_plural)s")
    def retire_selected(self, request, queryset) -> None:
        retired = [device_retire(device=device) for device in queryset.active()]
        self.message_user(
            request,
            f"Retired {len(retired)} {self.model._meta.verbose_name_plural}: their open "
            "assignments ended now; their history stays.",
            messages.SUCCESS,
        )

    def get_actions(self, request):
        # A device with readings cannot be deleted (its history): retire it instead.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        device = self.get_object(request, object_id)
        history = device and _protected_history(device)
        if history:
            self.message_user(
                request,
                f"{self.model._meta.verbose_name.capitalize()} {device} has {history}, which are "
                "kept: it cannot be deleted. Retire it instead (action “Retire selected” on the "
                "list): it keeps its history and leaves the fleet lists and alarms.",
                messages.ERROR,
            )
            opts = self.model._meta
            return HttpResponseRedirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[device.pk])
            )
        return super().delete_view(request, object_id, extra_context)


@admin.register(Vehicle)
class VehicleAdmin(VehicleColumns, DeviceAdmin):
    form = VehicleAdminForm
    alarm_field = "vehicle"
    list_display = (
        "vehicle_id",
        "current_meter",
        "last_seen",
        "seen_state",
        "soc",
        "day_efficiency",
        "day_status",
        "open_alarms",
        "links",
    )
    list_filter = (HasMeterFilter, SeenFilter, OpenAlarmFilter, *depot_filter(Vehicle))
    # The live status: a join on its primary key (one row per vehicle).
    list_select_related = ("status",)
    search_fields = ("vehicle_id",)
    prefix_search_field = "vehicle_id"
    search_help_text = "The vehicle id or its beginning (case-sensitive)."
    fieldsets = (
        (None, {"fields": ("vehicle_id", "display_name", "depot", "battery_capacity_kwh")}),
        (None, {"fields": ("created_at", "retired_at", "alarms")}),
        ("Assign a meter", {"fields": ("meter", "valid_from", "confirm_move")}),
    )
    inlines = (VehicleHistoryInline,)

    @admin.display(description="current meter")
    def current_meter(self, vehicle: Vehicle) -> str | None:
        return vehicle.current_meter_id  # read for the page's rows (VehicleColumns)


@admin.register(Meter)
class MeterAdmin(MeterColumns, DeviceAdmin):
    form = MeterAdminForm
    alarm_field = "meter"
    list_display = (
        "meter_id",
        "current_vehicle",
        "last_seen",
        "seen_state",
        "day_energy",
        "open_alarms",
        "links",
    )
    list_filter = (HasVehicleFilter, MeterSeenFilter, MeterOpenAlarmFilter, *depot_filter(Meter))
    # The live status: a join on its primary key (one row per meter).
    list_select_related = ("status",)
    search_fields = ("meter_id",)
    prefix_search_field = "meter_id"
    search_help_text = "The meter id or its beginning (case-sensitive)."
    fieldsets = (
        (None, {"fields": ("meter_id", "display_name", "depot", "rated_power_kw")}),
        (None, {"fields": ("created_at", "retired_at", "alarms")}),
        ("Assign to a vehicle", {"fields": ("vehicle", "valid_from", "confirm_move")}),
    )
    inlines = (MeterHistoryInline,)

    @admin.display(description="current vehicle")
    def current_vehicle(self, meter: Meter) -> str | None:
        return meter.current_vehicle_id  # read for the page's rows (MeterColumns)


class AssignmentStateFilter(admin.SimpleListFilter):
    """Open (current) or closed; "open" is served by the partial unique indexes."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("open", "open"), ("closed", "closed"))

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(valid_to__isnull=True)
        if self.value() == "closed":
            return queryset.filter(valid_to__isnull=False)
        return queryset


@admin.register(MeterAssignment)
class MeterAssignmentAdmin(ServiceConflictMixin, admin.ModelAdmin):
    list_display = ("id", "vehicle", "meter", "valid_from", "valid_to", "created_at")
    list_select_related = ("vehicle", "meter")
    list_filter = (AssignmentStateFilter,)
    autocomplete_fields = ("vehicle", "meter")
    search_fields = ("vehicle__vehicle_id", "meter__meter_id")
    search_help_text = "A vehicle or meter id, or its beginning (case-sensitive)."
    show_full_result_count = False
    # Newest first by primary key: an index scan, where the model's (vehicle, -valid_from) sorts.
    ordering = ("-id",)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            return MeterAssignmentAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # Only the end of a period is edited here; a new start is a new assignment.
        return ("vehicle", "meter", "valid_from", "created_at")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        # Two semi-joins, so PostgreSQL can combine the (vehicle, ...) and (meter, ...) indexes.
        vehicles = Vehicle.objects.filter(vehicle_id__startswith=term).values("pk")
        meters = Meter.objects.filter(meter_id__startswith=term).values("pk")
        return queryset.filter(Q(vehicle__in=vehicles) | Q(meter__in=meters)), False

    def get_urls(self):
        upload = self.admin_site.admin_view(mappings_upload_view)
        return [
            path("upload/", upload, name="fleet_meterassignment_upload"),
            *super().get_urls(),
        ]

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        # A new assignment is made by the service (in Django's transaction), not by saving the
        # form: the admin goes on (log entry, redirect) with the row the service made or kept.
        assignment, message = form.assign(
            vehicle=form.cleaned_data["vehicle"], meter=form.cleaned_data["meter"]
        )
        if message:
            self.message_user(request, message, messages.SUCCESS)
        return assignment

    def save_model(self, request, obj, form, change) -> None:
        if change:
            # Only valid_to changed, and the model's clean() has checked it.
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        if change:
            super().save_related(request, form, formsets, change)
        # A new assignment (saved by the service in save_form) has no related rows to save.


def _protected_history(device: Vehicle | Meter) -> str:
    """ "readings and assignments" if rows that protect the device from deletion exist, else ""."""
    kinds = []
    for relation in type(device)._meta.related_objects:
        if relation.on_delete is not models.PROTECT:
            continue
        rows = relation.related_model._base_manager.filter(**{relation.field.name: device})
        if rows.exists():
            kinds.append(str(relation.related_model._meta.verbose_name_plural))
    return " and ".join(kinds)
