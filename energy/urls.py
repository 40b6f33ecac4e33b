from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[]),
        name="swagger-ui",
    ),
    path(
        "api/redoc/",
        # A template of ours: drf-spectacular's own links Google Fonts, and the docs work offline.
        SpectacularRedocView.as_view(
            url_name="schema", permission_classes=[], template_name="telemetry/redoc.html"
        ),
        name="redoc",
    ),
    path("", include("telemetry.urls")),
    path("", include("fleet.urls")),
    path("", include("analytics.urls")),
    path("", include("alarms.urls")),
    path("", include("notifications.urls")),
]

handler404 = "api.views.page_not_found"
