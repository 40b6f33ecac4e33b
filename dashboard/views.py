"""The analyst dashboard: server-rendered pages whose charts draw from JSON embedded in the page.

Each page makes its selector calls (rollups for the fleet, the vehicle's rollups plus its edge
hours for a vehicle) and embeds the figures with `json_script`, so the charts draw on the first
paint without a second round trip. Every authenticated user may look (staff and analysts).
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.db import connection, connections
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError

from alarms.selectors import AlarmState, alarm_list
from analytics.params import parse_bucket, parse_window
from analytics.selectors import (
    PerformanceStatus,
    VehicleNotFound,
    fleet_inefficient,
    fleet_series,
    fleet_summary,
    vehicle_series,
)
from api.times import hour_floor
from dashboard.selectors import depot_choices, vehicle_assignment_bands, vehicle_soc_series

LOGIN_URL = "dashboard:login"
# The fleet windows: the last 24 hours per hour, the last 7 and 30 days per day.
FLEET_WINDOWS = {"24h": (24, "hour"), "7d": (7 * 24, "day"), "30d": (30 * 24, "day")}
VEHICLE_WINDOWS = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24}
WORST_COUNT = 10
ALARM_COUNT = 20


class DashboardLoginView(LoginView):
    """The admin's login page, for analysts too (no staff flag needed), then the dashboard."""

    template_name = "admin/login.html"
    extra_context = {"site_header": "Energy telemetry engine", "title": "Log in to the dashboard"}

    def get_default_redirect_url(self):
        return "/dashboard/"


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _label(moment: datetime, bucket: str) -> str:
    return moment.strftime("%d %b %H:%M" if bucket == "hour" else "%a %d %b")


def _series_chart(items, bucket: str, threshold: float) -> dict:
    return {
        "threshold": threshold,
        "labels": [_label(item.start, bucket) for item in items],
        "edges": [[_z(item.start), _z(item.end)] for item in items],
        "acKwh": [item.ac_kwh for item in items],
        "dcKwh": [item.dc_kwh for item in items],
        "efficiencyPct": [item.efficiency_pct for item in items],
        "status": [item.status for item in items],
    }


@login_required(login_url=LOGIN_URL)
def fleet_dashboard(request):
    window = request.GET.get("window", "24h")
    if window not in FLEET_WINDOWS:
        return _bad_request(
            request, "window", f"{window[:20]!r} is not a window; use 24h, 7d or 30d."
        )
    depots = depot_choices()
    depot = request.GET.get("depot") or None
    if depot is not None and depot not in depots:
        return _bad_request(request, "depot", f"{depot[:40]!r} is not a depot.")
    hours, bucket = FLEET_WINDOWS[window]
    hours = min(hours, settings.ANALYTICS_MAX_WINDOW_DAYS * 24)
    threshold = settings.ANALYTICS_FAULT_THRESHOLD_PCT
    now = timezone.now()
    figures = _side_by_side(
        series=lambda: fleet_series(
            hours=hours,
            now=now,
            bucket=bucket,
            threshold=threshold,
            depot=depot,
        ),
        summary=lambda: fleet_summary(hours=hours, now=now, threshold=threshold, depot=depot),
        worst=lambda: fleet_inefficient(
            hours=hours,
            now=now,
            threshold=threshold,
            limit=WORST_COUNT,
            offset=0,
            depot=depot,
        ),
    )
    series, summary, worst = figures["series"], figures["summary"], figures["worst"]
    alarms = alarm_list(state=AlarmState.ACTIVE, depot=depot)
    context = {
        "window": window,
        "windows": list(FLEET_WINDOWS),
        "depots": depots,
        "depot": depot,
        "threshold": threshold,
        "series": series,
        "chart": _series_chart(series.items, bucket, threshold),
        "summary": summary,
        "statuses": [
            (status, summary.by_status.get(status, 0)) for status in PerformanceStatus.values
        ],
        "worst": worst,
        "alarms": list(alarms[:ALARM_COUNT]),
        "alarm_total": alarms.count(),
    }
    return render(request, "dashboard/fleet.html", context)


