"""The live columns, filters and links of the vehicle and meter lists, sized for 100,000 devices.

The list's own statement joins the live status (its primary key); everything else is read for
the page's rows only (at most `list_per_page`), one set-based statement per kind: the current
assignment, the open alarms, the 24 h figures (one fleet statement limited to the page). So the
query count of a list is the same for 10 devices and for 100,000, and a deep page (OFFSET) skips
index entries instead of evaluating per-row subqueries for every skipped row (measured at
100,000 vehicles: page 500 took 7 s with the assignment and alarm subqueries in the SELECT list).
Filters use indexed columns or a subquery on a primary key (see each filter).

The 24 h figures are the fleet endpoints' own (`analytics.selectors.fleet_vehicle_figures` for
the page's vehicles): exact at assignment edges, over the fleet window (hour_floor(now) − 23 h,
now], judged by the one status rule with the same settings.
"""

from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Count, Exists, OuterRef, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from alarms.models import Alarm, AlarmType
from analytics.selectors import (
    PerformanceStatus,
    VehicleFigures,
    fleet_vehicle_figures,
    fleet_window,
)
from api.times import display_time
from fleet.models import Meter, MeterAssignment, Vehicle
from telemetry.models import MeterHourly, MeterStatus, VehicleStatus

WINDOW_HOURS = 24


# --- The 24 h figures of a page of vehicles -------------------------------------------------


def day_window(now: datetime) -> datetime:
    """The first rollup hour of the fleet endpoints' 24 h window ending at `now`."""
    return fleet_window(hours=WINDOW_HOURS, now=now)[0]


def vehicle_day_figures(*, vehicle_pks: list[int], now: datetime) -> dict[int, VehicleFigures]:
    """The exact 24 h figures of these vehicles (a page of a list), as the fleet endpoints count
    them and judged by the one status rule: one statement that reads these vehicles only. A
    vehicle no assignment maps in the window is left out (its row shows "—")."""
    if not vehicle_pks:
        return {}
    start, end = fleet_window(hours=WINDOW_HOURS, now=now)
    figures = fleet_vehicle_figures(
        start=start,
        end=end,
        threshold=settings.ANALYTICS_FAULT_THRESHOLD_PCT,
        vehicle_pks=vehicle_pks,
    )
    return {row.vehicle_pk: row for row in figures}


def meter_day_energy(*, meter_pks: list[int], now: datetime) -> dict[int, float]:
    """The AC kWh of these meters' rollup hours in the 24 h window: one statement."""
    if not meter_pks:
        return {}
    rows = (
        MeterHourly.objects.filter(
            device_id__in=meter_pks, hour__gte=day_window(now), hour__lte=now
        )
        .order_by()
        .values("device_id")
        .annotate(kwh=Sum("energy_kwh"))
    )
    return {row["device_id"]: row["kwh"] for row in rows}


# --- Filters ------------------------------------------------------------------------------


def stale_before(now: datetime) -> datetime:
    """A device whose newest reading arrived before this moment is stale."""
    return now - timedelta(seconds=settings.TELEMETRY_STALE_AFTER_SECONDS)


class SeenFilter(admin.SimpleListFilter):
    """Live, stale or never seen, by the live status's received_at.

    The status tables have only their primary key, on purpose (HOT updates): the filter is a
    semi-join on that key over a scan of the status table (100,000 rows: ~20 ms).
    """

    title = "last seen"
    parameter_name = "seen"
    status_model = VehicleStatus

    def lookups(self, request, model_admin):
        return (("live", "live"), ("stale", "stale"), ("never", "never seen"))

    def queryset(self, request, queryset):
        cutoff = stale_before(timezone.now())
        statuses = self.status_model.objects.all()
        if self.value() == "live":
            return queryset.filter(pk__in=statuses.filter(received_at__gte=cutoff).values("pk"))
        if self.value() == "stale":
            return queryset.filter(pk__in=statuses.filter(received_at__lt=cutoff).values("pk"))
        if self.value() == "never":
            return queryset.exclude(Exists(statuses.filter(pk=OuterRef("pk"))))
        return queryset


