from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api.pagination import INVALID_CURSOR
from fleet.models import Meter, MeterAssignment, Vehicle
from fleet.tests.factories import MeterAssignmentFactory, MeterFactory, VehicleFactory

FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
FEB_5 = datetime(2026, 2, 5, tzinfo=UTC)
FEB_10_1015 = datetime(2026, 2, 10, 10, 15, tzinfo=UTC)
REGISTERED = "2026-01-15T09:00:00Z"

pytestmark = pytest.mark.django_db

NO_CREDENTIALS = {"detail": "Authentication credentials were not provided."}
NOT_ALLOWED = {"detail": "You do not have permission to perform this action."}


@pytest.fixture(autouse=True)
def _registration_clock():
    """Devices made by the factories are registered at a fixed moment (their createdAt)."""
    with time_machine.travel(datetime(2026, 1, 15, 9, tzinfo=UTC), tick=False):
        yield


IN_SERVICE = {
    "displayName": "",
    "depot": "",
    "retired": False,
    "retiredAt": None,
    "createdAt": REGISTERED,
}


def vehicle_item(vehicle_id: str, meter_id: str | None) -> dict:
    return {
        "vehicleId": vehicle_id,
        "currentMeterId": meter_id,
        **IN_SERVICE,
        "batteryCapacityKwh": None,
    }


def meter_item(meter_id: str, vehicle_id: str | None) -> dict:
    return {
        "meterId": meter_id,
        "currentVehicleId": vehicle_id,
        **IN_SERVICE,
        "ratedPowerKw": None,
    }


@pytest.fixture
def small_fleet():
    """V-1 on M-1; V-2 on M-2 after M-3; V-3 and M-4 unassigned."""
    v1, v2, _ = (VehicleFactory(vehicle_id=f"V-{n}") for n in (1, 2, 3))
    m1, m2, m3, _ = (MeterFactory(meter_id=f"M-{n}") for n in (1, 2, 3, 4))
    MeterAssignmentFactory(vehicle=v1, meter=m1, valid_from=FEB_1)
    MeterAssignmentFactory(vehicle=v2, meter=m3, valid_from=FEB_1, valid_to=FEB_5)
    MeterAssignmentFactory(vehicle=v2, meter=m2, valid_from=FEB_5)


class TestVehicleList:
    def test_needs_credentials(self, api_client):
        response = api_client.get("/v1/fleet/vehicles")

        assert response.status_code == 401
        assert response.json() == NO_CREDENTIALS

    def test_lists_vehicles_by_id_with_their_current_meter(self, analyst_client, small_fleet):
        response = analyst_client.get("/v1/fleet/vehicles")

        assert response.status_code == 200
        assert response.json() == {
            "next": None,
            "previous": None,
            "results": [
                vehicle_item("V-1", "M-1"),
                vehicle_item("V-2", "M-2"),
                vehicle_item("V-3", None),
            ],
        }

    def test_accepts_a_drf_token(self, api_client, analyst_user, small_fleet):
        from rest_framework.authtoken.models import Token

        token = Token.objects.create(user=analyst_user)
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

        response = api_client.get("/v1/fleet/vehicles", {"vehicleId": "V-1"})

        assert response.status_code == 200
        assert response.json()["results"] == [vehicle_item("V-1", "M-1")]

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ({"vehicleId": "V-2"}, ["V-2"]),
            ({"vehicleId": "V-"}, []),
            ({"vehicleIdPrefix": "V-"}, ["V-1", "V-2", "V-3"]),
            ({"vehicleIdPrefix": "V-1"}, ["V-1"]),
            ({"hasMeter": "true"}, ["V-1", "V-2"]),
            ({"hasMeter": "false"}, ["V-3"]),
            ({"meterId": "M-2"}, ["V-2"]),
            ({"meterId": "M-3"}, []),  # served V-2 once, not now
            ({"meterId": "M-404"}, []),
            ({"hasMeter": "true", "vehicleIdPrefix": "V-2"}, ["V-2"]),
        ],
    )
    def test_filters(self, analyst_client, small_fleet, query, expected):
        response = analyst_client.get("/v1/fleet/vehicles", query)

        assert response.status_code == 200
        assert [item["vehicleId"] for item in response.json()["results"]] == expected

    def test_a_boolean_filter_that_does_not_parse_is_a_400(self, analyst_client):
        response = analyst_client.get("/v1/fleet/vehicles", {"hasMeter": "maybe"})

        assert response.status_code == 400
        assert response.json() == {"hasMeter": ["Must be true or false."]}

    def test_a_meter_dated_to_start_later_is_not_current(self, analyst_client):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(vehicle=vehicle, valid_from=datetime(2099, 1, 1, tzinfo=UTC))

        response = analyst_client.get("/v1/fleet/vehicles")

        assert response.json()["results"] == [vehicle_item("V-1", None)]

    def test_pages_with_a_cursor_and_never_counts(self, analyst_client, small_fleet):
        with CaptureQueriesContext(connection) as queries:
            first = analyst_client.get("/v1/fleet/vehicles", {"limit": 2}).json()
        second = analyst_client.get(first["next"]).json()

        assert [item["vehicleId"] for item in first["results"]] == ["V-1", "V-2"]
        assert [item["vehicleId"] for item in second["results"]] == ["V-3"]
        assert second["next"] is None
        assert second["previous"] is not None
        assert not [q for q in queries if "COUNT(" in q["sql"].upper()]

    def test_an_invalid_cursor_is_a_400_naming_it(self, analyst_client):
        response = analyst_client.get("/v1/fleet/vehicles", {"cursor": "not-a-cursor"})

        assert response.status_code == 400
        assert response.json() == {"cursor": [INVALID_CURSOR]}

    def test_page_size_is_limit_and_the_old_name_is_a_400(self, analyst_client):
        response = analyst_client.get("/v1/fleet/vehicles", {"pageSize": 1})

        assert response.status_code == 400
        assert response.json() == {"pageSize": ["No such parameter: the page size is `limit`."]}

    def test_runs_as_many_queries_for_30_vehicles_as_for_3(
        self, analyst_client, django_assert_max_num_queries
    ):
        for vehicle in VehicleFactory.create_batch(3):
            MeterAssignmentFactory(vehicle=vehicle)
        with CaptureQueriesContext(connection) as three:
            analyst_client.get("/v1/fleet/vehicles")
        for vehicle in VehicleFactory.create_batch(27):
            MeterAssignmentFactory(vehicle=vehicle)

        with django_assert_max_num_queries(len(three)):
            response = analyst_client.get("/v1/fleet/vehicles")

        assert len(response.json()["results"]) == 30


