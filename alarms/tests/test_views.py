from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from alarms.models import Alarm
from alarms.tests.conftest import NOW, mapped_pair


@pytest.fixture
def alarms(db):
    v1, m1 = mapped_pair("V-1", "M-1")
    v2, m2 = mapped_pair("V-2", "M-2")
    low = Alarm.objects.create(
        type="LOW_EFFICIENCY",
        subject="VEHICLE",
        vehicle=v1,
        meter=m1,
        opened_at=NOW,
        figures={"efficiencyPct": 70.0},
        latest={"efficiencyPct": 71.0},
    )
    offline = Alarm.objects.create(
        type="DEVICE_OFFLINE",
        subject="METER",
        vehicle=v2,
        meter=m2,
        opened_at=NOW - timedelta(hours=2),
        cleared_at=NOW - timedelta(hours=1),
    )
    anomaly = Alarm.objects.create(
        type="ANOMALY", subject="VEHICLE", vehicle=v2, meter=m2, opened_at=NOW - timedelta(hours=3)
    )
    return {"low": low, "offline": offline, "anomaly": anomaly}


def ids(response) -> list[int]:
    return [item["id"] for item in response.json()["results"]]


class TestAlarmList:
    def test_lists_every_alarm_newest_first_in_the_contract_shape(self, analyst_client, alarms):
        response = analyst_client.get("/v1/alarms")

        assert response.status_code == 200
        assert ids(response) == [alarms["low"].pk, alarms["offline"].pk, alarms["anomaly"].pk]
        assert response.json()["results"][0] == {
            "id": alarms["low"].pk,
            "type": "LOW_EFFICIENCY",
            "subject": "vehicle",
            "vehicleId": "V-1",
            "meterId": "M-1",
            "active": True,
            "openedAt": "2026-02-10T12:30:00Z",
            "clearedAt": None,
            "acknowledgedAt": None,
            "acknowledgedBy": None,
            "figures": {"efficiencyPct": 70.0},
            "latest": {"efficiencyPct": 71.0},
        }

    @pytest.mark.parametrize(
        ("query", "headers"), [("?format=csv", {}), ("", {"HTTP_ACCEPT": "text/csv"})]
    )
    def test_the_page_comes_as_csv_too(self, analyst_client, alarms, query, headers):
        response = analyst_client.get(f"/v1/alarms{query}", **headers)

        assert response.status_code == 200
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        header, *rows = response.content.decode().splitlines()
        assert header.split(",")[:4] == ["id", "type", "subject", "vehicleId"]
        assert [row.split(",")[0] for row in rows] == [
            str(alarms[name].pk) for name in ("low", "offline", "anomaly")
        ]

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("status=active", ["low", "anomaly"]),
            ("status=cleared", ["offline"]),
            ("status=all&type=ANOMALY", ["anomaly"]),
            ("vehicleId=V-2", ["offline", "anomaly"]),
            ("meterId=M-1", ["low"]),
            ("status=active&meterId=M-2", ["anomaly"]),
            ("vehicleId=V-404", []),
        ],
    )
    def test_filters(self, analyst_client, alarms, query, expected):
        response = analyst_client.get(f"/v1/alarms?{query}")

        assert response.status_code == 200
        assert ids(response) == [alarms[name].pk for name in expected]

    def test_pages_by_cursor_with_limit(self, analyst_client, alarms):
        first = analyst_client.get("/v1/alarms?limit=2").json()
        second = analyst_client.get(first["next"]).json()

        assert [a["id"] for a in first["results"] + second["results"]] == [
            alarms["low"].pk,
            alarms["offline"].pk,
            alarms["anomaly"].pk,
        ]
        assert second["next"] is None

    @pytest.mark.parametrize(
        ("query", "parameter"),
        [
            ("status=open", "status"),
            ("type=LOW", "type"),
            ("limit=0", "limit"),
            ("limit=abc", "limit"),
            ("limit=1001", "limit"),
            ("cursor=garbage", "cursor"),
            ("cursor=", "cursor"),
            ("vehicleId=V-1%0A", "vehicleId"),
            ("meterId=" + "M" * 65, "meterId"),
        ],
    )
    def test_a_bad_parameter_is_a_400_naming_it(self, analyst_client, alarms, query, parameter):
        response = analyst_client.get(f"/v1/alarms?{query}")

        assert response.status_code == 400
        assert list(response.json()) == [parameter]

    def test_needs_an_authenticated_user(self, alarms):
        assert APIClient().get("/v1/alarms").status_code == 401


class TestAlarmDetail:
    def test_returns_one_alarm(self, analyst_client, alarms):
        response = analyst_client.get(f"/v1/alarms/{alarms['offline'].pk}")

        assert response.status_code == 200
        body = response.json()
        assert (body["type"], body["subject"], body["meterId"], body["active"]) == (
            "DEVICE_OFFLINE",
            "meter",
            "M-2",
            False,
        )
        assert body["clearedAt"] == "2026-02-10T11:30:00Z"

    @pytest.mark.parametrize("alarm_id", ["999999", "abc", "1.5", "-1", "9" * 40])
    def test_an_unknown_or_impossible_id_is_a_404(self, analyst_client, alarms, alarm_id):
        response = analyst_client.get(f"/v1/alarms/{alarm_id}")

        assert response.status_code == 404
        assert "detail" in response.json()


class TestAcknowledge:
    def test_staff_acknowledge_and_again_keeps_the_first(
        self, staff_client, staff_user, alarms, django_user_model
    ):
        url = f"/v1/alarms/{alarms['low'].pk}/acknowledge"

        first = staff_client.post(url)
        other = django_user_model.objects.create_user(username="other", is_staff=True)
        other_client = APIClient()
        other_client.force_authenticate(other)
        second = other_client.post(url)

        assert first.status_code == second.status_code == 200
        assert first.json()["acknowledgedBy"] == second.json()["acknowledgedBy"] == "admin"
        assert first.json()["acknowledgedAt"] == second.json()["acknowledgedAt"]
        assert first.json()["active"] is True  # acknowledged, not cleared

    def test_a_non_staff_user_gets_403_and_nothing_changes(self, analyst_client, alarms):
        response = analyst_client.post(f"/v1/alarms/{alarms['low'].pk}/acknowledge")

        assert response.status_code == 403
        alarms["low"].refresh_from_db()
        assert alarms["low"].acknowledged_at is None

    def test_unauthenticated_is_401_and_unknown_is_404(self, staff_client, alarms):
        assert APIClient().post(f"/v1/alarms/{alarms['low'].pk}/acknowledge").status_code == 401
        assert staff_client.post("/v1/alarms/999999/acknowledge").status_code == 404
        assert staff_client.post("/v1/alarms/x/acknowledge").status_code == 404
