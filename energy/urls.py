from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from telemetry.pages import favicon, redoc_view, swagger_ui_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    # Templates of ours under the Content-Security-Policy (telemetry/pages.py).
    path("api/docs/", swagger_ui_view(), name="swagger-ui"),
    path("api/redoc/", redoc_view(), name="redoc"),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("telemetry.urls")),
    path("", include("fleet.urls")),
    path("", include("analytics.urls")),
    path("", include("alarms.urls")),
    path("", include("notifications.urls")),
]

handler404 = "api.views.page_not_found"