class TestMeterList:
    def test_needs_credentials(self, api_client):
        assert api_client.get("/v1/fleet/meters").status_code == 401

    def test_lists_meters_by_id_with_the_vehicle_each_serves(self, analyst_client, small_fleet):
        response = analyst_client.get("/v1/fleet/meters")

        assert response.status_code == 200
        assert response.json() == {
            "next": None,
            "previous": None,
            "results": [
                meter_item("M-1", "V-1"),
                meter_item("M-2", "V-2"),
                meter_item("M-3", None),
                meter_item("M-4", None),
            ],
        }

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ({"meterId": "M-3"}, ["M-3"]),
            ({"meterIdPrefix": "M-1"}, ["M-1"]),
            ({"hasVehicle": "true"}, ["M-1", "M-2"]),
            ({"hasVehicle": "0"}, ["M-3", "M-4"]),
            ({"vehicleId": "V-2"}, ["M-2"]),
            ({"vehicleId": "V-3"}, []),
        ],
    )
    def test_filters(self, analyst_client, small_fleet, query, expected):
        response = analyst_client.get("/v1/fleet/meters", query)

        assert response.status_code == 200
        assert [item["meterId"] for item in response.json()["results"]] == expected

    def test_pages_with_a_cursor(self, analyst_client, small_fleet):
        first = analyst_client.get("/v1/fleet/meters", {"limit": 3}).json()
        second = analyst_client.get(first["next"]).json()

        assert [item["meterId"] for item in first["results"]] == ["M-1", "M-2", "M-3"]
        assert [item["meterId"] for item in second["results"]] == ["M-4"]


