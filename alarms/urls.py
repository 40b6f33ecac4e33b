from django.urls import path

from alarms.views import AlarmAcknowledgeView, AlarmDetailView, AlarmListView

urlpatterns = [
    path("v1/alarms", AlarmListView.as_view(), name="alarm-list"),
    path("v1/alarms/<str:alarmId>", AlarmDetailView.as_view(), name="alarm-detail"),
    path(
        "v1/alarms/<str:alarmId>/acknowledge",
        AlarmAcknowledgeView.as_view(),
        name="alarm-acknowledge",
    ),
]
