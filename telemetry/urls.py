from django.urls import path

from telemetry.views import MetricsView, healthz, home, ingest_view, readyz

_MIXED = "One reading, or a batch of meters and vehicles mixed"

urlpatterns = [
    path(
        "v1/ingest", ingest_view(kind=None, batch_only=False, summary=_MIXED, operation_id="ingest")
    ),
    path(
        "v1/ingest/meter",
        ingest_view(
            kind="meter",
            batch_only=False,
            summary="Meter readings: one or a batch",
            operation_id="ingest_meter",
        ),
    ),
    path(
        "v1/ingest/vehicle",
        ingest_view(
            kind="vehicle",
            batch_only=False,
            summary="Vehicle readings: one or a batch",
            operation_id="ingest_vehicle",
        ),
    ),
    path(
        "v1/ingest/meter/batch",
        ingest_view(
            kind="meter",
            batch_only=True,
            summary="A batch of meter readings",
            operation_id="ingest_meter_batch",
        ),
    ),
    path(
        "v1/ingest/vehicle/batch",
        ingest_view(
            kind="vehicle",
            batch_only=True,
            summary="A batch of vehicle readings",
            operation_id="ingest_vehicle_batch",
        ),
    ),
    # Aliases kept for clients of the reference designs.
    path(
        "v1/telemetry/ingest",
        ingest_view(
            kind=None,
            batch_only=False,
            summary=f"{_MIXED} (alias of /v1/ingest)",
            operation_id="telemetry_ingest_alias",
        ),
    ),
    path(
        "v1/telemetry",
        ingest_view(
            kind=None,
            batch_only=False,
            summary=f"{_MIXED} (alias of /v1/ingest)",
            operation_id="telemetry_alias",
        ),
    ),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("", home, name="home"),
]
