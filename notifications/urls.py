from django.urls import path

from notifications.views import EndpointDetailView, EndpointListView

urlpatterns = [
    path(
        "v1/notifications/endpoints",
        EndpointListView.as_view(),
        name="notification-endpoint-list",
    ),
    path(
        "v1/notifications/endpoints/<str:endpointId>",
        EndpointDetailView.as_view(),
        name="notification-endpoint-detail",
    ),
]