class MeterSeenFilter(SeenFilter):
    status_model = MeterStatus


class HasMeterFilter(admin.SimpleListFilter):
    """Served by a meter now, or not: an EXISTS on the open-assignment unique index."""

    title = "has a meter"
    parameter_name = "has_meter"

    def lookups(self, request, model_admin):
        return (("yes", "yes"), ("no", "no"))

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.with_meter(self.value() == "yes")
        return queryset


class HasVehicleFilter(HasMeterFilter):
    title = "serves a vehicle"
    parameter_name = "has_vehicle"

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.with_vehicle(self.value() == "yes")
        return queryset


class OpenAlarmFilter(admin.SimpleListFilter):
    """Devices with an open alarm of a type (LOW_EFFICIENCY is the FAULT_DETECTED status).

    The 24 h status itself cannot be filtered at 100,000 devices without judging all of them;
    the alarms hold the evaluated verdicts, and the open ones are few and indexed
    (alarms_alarm_active, a partial index on type where cleared_at is null).
    """

    title = "status (open alarm)"
    parameter_name = "open_alarm"
    alarm_field = "vehicle"

    def lookups(self, request, model_admin):
        types = AlarmType.choices
        if self.alarm_field == "meter":
            types = [(AlarmType.DEVICE_OFFLINE.value, AlarmType.DEVICE_OFFLINE.label)]
        return (("any", "any open alarm"), *types, ("none", "no open alarm"))

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        alarms = Alarm.objects.active().filter(**{self.alarm_field: OuterRef("pk")})
        if value == "none":
            return queryset.exclude(Exists(alarms))
        if value != "any":
            alarms = alarms.filter(type=value)
        return queryset.filter(Exists(alarms))


class MeterOpenAlarmFilter(OpenAlarmFilter):
    alarm_field = "meter"


def depot_filter(model) -> tuple:
    """The depot filter, once the model has its indexed `depot` column; else nothing.

    Django's choice list of the distinct depots: an index-only scan of the depot index.
    """
    try:
        model._meta.get_field("depot")
    except FieldDoesNotExist:
        return ()
    return ("depot",)


# --- Columns ------------------------------------------------------------------------------


def open_alarm_counts(*, field: str, pks: list[int]) -> dict[int, int]:
    """The active alarms of these devices (index alarms_alarm_vehicle_opened / _meter_opened)."""
    rows = (
        Alarm.objects.active()
        .filter(**{f"{field}_id__in": pks})
        .order_by()
        .values_list(f"{field}_id")
        .annotate(count=Count("pk"))
    )
    return dict(rows)


def current_counterparts(*, field: str, pks: list[int]) -> dict[int, str]:
    """The external id of the device each of these is assigned to now (open-assignment index).

    `field` is "vehicle" (→ each vehicle's meter id) or "meter" (→ each meter's vehicle id).
    """
    other = "meter" if field == "vehicle" else "vehicle"
    rows = (
        MeterAssignment.objects.current()
        .filter(**{f"{field}_id__in": pks})
        .order_by()
        .values_list(f"{field}_id", f"{other}__{other}_id")
    )
    return dict(rows)


def readings_url(model_name: str, pk: int) -> str:
    return reverse(f"admin:telemetry_{model_name}_changelist") + f"?device__id__exact={pk}"


def alarms_url(field: str, pk: int, *, active_only: bool = False) -> str:
    query = {f"{field}__id__exact": pk}
    if active_only:
        query["state"] = "active"
    return reverse("admin:alarms_alarm_changelist") + "?" + urlencode(query)


def dashboard_url(vehicle_id: str) -> str:
    """The dashboard page of a vehicle (served by the dashboard app)."""
    return f"/dashboard/vehicles/{quote(vehicle_id, safe='')}/"


def _links(*pairs: tuple[str, str]) -> str:
    return format_html_join(" · ", '<a href="{}">{}</a>', pairs)


