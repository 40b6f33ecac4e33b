from django.urls import path

from analytics import views

# route under v1/analytics/ → (view, name after "analytics-")
_ANALYTICS = {
    "performance/<str:vehicleId>": (views.VehiclePerformanceView, "vehicle-performance"),
    "performance/<str:vehicleId>/series": (views.VehicleSeriesView, "vehicle-series"),
    "fleet/series": (views.FleetSeriesView, "fleet-series"),
    "fleet/attribution": (views.FleetAttributionView, "fleet-attribution"),
    "fleet/inefficient": (views.FleetInefficientView, "fleet-inefficient"),
    "fleet/summary": (views.FleetSummaryView, "fleet-summary"),
    "fleet/depots": (views.FleetDepotsView, "fleet-depots"),
}


def _device_routes(kind: str, *, status_list, status, history) -> list:
    """status-<kind>s, status-<kind> and history-<kind>: the live rows and the history."""
    device = f"<str:{kind}Id>"
    return [
        path(f"v1/status/{kind}s", status_list.as_view(), name=f"status-{kind}s"),
        path(f"v1/status/{kind}/{device}", status.as_view(), name=f"status-{kind}"),
        path(f"v1/history/{kind}/{device}", history.as_view(), name=f"history-{kind}"),
    ]


urlpatterns = [
    *(
        path(f"v1/analytics/{route}", view.as_view(), name=f"analytics-{name}")
        for route, (view, name) in _ANALYTICS.items()
    ),
    *_device_routes(
        "vehicle",
        status_list=views.VehicleStatusListView,
        status=views.VehicleStatusView,
        history=views.VehicleHistoryView,
    ),
    *_device_routes(
        "meter",
        status_list=views.MeterStatusListView,
        status=views.MeterStatusView,
        history=views.MeterHistoryView,
    ),
]
