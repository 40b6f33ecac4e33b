from django.urls import reverse

from alarms.models import Alarm
from alarms.tests.conftest import NOW, mapped_pair
from notifications.models import Delivery, DeliveryAttempt, WebhookEndpoint


class TestNotificationAdmin:
    def test_an_endpoint_is_added_with_its_alarm_types(self, client, staff_user):
        client.force_login(staff_user)

        response = client.post(
            reverse("admin:notifications_webhookendpoint_add"),
            {
                "url": "https://ops.example.com/hook",
                "secret": "a-shared-secret-of-some-length",
                "active": "on",
                "alarm_types": ["DEVICE_OFFLINE", "ANOMALY"],
            },
        )

        assert response.status_code == 302
        endpoint = WebhookEndpoint.objects.get()
        assert endpoint.alarm_types == ["ANOMALY", "DEVICE_OFFLINE"]

    def test_a_delivery_page_shows_every_attempt(self, client, staff_user):
        client.force_login(staff_user)
        vehicle, _ = mapped_pair("V-1", "M-1")
        alarm = Alarm.objects.create(type="ANOMALY", subject="VEHICLE", vehicle=vehicle)
        endpoint = WebhookEndpoint.objects.create(url="https://x.example/h", secret="s" * 16)
        delivery = Delivery.objects.create(
            endpoint=endpoint, alarm=alarm, event="alarm.opened", body="{}", attempt_count=2
        )
        DeliveryAttempt.objects.create(
            delivery=delivery, number=1, attempted_at=NOW, status_code=500, error="HTTP 500: boom"
        )
        DeliveryAttempt.objects.create(
            delivery=delivery, number=2, attempted_at=NOW, error="ReadTimeout: timed out"
        )

        listing = client.get(reverse("admin:notifications_delivery_changelist"))
        page = client.get(reverse("admin:notifications_delivery_change", args=[delivery.pk]))

        assert listing.status_code == 200
        assert page.status_code == 200
        assert "HTTP 500: boom" in page.content.decode()
        assert "ReadTimeout: timed out" in page.content.decode()
