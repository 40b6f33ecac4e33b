"""A catalogue of bad input on the read, list, fleet and mapping routes.

Each case asserts the status, a JSON body naming the parameter or field at fault (`detail` for a
404 or a body that is not JSON), and that no table changed.
"""

from urllib.parse import quote

import pytest
from rest_framework.test import APIClient

from fleet.models import Meter, MeterAssignment, Vehicle
from telemetry.models import (
    MeterHourly,
    MeterReading,
    MeterStatus,
    VehicleHourly,
    VehicleReading,
    VehicleStatus,
)

pytestmark = pytest.mark.django_db

TABLES = (
    Vehicle,
    Meter,
    MeterAssignment,
    MeterReading,
    VehicleReading,
    MeterStatus,
    VehicleStatus,
    MeterHourly,
    VehicleHourly,
)
LONG_ID = "V" * 65
NEWLINE = quote("V-1\n")

READS = [
    # status, one device
    ("/v1/status/vehicle/%00", 404, "detail"),
    (f"/v1/status/vehicle/{NEWLINE}", 404, "detail"),
    (f"/v1/status/meter/{LONG_ID}", 404, "detail"),
    ("/v1/status/meter/M%201", 404, "detail"),
    # status lists
    ("/v1/status/vehicles?limit=0", 400, "limit"),
    ("/v1/status/vehicles?limit=-1", 400, "limit"),
    ("/v1/status/vehicles?limit=1e9", 400, "limit"),
    ("/v1/status/vehicles?limit=abc", 400, "limit"),
    ("/v1/status/vehicles?limit=1001", 400, "limit"),
    ("/v1/status/meters?limit=99999999999999999999", 400, "limit"),
    ("/v1/status/vehicles?cursor=garbage", 400, "cursor"),
    ("/v1/status/vehicles?cursor=", 400, "cursor"),
    ("/v1/status/vehicles?cursor=cD0lMDA%3D", 400, "cursor"),  # position "\x00"
    ("/v1/status/vehicles?socLt=abc", 400, "socLt"),
    ("/v1/status/vehicles?socLt=101", 400, "socLt"),
    ("/v1/status/vehicles?socGt=nan", 400, "socGt"),
    ("/v1/status/vehicles?stale=maybe", 400, "stale"),
    ("/v1/status/vehicles?stale=", 400, "stale"),
    (f"/v1/status/vehicles?vehicleId={NEWLINE}", 400, "vehicleId"),
    ("/v1/status/meters?meterId=%00", 400, "meterId"),
    ("/v1/status/meters?pageSize=5", 400, "pageSize"),
    # history
    ("/v1/history/vehicle/V-1?format=", 400, "format"),
    ("/v1/history/meter/M-1?format=xml", 400, "format"),
    ("/v1/analytics/fleet/inefficient?format=", 400, "format"),
    ("/v1/analytics/fleet/series?format=pdf", 400, "format"),
    ("/v1/status/vehicles?format=csv", 400, "format"),
    ("/v1/history/vehicle/V-1?limit=0", 400, "limit"),
    ("/v1/history/vehicle/V-1?limit=5001", 400, "limit"),
    ("/v1/history/meter/M-1?limit=abc", 400, "limit"),
    ("/v1/history/vehicle/V-1?cursor=zz", 400, "cursor"),
    ("/v1/history/vehicle/V-1?cursor=cD1ub3QtYS10aW1l", 400, "cursor"),  # p=not-a-time
    ("/v1/history/meter/M-1?cursor=cD0wMDAxLTAxLTAxIDAwOjAwOjAwKzA1OjAw", 400, "cursor"),
    ("/v1/history/vehicle/V-1?hours=1e400", 400, "hours"),
    ("/v1/history/vehicle/V-1?hours=99999999999999999999", 400, "hours"),
    (
        "/v1/history/vehicle/V-1?from=0001-01-01T00:00:00%2B05:00&to=0001-01-02T00:00:00Z",
        400,
        "from",
    ),
    (
        "/v1/history/meter/M-1?from=9999-12-29T00:00:00Z&to=9999-12-31T23:59:59-05:00",
        400,
        "to",
    ),
    ("/v1/history/vehicle/V-1?from=2026-02-10T00:00:00&to=2026-02-11T00:00:00Z", 400, "from"),
    ("/v1/history/vehicle/V-1?from=2026-02-11T00:00:00Z&to=2026-02-10T00:00:00Z", 400, "from"),
    ("/v1/history/meter/%00", 404, "detail"),
    (f"/v1/history/vehicle/{LONG_ID}?limit=0", 404, "detail"),
    # analytics: per vehicle
    ("/v1/analytics/performance/V-1?hours=0", 400, "hours"),
    ("/v1/analytics/performance/V-1?threshold=0.85", 400, "threshold"),
    ("/v1/analytics/performance/V-1?threshold=inf", 400, "threshold"),
    (
        "/v1/analytics/performance/V-1?hours=24&from=2026-02-10T00:00:00Z&to=2026-02-11T00:00:00Z",
        400,
        "hours",
    ),
    ("/v1/analytics/performance/V-1?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", 400, "to"),
    ("/v1/analytics/performance/V-1?to=9999-12-31T23:59:59-05:00", 400, "to"),
    ("/v1/analytics/performance/%0A", 404, "detail"),
    # analytics: fleet
    ("/v1/analytics/fleet/inefficient?page=0", 400, "page"),
    (f"/v1/analytics/fleet/inefficient?page={10**30}", 400, "page"),
    ("/v1/analytics/fleet/inefficient?limit=501", 400, "limit"),
    ("/v1/analytics/fleet/inefficient?limit=abc", 400, "limit"),
    ("/v1/analytics/fleet/inefficient?hours=-5", 400, "hours"),
    ("/v1/analytics/fleet/inefficient?threshold=abc", 400, "threshold"),
    ("/v1/analytics/fleet/summary?hours=abc", 400, "hours"),
    ("/v1/analytics/fleet/summary?threshold=101", 400, "threshold"),
    # fleet lists and detail
    ("/v1/fleet/vehicles?limit=0", 400, "limit"),
    ("/v1/fleet/vehicles?pageSize=10", 400, "pageSize"),
    ("/v1/fleet/vehicles?cursor=zz", 400, "cursor"),
    ("/v1/fleet/vehicles?hasMeter=maybe", 400, "hasMeter"),
    (f"/v1/fleet/vehicles?vehicleId={NEWLINE}", 400, "vehicleId"),
    ("/v1/fleet/vehicles?vehicleIdPrefix=%00", 400, "vehicleIdPrefix"),
    ("/v1/fleet/meters?hasVehicle=", 400, "hasVehicle"),
    ("/v1/fleet/meters?limit=1001", 400, "limit"),
    ("/v1/fleet/vehicles/%00", 404, "detail"),
    (f"/v1/fleet/vehicles/{NEWLINE}", 404, "detail"),
    (f"/v1/fleet/vehicles/{LONG_ID}", 404, "detail"),
    ("/v1/fleet/no-such-route", 404, "detail"),
]

