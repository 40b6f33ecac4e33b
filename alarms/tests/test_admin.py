from datetime import timedelta

import pytest
from django.urls import reverse

from alarms.models import Alarm
from alarms.tests.conftest import NOW, mapped_pair

CHANGELIST = reverse("admin:alarms_alarm_changelist")


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def alarms(db):
    v1, m1 = mapped_pair("V-1", "M-1")
    v2, m2 = mapped_pair("V-2", "M-2")
    return {
        "cleared_newest": Alarm.objects.create(
            type="ANOMALY",
            subject="VEHICLE",
            vehicle=v1,
            meter=m1,
            opened_at=NOW,
            cleared_at=NOW + timedelta(minutes=5),
        ),
        "active_old": Alarm.objects.create(
            type="LOW_EFFICIENCY",
            subject="VEHICLE",
            vehicle=v1,
            meter=m1,
            opened_at=NOW - timedelta(days=2),
        ),
        "active_meter": Alarm.objects.create(
            type="DEVICE_OFFLINE",
            subject="METER",
            vehicle=v2,
            meter=m2,
            opened_at=NOW - timedelta(days=1),
        ),
    }


def listed(response) -> list[int]:
    return [row.pk for row in response.context["cl"].result_list]


class TestAlarmAdmin:
    def test_lists_active_alarms_first(self, admin_client, alarms):
        response = admin_client.get(CHANGELIST)

        assert response.status_code == 200
        assert listed(response) == [
            alarms["active_meter"].pk,
            alarms["active_old"].pk,
            alarms["cleared_newest"].pk,
        ]

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("state=active", ["active_meter", "active_old"]),
            ("state=cleared", ["cleared_newest"]),
            ("type__exact=DEVICE_OFFLINE", ["active_meter"]),
            ("q=V-2", ["active_meter"]),
        ],
    )
    def test_filters_by_type_state_and_device(self, admin_client, alarms, query, expected):
        response = admin_client.get(f"{CHANGELIST}?{query}")

        assert listed(response) == [alarms[name].pk for name in expected]

    def test_the_acknowledge_action(self, admin_client, alarms, staff_user):
        response = admin_client.post(
            CHANGELIST,
            {
                "action": "acknowledge",
                "_selected_action": [alarms["active_old"].pk, alarms["active_meter"].pk],
            },
            follow=True,
        )

        assert response.status_code == 200
        assert "2 alarm(s) acknowledged." in response.content.decode()
        acknowledged = Alarm.objects.filter(acknowledged_by=staff_user)
        assert set(acknowledged.values_list("pk", flat=True)) == {
            alarms["active_old"].pk,
            alarms["active_meter"].pk,
        }

    def test_an_alarm_page_shows_its_figures(self, admin_client, alarms):
        alarm = alarms["active_old"]
        alarm.figures = {"efficiencyPct": 61.5}
        alarm.save()

        response = admin_client.get(reverse("admin:alarms_alarm_change", args=[alarm.pk]))

        assert response.status_code == 200
        assert "61.5" in response.content.decode()

    def test_vehicle_and_meter_pages_link_to_their_alarms(self, admin_client, alarms):
        vehicle = alarms["active_old"].vehicle
        meter = alarms["active_meter"].meter

        vehicle_page = admin_client.get(reverse("admin:fleet_vehicle_change", args=[vehicle.pk]))
        meter_page = admin_client.get(reverse("admin:fleet_meter_change", args=[meter.pk]))

        vehicle_link = f"{CHANGELIST}?vehicle__id__exact={vehicle.pk}"
        assert f'<a href="{vehicle_link}">1 active, 2 in all</a>' in vehicle_page.content.decode()
        meter_link = f"{CHANGELIST}?meter__id__exact={meter.pk}"
        assert f'<a href="{meter_link}">1 active, 1 in all</a>' in meter_page.content.decode()
        followed = admin_client.get(vehicle_link)
        assert followed.status_code == 200
        assert listed(followed) == [alarms["active_old"].pk, alarms["cleared_newest"].pk]