class TestRetiredDevices:
    @pytest.fixture
    def retired_fleet(self, small_fleet):
        from fleet.services import device_retire

        device_retire(device=Vehicle.objects.get(vehicle_id="V-1"), at=FEB_10_1015)
        device_retire(device=Meter.objects.get(meter_id="M-4"), at=FEB_10_1015)

    @pytest.mark.parametrize(
        ("url", "key", "query", "expected"),
        [
            ("/v1/fleet/vehicles", "vehicleId", {}, ["V-2", "V-3"]),
            ("/v1/fleet/vehicles", "vehicleId", {"retired": "false"}, ["V-2", "V-3"]),
            ("/v1/fleet/vehicles", "vehicleId", {"retired": "true"}, ["V-1", "V-2", "V-3"]),
            ("/v1/fleet/meters", "meterId", {}, ["M-1", "M-2", "M-3"]),
            ("/v1/fleet/meters", "meterId", {"retired": "1"}, ["M-1", "M-2", "M-3", "M-4"]),
        ],
    )
    def test_lists_leave_retired_devices_out_unless_asked(
        self, analyst_client, retired_fleet, url, key, query, expected
    ):
        response = analyst_client.get(url, query)

        assert response.status_code == 200
        assert [item[key] for item in response.json()["results"]] == expected

    def test_a_bad_retired_value_is_a_400_naming_it(self, analyst_client):
        response = analyst_client.get("/v1/fleet/vehicles", {"retired": "maybe"})

        assert response.status_code == 400
        assert response.json() == {"retired": ["Must be true or false."]}

    def test_the_detail_shows_the_retirement_and_the_devices_details(
        self, analyst_client, retired_fleet
    ):
        Vehicle.objects.filter(vehicle_id="V-1").update(
            display_name="Van 1", depot="North", battery_capacity_kwh=75.0
        )

        response = analyst_client.get("/v1/fleet/vehicles/V-1")

        assert response.json() == {
            **vehicle_item("V-1", None),
            "displayName": "Van 1",
            "depot": "North",
            "retired": True,
            "retiredAt": "2026-02-10T10:15:00Z",
            "batteryCapacityKwh": 75.0,
            "assignments": [
                {
                    "meterId": "M-1",
                    "validFrom": "2026-02-01T00:00:00Z",
                    "validTo": "2026-02-10T10:15:00Z",
                }
            ],
        }

    def test_a_meter_item_shows_its_rated_power(self, analyst_client):
        MeterFactory(meter_id="M-9", rated_power_kw=22.0, depot="North")

        response = analyst_client.get("/v1/fleet/meters", {"meterId": "M-9"})

        assert response.json()["results"] == [
            {**meter_item("M-9", None), "depot": "North", "ratedPowerKw": 22.0}
        ]


class TestVehicleDetail:
    def test_shows_the_current_meter_and_the_history_newest_first(
        self, analyst_client, small_fleet
    ):
        response = analyst_client.get("/v1/fleet/vehicles/V-2")

        assert response.status_code == 200
        assert response.json() == {
            **vehicle_item("V-2", "M-2"),
            "assignments": [
                {"meterId": "M-2", "validFrom": "2026-02-05T00:00:00Z", "validTo": None},
                {
                    "meterId": "M-3",
                    "validFrom": "2026-02-01T00:00:00Z",
                    "validTo": "2026-02-05T00:00:00Z",
                },
            ],
        }

    def test_a_vehicle_never_assigned_has_no_meter_and_no_history(self, analyst_client):
        VehicleFactory(vehicle_id="V-9")

        response = analyst_client.get("/v1/fleet/vehicles/V-9")

        assert response.json() == {**vehicle_item("V-9", None), "assignments": []}

    def test_an_unknown_vehicle_is_a_404(self, analyst_client):
        response = analyst_client.get("/v1/fleet/vehicles/V-404")

        assert response.status_code == 404
        assert response.json() == {"detail": "No vehicle 'V-404'."}

    def test_needs_credentials(self, api_client, small_fleet):
        assert api_client.get("/v1/fleet/vehicles/V-1").status_code == 401


@pytest.fixture(params=["/v1/fleet/mappings", "/v1/telemetry/map"])
def mapping_url(request) -> str:
    """The mapping route and its alias behave the same."""
    return request.param


def assignments() -> list[tuple[str, str, datetime, datetime | None]]:
    rows = MeterAssignment.objects.select_related("vehicle", "meter").order_by("valid_from", "pk")
    return [(a.vehicle.vehicle_id, a.meter.meter_id, a.valid_from, a.valid_to) for a in rows]


