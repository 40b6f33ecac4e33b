"""Back office of the device registry, sized for 100,000 devices.

Lists never sort or count more than they must (`show_full_result_count = False`, ordering by a
unique indexed id), searches are case-sensitive id prefixes (`LIKE 'x%'`, served on PostgreSQL by
the `varchar_pattern_ops` index Django creates next to each unique `CharField`), related devices are
chosen with autocomplete widgets, and every assignment goes through `fleet.services.meter_assign`.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.contrib.admin.widgets import AdminSplitDateTime, AutocompleteSelect
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.utils import timezone

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
from fleet.models import Meter, MeterAssignment, Vehicle
from fleet.selectors import assignment_conflict_find
from fleet.services import AssignmentConflict, meter_assign


def _autocomplete(field_name: str) -> AutocompleteSelect:
    """An autocomplete widget for the assignment's `vehicle` or `meter` (never a full dropdown)."""
    return AutocompleteSelect(MeterAssignment._meta.get_field(field_name), admin.site)


def _valid_from_field() -> forms.SplitDateTimeField:
    return forms.SplitDateTimeField(
        label="valid from",
        required=False,
        initial=timezone.now,
        widget=AdminSplitDateTime,
        help_text="When the new assignment starts (UTC); blank means now.",
    )


class ServiceTransactionMixin:
    """Save without the transaction Django's admin opens around a POST.

    `meter_assign()` owns a durable transaction, and a durable block cannot nest in another. The
    device row is one statement of its own; the assignment is the service's transaction. An
    `AssignmentConflict` that only appears at save time (someone assigned in between the form's
    check and the save) is reported on the page instead of failing the request.
    """

    @csrf_protect_m
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        try:
            return self._changeform_view(request, object_id, form_url, extra_context)
        except AssignmentConflict as conflict:
            self.message_user(request, "; ".join(conflict.messages), messages.ERROR)
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


class DeviceAssignForm(forms.ModelForm):
    """A device's own fields, plus the device to assign to it from `valid_from`."""

    counterpart = ""  # "meter" on the vehicle's form, "vehicle" on the meter's form

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            current = self.instance.assignments.open().first()
            if current is not None:
                self.fields[self.counterpart].initial = getattr(current, f"{self.counterpart}_id")

    def pair(self, counterpart: Vehicle | Meter) -> tuple[Vehicle, Meter]:
        """(vehicle, meter) of the assignment: this form's device and the one picked."""
        if self.counterpart == "meter":
            return self.instance, counterpart
        return counterpart, self.instance

    def wants_assignment(self) -> bool:
        return (
            self.cleaned_data.get(self.counterpart) is not None
            and self.counterpart in self.changed_data
        )

    def clean(self):
        cleaned = super().clean()
        if self.errors or not self.wants_assignment():
            return cleaned
        cleaned["valid_from"] = cleaned.get("valid_from") or timezone.now()
        vehicle, meter = self.pair(cleaned[self.counterpart])
        clash = assignment_conflict_find(
            vehicle=vehicle, meter=meter, valid_from=cleaned["valid_from"]
        )
        if clash is not None:
            self.add_error(
                "valid_from",
                f"An assignment from this moment overlaps the assignment {clash.describe()}. "
                "Choose a later start, or shorten that assignment first.",
            )
        return cleaned

    def assign(self) -> None:
        """Apply the requested assignment through the service (after the device is saved)."""
        if self.wants_assignment():
            vehicle, meter = self.pair(self.cleaned_data[self.counterpart])
            meter_assign(vehicle=vehicle, meter=meter, valid_from=self.cleaned_data["valid_from"])


class VehicleAdminForm(DeviceAssignForm):
    counterpart = "meter"

    meter = forms.ModelChoiceField(
        queryset=Meter.objects.all(),
        required=False,
        widget=_autocomplete("meter"),
        label="meter",
        help_text="Assign or reassign: the current assignment ends when the new one starts.",
    )
    valid_from = _valid_from_field()

    class Meta:
        model = Vehicle
        fields = ("vehicle_id",)


class MeterAdminForm(DeviceAssignForm):
    counterpart = "vehicle"

    vehicle = forms.ModelChoiceField(
        queryset=Vehicle.objects.all(),
        required=False,
        widget=_autocomplete("vehicle"),
        label="vehicle",
        help_text="Assign or reassign: the current assignment ends when the new one starts.",
    )
    valid_from = _valid_from_field()

    class Meta:
        model = Meter
        fields = ("meter_id",)


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


class DeviceAdmin(ServiceTransactionMixin, PrefixSearchMixin, admin.ModelAdmin):
    show_full_result_count = False
    readonly_fields = ("created_at", "alarms")
    alarm_field = ""  # "vehicle" or "meter": the Alarm field that points at this device

    @admin.display(description="alarms")
    def alarms(self, device) -> str:
        return alarms_link(field=self.alarm_field, pk=device.pk)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        form.assign()


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
        (None, {"fields": ("vehicle_id", "created_at", "alarms")}),
        ("Assign a meter", {"fields": ("meter", "valid_from")}),
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
        (None, {"fields": ("meter_id", "created_at", "alarms")}),
        ("Assign to a vehicle", {"fields": ("vehicle", "valid_from")}),
    )
    inlines = (MeterHistoryInline,)

    @admin.display(description="current vehicle")
    def current_vehicle(self, meter: Meter) -> str | None:
        return meter.current_vehicle_id  # read for the page's rows (MeterColumns)


class MeterAssignmentAddForm(forms.ModelForm):
    """A new assignment, applied by `meter_assign()` (which closes what it replaces).

    The row is not validated as a model instance: the model's `clean()` would refuse the overlap
    with the current assignment that the service is about to close. `clean()` below previews the
    service's own rules instead.
    """

    vehicle = forms.ModelChoiceField(
        queryset=Vehicle.objects.all(), widget=_autocomplete("vehicle")
    )
    meter = forms.ModelChoiceField(queryset=Meter.objects.all(), widget=_autocomplete("meter"))
    valid_from = _valid_from_field()

    class Meta:
        model = MeterAssignment
        fields = ()

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        cleaned["valid_from"] = cleaned.get("valid_from") or timezone.now()
        clash = assignment_conflict_find(
            vehicle=cleaned["vehicle"], meter=cleaned["meter"], valid_from=cleaned["valid_from"]
        )
        if clash is not None:
            self.add_error(
                "valid_from",
                f"An assignment from this moment overlaps the assignment {clash.describe()}.",
            )
        return cleaned

    def _post_clean(self) -> None:
        return None


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
class MeterAssignmentAdmin(ServiceTransactionMixin, admin.ModelAdmin):
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

    def save_model(self, request, obj, form, change) -> None:
        if change:
            # Only valid_to changed, and the model's clean() has checked it.
            super().save_model(request, obj, form, change)
            return
        assignment = meter_assign(
            vehicle=form.cleaned_data["vehicle"],
            meter=form.cleaned_data["meter"],
            valid_from=form.cleaned_data["valid_from"],
        )
        # The admin goes on with `obj` (log entry, redirect): make it the row the service kept.
        for field in MeterAssignment._meta.concrete_fields:
            setattr(obj, field.attname, getattr(assignment, field.attname))
        obj._state.adding = False
