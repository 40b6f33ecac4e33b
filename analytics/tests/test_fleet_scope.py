"""Fleet answers cover the fleet a user asks for: `?depot=` narrows it, retired vehicles never
count (issue: device details). Alarms follow the same fleet."""

import pytest

from alarms.models import Alarm
from alarms.services import alarms_evaluate
from analytics.tests.conftest import NOW
from analytics.tests.test_selectors import assign, at, charge
from fleet.models import Vehicle
from fleet.services import device_retire

pytestmark = pytest.mark.django_db

FLEET_URLS = (
    "/v1/analytics/fleet/summary",
    "/v1/analytics/fleet/inefficient",
    "/v1/analytics/fleet/series",
    "/v1/analytics/fleet/attribution",
)


@pytest.fixture
def depots(clock):
    """Three faulty vehicles (charged at 60 %): two at depot NORTH, one at SOUTH."""
    for vehicle_id, meter_id, depot in (
        ("V-N1", "M-N1", "NORTH"),
        ("V-N2", "M-N2", "NORTH"),
        ("V-S1", "M-S1", "SOUTH"),
    ):
        assign(vehicle_id, meter_id, at(0))
        Vehicle.objects.filter(vehicle_id=vehicle_id).update(depot=depot)
        charge(vehicle_id, [meter_id], start=at(10), minutes=60, dc_factor=0.6)


def summary(client, **query) -> dict:
    response = client.get("/v1/analytics/fleet/summary", {"hours": 24, **query})
    assert response.status_code == 200, response.content
    return response.json()


def inefficient_ids(client, **query) -> list[str]:
    response = client.get("/v1/analytics/fleet/inefficient", {"hours": 24, **query})
    assert response.status_code == 200, response.content
    return [item["vehicleId"] for item in response.json()["results"]]


class TestDepot:
    def test_a_depot_narrows_every_fleet_figure(self, depots, staff_client):
        everyone, north = summary(staff_client), summary(staff_client, depot="NORTH")

        assert (everyone["vehicles"], north["vehicles"]) == (3, 2)
        assert north["byStatus"]["FAULT_DETECTED"] == 2
        assert north["totalAcConsumedKwh"] == pytest.approx(
            everyone["totalAcConsumedKwh"] * 2 / 3, rel=1e-6
        )
        assert inefficient_ids(staff_client, depot="NORTH") == ["V-N1", "V-N2"]
        assert inefficient_ids(staff_client, depot="SOUTH") == ["V-S1"]

    def test_the_series_of_a_depot_sums_to_its_summary(self, depots, staff_client):
        response = staff_client.get(
            "/v1/analytics/fleet/series", {"hours": 24, "bucket": "day", "depot": "SOUTH"}
        )
        items = response.json()["items"]

        south = summary(staff_client, depot="SOUTH")
        assert sum(item["totalAcConsumedKwh"] for item in items) == pytest.approx(
            south["totalAcConsumedKwh"]
        )
        assert sum(item["totalDcDeliveredKwh"] for item in items) == pytest.approx(
            south["totalDcDeliveredKwh"]
        )

    def test_a_depot_no_vehicle_has_is_an_empty_fleet(self, depots, staff_client):
        nowhere = summary(staff_client, depot="WEST")

        assert (nowhere["vehicles"], nowhere["totalAcConsumedKwh"]) == (0, 0.0)
        assert inefficient_ids(staff_client, depot="WEST") == []

    @pytest.mark.parametrize("url", FLEET_URLS)
    @pytest.mark.parametrize("bad", ["", "x" * 65, "NORTH\n"])
    def test_a_bad_depot_is_a_400_naming_it(self, depots, staff_client, url, bad):
        response = staff_client.get(url, {"depot": bad})

        assert response.status_code == 400
        assert list(response.json()) == ["depot"]


class TestRetiredVehicles:
    def test_a_retired_vehicle_leaves_every_fleet_answer(self, depots, staff_client):
        device_retire(device=Vehicle.objects.get(vehicle_id="V-N1"), at=NOW)

        assert summary(staff_client)["vehicles"] == 2
        assert inefficient_ids(staff_client) == ["V-N2", "V-S1"]
        assert summary(staff_client, depot="NORTH")["vehicles"] == 1

    def test_alarms_are_not_raised_for_a_retired_vehicle(self, depots):
        device_retire(device=Vehicle.objects.get(vehicle_id="V-S1"), at=NOW)

        alarms_evaluate(now=NOW)

        alarmed = set(Alarm.objects.values_list("vehicle__vehicle_id", flat=True))
        assert "V-S1" not in alarmed
        assert {"V-N1", "V-N2"} <= alarmed


class TestByDepot:
    def test_each_depot_has_the_summary_figures_of_its_vehicles(self, depots, staff_client):
        Vehicle.objects.filter(vehicle_id="V-S1").update(depot="")

        response = staff_client.get("/v1/analytics/fleet/depots", {"hours": 24})

        assert response.status_code == 200
        body = response.json()
        assert [(d["depot"], d["vehicles"]) for d in body["depots"]] == [("NORTH", 2), (None, 1)]
        north = summary(staff_client, depot="NORTH")
        for name in ("totalAcConsumedKwh", "totalDcDeliveredKwh", "efficiencyPct", "byStatus"):
            assert body["depots"][0][name] == north[name]
        everyone = summary(staff_client)
        assert sum(d["totalAcConsumedKwh"] for d in body["depots"]) == pytest.approx(
            everyone["totalAcConsumedKwh"]
        )
        assert (body["from"], body["to"], body["hours"]) == (
            everyone["from"],
            everyone["to"],
            24,
        )

    def test_retired_vehicles_are_in_no_depot(self, depots, staff_client):
        device_retire(device=Vehicle.objects.get(vehicle_id="V-S1"), at=NOW)

        body = staff_client.get("/v1/analytics/fleet/depots").json()

        assert [(d["depot"], d["vehicles"]) for d in body["depots"]] == [("NORTH", 2)]
