from django.urls import path

from telemetry import views

urlpatterns = [
    path("v1/ingest", views.MixedIngestView.as_view()),
    path("v1/ingest/meter", views.MeterIngestView.as_view()),
    path("v1/ingest/vehicle", views.VehicleIngestView.as_view()),
    path("v1/ingest/meter/batch", views.MeterBatchIngestView.as_view()),
    path("v1/ingest/vehicle/batch", views.VehicleBatchIngestView.as_view()),
    # Aliases kept for clients of the reference designs.
    path("v1/telemetry/ingest", views.TelemetryIngestAliasView.as_view()),
    path("v1/telemetry", views.TelemetryAliasView.as_view()),
    path("metrics", views.MetricsView.as_view(), name="metrics"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("", views.home, name="home"),
]