class TestMappingCreate:
    def test_needs_credentials(self, api_client, mapping_url):
        response = api_client.post(mapping_url, {"vehicleId": "V-1", "meterId": "M-1"})

        assert response.status_code == 401
        assert response.json() == NO_CREDENTIALS
        assert not Vehicle.objects.exists()

    def test_is_refused_to_a_user_who_is_not_staff(self, analyst_client, mapping_url):
        response = analyst_client.post(mapping_url, {"vehicleId": "V-1", "meterId": "M-1"})

        assert response.status_code == 403
        assert response.json() == NOT_ALLOWED
        assert not Vehicle.objects.exists()

    def test_registers_unknown_devices_and_assigns_them(self, staff_client, mapping_url):
        response = staff_client.post(
            mapping_url,
            {"vehicleId": "V-1", "meterId": "M-1", "validFrom": "2026-02-10T10:15:00Z"},
        )

        assert response.status_code == 201
        assert response.json() == {
            "vehicleId": "V-1",
            "meterId": "M-1",
            "validFrom": "2026-02-10T10:15:00Z",
            "validTo": None,
        }
        assert assignments() == [("V-1", "M-1", FEB_10_1015, None)]

    def test_a_valid_from_with_another_offset_is_stored_in_utc(self, staff_client):
        response = staff_client.post(
            "/v1/fleet/mappings",
            {"vehicleId": "V-1", "meterId": "M-1", "validFrom": "2026-02-10T11:15:00+01:00"},
        )

        assert response.json()["validFrom"] == "2026-02-10T10:15:00Z"

    def test_without_valid_from_the_assignment_starts_now(self, staff_client):
        with time_machine.travel(FEB_10_1015, tick=False):
            response = staff_client.post(
                "/v1/fleet/mappings", {"vehicleId": "V-1", "meterId": "M-1"}
            )

        assert response.status_code == 201
        assert response.json()["validFrom"] == "2026-02-10T10:15:00Z"

    def test_repeating_the_current_mapping_is_a_200_and_changes_nothing(
        self, staff_client, mapping_url
    ):
        body = {"vehicleId": "V-1", "meterId": "M-1", "validFrom": "2026-02-01T00:00:00Z"}
        staff_client.post(mapping_url, body)

        response = staff_client.post(mapping_url, {**body, "validFrom": "2026-02-10T10:15:00Z"})

        assert response.status_code == 200
        assert response.json() == {
            "vehicleId": "V-1",
            "meterId": "M-1",
            "validFrom": "2026-02-01T00:00:00Z",
            "validTo": None,
        }
        assert assignments() == [("V-1", "M-1", FEB_1, None)]

    def test_reassigning_closes_the_old_window_at_the_new_start(self, staff_client):
        staff_client.post(
            "/v1/fleet/mappings",
            {"vehicleId": "V-1", "meterId": "M-1", "validFrom": "2026-02-01T00:00:00Z"},
        )

        response = staff_client.post(
            "/v1/telemetry/map",
            {"vehicleId": "V-1", "meterId": "M-2", "validFrom": "2026-02-10T10:15:00Z"},
        )

        assert response.status_code == 201
        assert assignments() == [
            ("V-1", "M-1", FEB_1, FEB_10_1015),
            ("V-1", "M-2", FEB_10_1015, None),
        ]

    def test_an_overlap_that_cannot_be_closed_is_a_409(self, staff_client, mapping_url):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1, valid_to=FEB_5
        )
        before = assignments()

        response = staff_client.post(
            mapping_url,
            {"vehicleId": "V-1", "meterId": "M-2", "validFrom": "2026-02-03T00:00:00Z"},
        )

        assert response.status_code == 409
        assert response.json() == {
            "detail": (
                "Vehicle V-1 cannot be assigned to meter M-2 from 2026-02-03T00:00:00+00:00: "
                "that overlaps the assignment of vehicle V-1 to meter M-1 from "
                "2026-02-01 00:00:00+0000 to 2026-02-05 00:00:00+0000."
            )
        }
        assert assignments() == before

    def test_a_valid_from_without_utc_offset_is_a_400_naming_the_field(
        self, staff_client, mapping_url
    ):
        response = staff_client.post(
            mapping_url, {"vehicleId": "V-1", "meterId": "M-1", "validFrom": "2026-02-10T10:15:00"}
        )

        assert response.status_code == 400
        assert response.json() == {
            "validFrom": [
                "Give a UTC offset (e.g. 2026-02-10T10:15:00Z); a time without one is ambiguous."
            ]
        }
        assert not Vehicle.objects.exists()

    def test_invalid_and_missing_ids_are_a_400_naming_the_fields(self, staff_client):
        response = staff_client.post(
            "/v1/fleet/mappings", {"vehicleId": "V 1/x", "validFrom": "yesterday"}
        )

        assert response.status_code == 400
        assert response.json() == {
            "vehicleId": ["A device id is 1–64 characters of A–Z a–z 0–9 _ - . :."],
            "meterId": ["This field is required."],
            "validFrom": [
                "Datetime has wrong format. Use one of these formats instead: "
                "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
            ],
        }
        assert not Meter.objects.exists()
