"""Back office of the alarms: active first, filters by type and state, an acknowledge action."""

from django.contrib import admin, messages
from django.db.models import F, Q
from django.urls import reverse
from django.utils.html import format_html

from alarms.models import Alarm, AlarmType
from alarms.services import alarms_acknowledge


class AlarmStateFilter(admin.SimpleListFilter):
    """Active (not cleared) or cleared; "active" is served by the partial index."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("active", "active"), ("cleared", "cleared"))

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.active()
        if self.value() == "cleared":
            return queryset.cleared()
        return queryset


def alarms_link(*, field: str, pk: int | None) -> str:
    """A link to the alarms of one vehicle (`field="vehicle"`) or meter, with the active count."""
    if pk is None:
        return "—"
    alarms = Alarm.objects.filter(**{field: pk})
    active = alarms.active().count()
    url = reverse("admin:alarms_alarm_changelist") + f"?{field}__id__exact={pk}"
    return format_html('<a href="{}">{} active, {} in all</a>', url, active, alarms.count())


@admin.register(Alarm)
class AlarmAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "type",
        "subject",
        "vehicle",
        "meter",
        "opened_at",
        "cleared_at",
        "acknowledged_at",
        "acknowledged_by",
        "efficiency",
    )
    list_filter = ("type", AlarmStateFilter)
    list_select_related = ("vehicle", "meter", "acknowledged_by")
    search_fields = ("vehicle__vehicle_id", "meter__meter_id")
    search_help_text = "A vehicle or meter id, or its beginning (case-sensitive)."
    show_full_result_count = False
    # Active alarms (cleared_at null) first, then the most recently cleared; newest opened first.
    ordering = (F("cleared_at").desc(nulls_first=True), "-opened_at")
    actions = ("acknowledge",)
    readonly_fields = [f.name for f in Alarm._meta.fields]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return (
            queryset.filter(
                Q(vehicle__vehicle_id__startswith=term) | Q(meter__meter_id__startswith=term)
            ),
            False,
        )

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        # The links from the vehicle and meter pages (no dropdown of 100,000 devices).
        return lookup in ("vehicle__id__exact", "meter__id__exact") or super().lookup_allowed(
            lookup, value, request
        )

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="efficiency % (latest)")
    def efficiency(self, alarm: Alarm):
        if alarm.type == AlarmType.DEVICE_OFFLINE:
            return "—"
        return alarm.latest.get("efficiencyPct")

    @admin.action(description="Acknowledge the selected alarms")
    def acknowledge(self, request, queryset):
        count = alarms_acknowledge(
            alarm_ids=list(queryset.values_list("pk", flat=True)), user=request.user
        )
        self.message_user(request, f"{count} alarm(s) acknowledged.", messages.SUCCESS)
