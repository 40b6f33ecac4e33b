from django.urls import path

from analytics import views

urlpatterns = [
    path(
        "v1/analytics/performance/<str:vehicleId>",
        views.VehiclePerformanceView.as_view(),
        name="analytics-vehicle-performance",
    ),
    path(
        "v1/analytics/performance/<str:vehicleId>/series",
        views.VehicleSeriesView.as_view(),
        name="analytics-vehicle-series",
    ),
    path(
        "v1/analytics/fleet/series", views.FleetSeriesView.as_view(), name="analytics-fleet-series"
    ),
    path(
        "v1/analytics/fleet/attribution",
        views.FleetAttributionView.as_view(),
        name="analytics-fleet-attribution",
    ),
    path(
        "v1/analytics/fleet/inefficient",
        views.FleetInefficientView.as_view(),
        name="analytics-fleet-inefficient",
    ),
    path(
        "v1/analytics/fleet/summary",
        views.FleetSummaryView.as_view(),
        name="analytics-fleet-summary",
    ),
    path("v1/status/vehicles", views.VehicleStatusListView.as_view(), name="status-vehicles"),
    path("v1/status/meters", views.MeterStatusListView.as_view(), name="status-meters"),
    path(
        "v1/status/vehicle/<str:vehicleId>",
        views.VehicleStatusView.as_view(),
        name="status-vehicle",
    ),
    path("v1/status/meter/<str:meterId>", views.MeterStatusView.as_view(), name="status-meter"),
    path(
        "v1/history/vehicle/<str:vehicleId>",
        views.VehicleHistoryView.as_view(),
        name="history-vehicle",
    ),
    path(
        "v1/history/meter/<str:meterId>",
        views.MeterHistoryView.as_view(),
        name="history-meter",
    ),
]
