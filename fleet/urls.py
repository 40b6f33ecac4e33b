from django.urls import path

from fleet.views import (
    MappingCreateAliasView,
    MappingCreateView,
    MeterListView,
    VehicleDetailView,
    VehicleListView,
)

urlpatterns = [
    path("v1/fleet/vehicles", VehicleListView.as_view(), name="fleet-vehicle-list"),
    path(
        "v1/fleet/vehicles/<str:vehicleId>",
        VehicleDetailView.as_view(),
        name="fleet-vehicle-detail",
    ),
    path("v1/fleet/meters", MeterListView.as_view(), name="fleet-meter-list"),
    path("v1/fleet/mappings", MappingCreateView.as_view(), name="fleet-mapping-create"),
    # Alias kept for clients of the reference designs.
    path("v1/telemetry/map", MappingCreateAliasView.as_view(), name="fleet-mapping-create-alias"),
]