class LiveColumns:
    """Columns of both device lists (rows annotated by the admin's get_queryset)."""

    alarm_field = ""

    @admin.display(description="last seen", ordering="status__received_at")
    def last_seen(self, device) -> str:
        status = getattr(device, "status", None)
        return display_time(status.received_at) if status else "never"

    @admin.display(description="state")
    def seen_state(self, device) -> str:
        status = getattr(device, "status", None)
        if status is None:
            return "never seen"
        return "stale" if status.received_at < device.stale_before else "live"

    @admin.display(description="open alarms")
    def open_alarms(self, device) -> str:
        if not getattr(device, "open_alarm_count", 0):
            return "0"
        url = alarms_url(self.alarm_field, device.pk, active_only=True)
        return format_html('<a href="{}">{}</a>', url, device.open_alarm_count)

    def get_changelist_instance(self, request):
        now = timezone.now()
        changelist = super().get_changelist_instance(request)
        # The page's rows are read once here; the template iterates the same evaluated list.
        rows = list(changelist.result_list)
        for row in rows:
            # On the row, not on this admin: one instance serves every request (and thread).
            row.stale_before = stale_before(now)
        # Each list's `annotate_page` reads the rest for these rows only, set-based.
        self.annotate_page(rows, now=now)
        return changelist


class VehicleColumns(LiveColumns):
    alarm_field = "vehicle"

    def annotate_page(self, rows: list[Vehicle], *, now: datetime) -> None:
        pks = [row.pk for row in rows]
        meters = current_counterparts(field="vehicle", pks=pks)
        alarms = open_alarm_counts(field="vehicle", pks=pks)
        figures = vehicle_day_figures(vehicle_pks=pks, now=now)
        for row in rows:
            row.current_meter_id = meters.get(row.pk)
            row.open_alarm_count = alarms.get(row.pk, 0)
            row.day_figures = figures.get(row.pk)

    @admin.display(description="SoC (%)")
    def soc(self, vehicle: Vehicle) -> str:
        status = getattr(vehicle, "status", None)
        return f"{status.soc_pct:.0f}" if status else "—"

    @admin.display(description="24 h efficiency")
    def day_efficiency(self, vehicle: Vehicle) -> str:
        figures = getattr(vehicle, "day_figures", None)
        if figures is None or figures.efficiency_pct is None:
            return "—"
        return f"{figures.efficiency_pct:.1f} %"

    @admin.display(description="24 h status")
    def day_status(self, vehicle: Vehicle) -> str:
        figures = getattr(vehicle, "day_figures", None)
        # No assignment in the window: no meter reading, the rule's first line.
        return figures.status if figures else PerformanceStatus.INSUFFICIENT_DATA

    @admin.display(description="links")
    def links(self, vehicle: Vehicle) -> str:
        return _links(
            (readings_url("vehiclereading", vehicle.pk), "readings"),
            (dashboard_url(vehicle.vehicle_id), "dashboard"),
            (alarms_url("vehicle", vehicle.pk), "alarms"),
        )


class MeterColumns(LiveColumns):
    alarm_field = "meter"

    def annotate_page(self, rows: list[Meter], *, now: datetime) -> None:
        pks = [row.pk for row in rows]
        vehicles = current_counterparts(field="meter", pks=pks)
        alarms = open_alarm_counts(field="meter", pks=pks)
        energy = meter_day_energy(meter_pks=pks, now=now)
        for row in rows:
            row.current_vehicle_id = vehicles.get(row.pk)
            row.open_alarm_count = alarms.get(row.pk, 0)
            row.day_energy_kwh = energy.get(row.pk)

    @admin.display(description="24 h AC energy (kWh, rollup hours)")
    def day_energy(self, meter: Meter) -> str:
        kwh = getattr(meter, "day_energy_kwh", None)
        return "—" if kwh is None else f"{kwh:.4f}"

    @admin.display(description="links")
    def links(self, meter: Meter) -> str:
        pairs = [(readings_url("meterreading", meter.pk), "readings")]
        if meter.current_vehicle_id:
            pairs.append((dashboard_url(meter.current_vehicle_id), "vehicle's dashboard"))
        pairs.append((alarms_url("meter", meter.pk), "alarms"))
        return _links(*pairs)