def _side_by_side(**calls: Callable) -> dict:
    """Run the page's fleet statements at once, each in a thread on a connection of its own: the
    page waits for the slowest of the three, not their sum (each scans the window's rollups).

    Inside a transaction (a test's; requests have none: no ATOMIC_REQUESTS) other connections
    cannot see its rows, so the calls run one after the other on this connection.
    """
    if connection.in_atomic_block:
        return {name: call() for name, call in calls.items()}
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="dashboard") as pool:
        futures = {name: pool.submit(_on_own_connection, call) for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}


def _on_own_connection(call: Callable):
    try:
        return call()
    finally:
        connections.close_all()  # this thread's connections only (they are per thread)


def _vehicle_params(request) -> dict[str, str]:
    """The query as the series endpoint takes it; `from`/`to` of the form's datetime-local
    inputs (no offset, labelled UTC) get their `Z`, and a preset `window` becomes `hours`."""
    params = {}
    for name in ("from", "to"):
        value = request.GET.get(name, "").strip()
        if value:
            parsed = parse_datetime(value) if len(value) < 40 else None
            params[name] = value + "Z" if parsed and parsed.tzinfo is None else value
    window = request.GET.get("window", "")
    if "from" not in params and "to" not in params:
        if window and window not in VEHICLE_WINDOWS:
            raise ValidationError(
                {"window": [f"{window[:20]!r} is not a window; use 24h, 7d or 30d."]}
            )
        params["hours"] = request.GET.get("hours") or str(VEHICLE_WINDOWS.get(window or "24h"))
    if request.GET.get("bucket"):
        params["bucket"] = request.GET["bucket"]
    return params


@login_required(login_url=LOGIN_URL)
def vehicle_dashboard(request, vehicle_id: str):
    try:
        params = _vehicle_params(request)
        window = parse_window(params, now=timezone.now())
        if "bucket" not in params:  # hours up to three days, days beyond
            params["bucket"] = "hour" if window.end - window.start <= timedelta(days=3) else "day"
        bucket = parse_bucket(params)
    except ValidationError as error:
        ((field, messages),) = error.detail.items()
        return _bad_request(request, field, str(messages[0]))
    threshold = settings.ANALYTICS_FAULT_THRESHOLD_PCT
    try:
        series = vehicle_series(
            vehicle_id=vehicle_id,
            start=window.start,
            end=window.end,
            bucket=bucket,
            threshold=threshold,
        )
    except VehicleNotFound:
        raise Http404(f"No vehicle {vehicle_id!r}.") from None
    soc = {
        row.start: row.avg_soc_pct
        for row in vehicle_soc_series(
            vehicle_id=vehicle_id, start=window.start, end=window.end, bucket=bucket
        )
    }
    bands = vehicle_assignment_bands(vehicle_id=vehicle_id, start=window.start, end=window.end)
    chart = _series_chart(series.items, bucket, threshold)
    chart["avgSocPct"] = [soc.get(_bucket_floor(item.start, bucket)) for item in series.items]
    chart["avgBatteryTempC"] = [item.avg_battery_temp_c for item in series.items]
    chart["bands"] = [
        {
            "label": band.meter_id,
            "from": _z(max(band.valid_from, window.start)),
            "to": _z(min(band.valid_to or window.end, window.end)),
        }
        for band in bands
    ]
    csv_query = f"format=csv&from={_z(window.start)}&to={_z(window.end)}&bucket={bucket}"
    context = {
        "vehicle_id": vehicle_id,
        "series": series,
        "window": window,
        "bucket": bucket,
        "preset": request.GET.get("window", "" if "from" in params else "24h"),
        "windows": list(VEHICLE_WINDOWS),
        "form_from": window.start.strftime("%Y-%m-%dT%H:%M"),
        "form_to": window.end.strftime("%Y-%m-%dT%H:%M"),
        "threshold": threshold,
        "chart": chart,
        "bands": bands,
        "alarms": list(alarm_list(vehicle_id=vehicle_id)[:ALARM_COUNT]),
        "csv_url": f"/v1/analytics/performance/{vehicle_id}/series?{csv_query}",
    }
    return render(request, "dashboard/vehicle.html", context)


def _bucket_floor(moment: datetime, bucket: str) -> datetime:
    moment = hour_floor(moment)
    return moment.replace(hour=0) if bucket == "day" else moment


def _bad_request(request, field: str, message: str):
    return render(
        request, "dashboard/bad_request.html", {"field": field, "message": message}, status=400
    )
