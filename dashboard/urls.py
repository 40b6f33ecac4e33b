from django.contrib.auth.views import LogoutView
from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.fleet_dashboard, name="fleet"),
    path("login/", views.DashboardLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(next_page="/dashboard/login/"), name="logout"),
    path("vehicles/<str:vehicle_id>/", views.vehicle_dashboard, name="vehicle"),
]