MAPPINGS = [
    ({"vehicleId": "V-1\n", "meterId": "M-1"}, "vehicleId"),
    ({"vehicleId": "V-1", "meterId": " M-1"}, "meterId"),
    ({"vehicleId": "V-1", "meterId": "M-1", "validFrom": "2026-02-10T10:15:00"}, "validFrom"),
    ({"vehicleId": "V-1", "meterId": "M-1", "validFrom": "0001-01-01T00:00:00+05:00"}, "validFrom"),
    ({"vehicleId": "V-1", "meterId": "M-1", "validFrom": "9999-12-31T23:59:59-05:00"}, "validFrom"),
    ({"vehicleId": "V-1", "meterId": "M-1", "validFrom": 12345}, "validFrom"),
    ({"vehicleId": 123, "meterId": "M-1"}, "vehicleId"),
    ({"vehicleId": ["V-1"], "meterId": "M-1"}, "vehicleId"),
    ({"vehicleId": "V-1", "meterId": None}, "meterId"),
    ({"vehicleId": LONG_ID, "meterId": "M-1"}, "vehicleId"),
    ({"meterId": "M-1"}, "vehicleId"),
    ({}, "meterId"),
    ([{"vehicleId": "V-1", "meterId": "M-1"}], "non_field_errors"),
]


def snapshot() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in TABLES}


@pytest.fixture
def client(staff_user) -> APIClient:
    """A staff user (may read and write mappings); a 5xx comes back as a response, not raised."""
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(staff_user)
    return client


def assert_names(response, status: int, key: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert key in body, body
    messages = body[key] if isinstance(body[key], list) else [body[key]]
    assert messages, body
    assert all(isinstance(message, str) and message for message in messages), body


class TestBadReads:
    @pytest.mark.parametrize(("url", "status", "key"), READS, ids=[case[0] for case in READS])
    def test_is_refused_naming_the_parameter_and_changes_nothing(
        self, client, fleet, url, status, key
    ):
        before = snapshot()

        response = client.get(url)

        assert_names(response, status, key)
        assert snapshot() == before


class TestBadMappings:
    @pytest.mark.parametrize("route", ["/v1/fleet/mappings", "/v1/telemetry/map"])
    @pytest.mark.parametrize(("body", "field"), MAPPINGS, ids=[case[1] for case in MAPPINGS])
    def test_is_a_400_naming_the_field_and_changes_nothing(self, client, fleet, route, body, field):
        before = snapshot()

        response = client.post(route, body, format="json")

        assert_names(response, 400, field)
        assert snapshot() == before

    def test_a_body_that_is_not_json_is_a_400_and_changes_nothing(self, client, fleet):
        before = snapshot()

        response = client.post(
            "/v1/fleet/mappings", b'{"vehicleId": "V-1",', content_type="application/json"
        )

        assert_names(response, 400, "detail")
        assert snapshot() == before

    def test_unknown_devices_are_a_400_when_auto_register_is_off(self, client, fleet, settings):
        settings.TELEMETRY_AUTO_REGISTER = False
        before = snapshot()

        vehicle = client.post("/v1/fleet/mappings", {"vehicleId": "V-9", "meterId": "M-1"})
        meter = client.post("/v1/fleet/mappings", {"vehicleId": "V-1", "meterId": "M-9"})

        assert (vehicle.status_code, vehicle.json()) == (
            400,
            {"vehicleId": ["No vehicle 'V-9' is registered (TELEMETRY_AUTO_REGISTER is off)."]},
        )
        assert (meter.status_code, meter.json()) == (
            400,
            {"meterId": ["No meter 'M-9' is registered (TELEMETRY_AUTO_REGISTER is off)."]},
        )
        assert snapshot() == before

    def test_known_devices_still_map_when_auto_register_is_off(self, client, fleet, settings):
        settings.TELEMETRY_AUTO_REGISTER = False
        Meter.objects.create(meter_id="M-2")

        response = client.post("/v1/fleet/mappings", {"vehicleId": "V-1", "meterId": "M-2"})

        assert response.status_code == 201
        assert response.json()["meterId"] == "M-2"
