from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from analytics.tests.conftest import NOW
from fleet.services import meter_assign
from fleet.tests.factories import MeterFactory, VehicleFactory
from telemetry.tests.factories import ingest, meter_payload, vehicle_payload

T = datetime(2026, 2, 10, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def at(hour: int, minute: int = 0) -> datetime:
    return T + timedelta(hours=hour, minutes=minute)


def assign(vehicle_id: str, meter_id: str, valid_from: datetime) -> None:
    meter_assign(
        vehicle=VehicleFactory(vehicle_id=vehicle_id),
        meter=MeterFactory(meter_id=meter_id),
        valid_from=valid_from,
    )


def charge(vehicle_id: str, meter_id: str, *, start: datetime, minutes: int, dc: float) -> None:
    """`minutes` readings of 1 kWh AC and `dc` kWh DC (battery at 30 + i % 3 °C)."""
    payloads = []
    for i in range(minutes):
        moment = start + timedelta(minutes=i)
        payloads.append(meter_payload(meter_id, at=moment, kwh=1.0))
        payloads.append(vehicle_payload(vehicle_id, at=moment, kwh=dc, temp=30 + i % 3))
    ingest(payloads, now=NOW)


@pytest.fixture
def charged(clock):
    """V-1 on M-1: ten minutes from 10:00 at 80 %."""
    assign("V-1", "M-1", at(0))
    charge("V-1", "M-1", start=at(10), minutes=10, dc=0.8)


class TestVehiclePerformanceApi:
    def test_the_default_window_is_the_last_24_hours(self, analyst_client, charged):
        response = analyst_client.get("/v1/analytics/performance/V-1")

        assert response.status_code == 200
        assert response.json() == {
            "vehicleId": "V-1",
            "from": "2026-02-09T12:30:00Z",
            "to": "2026-02-10T12:30:00Z",
            "meterIds": ["M-1"],
            "totalAcConsumedKwh": 10.0,
            "totalDcDeliveredKwh": 8.0,
            "efficiencyPct": 80.0,
            "avgBatteryTempC": 30.9,
            "readings": {"vehicle": 10, "meter": 10},
            "status": "FAULT_DETECTED",
        }

    def test_hours_sets_a_window_ending_now(self, analyst_client, charged):
        response = analyst_client.get("/v1/analytics/performance/V-1", {"hours": "2"})

        body = response.json()
        assert (body["from"], body["to"], body["status"]) == (
            "2026-02-10T10:30:00Z",
            "2026-02-10T12:30:00Z",
            "INSUFFICIENT_DATA",
        )
        assert (body["totalAcConsumedKwh"], body["efficiencyPct"], body["readings"]) == (
            0.0,
            None,
            {"vehicle": 0, "meter": 0},
        )

    def test_from_and_to_with_an_offset_are_read_in_utc(self, analyst_client, charged):
        response = analyst_client.get(
            "/v1/analytics/performance/V-1",
            {"from": "2026-02-10T11:05:00+01:00", "to": "2026-02-10T10:07:00Z"},
        )

        body = response.json()
        assert (body["from"], body["to"], body["readings"]) == (
            "2026-02-10T10:05:00Z",
            "2026-02-10T10:07:00Z",
            {"vehicle": 2, "meter": 2},
        )

    def test_a_lower_threshold_makes_the_vehicle_ok(self, analyst_client, charged):
        response = analyst_client.get("/v1/analytics/performance/V-1", {"threshold": "75"})

        assert response.json()["status"] == "OK"

    @pytest.mark.parametrize("threshold", ["0.85", "1", "0"])
    def test_a_ratio_threshold_is_refused_as_not_a_percentage(
        self, analyst_client, charged, threshold
    ):
        response = analyst_client.get("/v1/analytics/performance/V-1", {"threshold": threshold})

        assert response.status_code == 400
        assert response.json() == {
            "threshold": [
                f"The threshold is a percentage (e.g. 85 for 85 %), not a ratio; got {threshold}."
            ]
        }

    def test_an_unknown_vehicle_is_a_404(self, analyst_client, charged):
        response = analyst_client.get("/v1/analytics/performance/V-404")

        assert (response.status_code, response.json()) == (404, {"detail": "No vehicle 'V-404'."})

    def test_no_credentials_is_a_401(self, api_client, charged):
        response = api_client.get("/v1/analytics/performance/V-1")

        assert (response.status_code, response.json()) == (
            401,
            {"detail": "Authentication credentials were not provided."},
        )

    def test_a_drf_token_authenticates(self, analyst_user, charged):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=analyst_user)}")

        response = client.get("/v1/analytics/performance/V-1")

        assert response.status_code == 200


@pytest.fixture
def fleet(clock):
    """V-1 at 80 %, V-2 at 60 %, V-3 at 95 %, V-4 without a meter (0.9 kWh DC)."""
    for n, share in ((1, 0.8), (2, 0.6), (3, 0.95)):
        assign(f"V-{n}", f"M-{n}", at(0))
        charge(f"V-{n}", f"M-{n}", start=at(10), minutes=10, dc=share)
    ingest([vehicle_payload("V-4", at=at(11))], now=NOW)


class TestFleetInefficientApi:
    def test_the_page_lists_the_vehicles_below_the_threshold_worst_first(
        self, analyst_client, fleet
    ):
        response = analyst_client.get("/v1/analytics/fleet/inefficient", {"limit": "1"})

        assert response.status_code == 200
        assert response.json() == {
            "from": "2026-02-09T13:00:00Z",
            "to": "2026-02-10T12:30:00Z",
            "hours": 24,
            "threshold": 85.0,
            "count": 2,
            "page": 1,
            "limit": 1,
            "next": "http://testserver/v1/analytics/fleet/inefficient?limit=1&page=2",
            "previous": None,
            "results": [
                {
                    "vehicleId": "V-2",
                    "from": "2026-02-09T13:00:00Z",
                    "to": "2026-02-10T12:30:00Z",
                    "meterIds": ["M-2"],
                    "totalAcConsumedKwh": 10.0,
                    "totalDcDeliveredKwh": 6.0,
                    "efficiencyPct": 60.0,
                    "avgBatteryTempC": 30.9,
                    "readings": {"vehicle": 10, "meter": 10},
                    "status": "FAULT_DETECTED",
                }
            ],
        }

    def test_the_next_page_links_back(self, analyst_client, fleet):
        response = analyst_client.get(
            "/v1/analytics/fleet/inefficient", {"limit": "1", "page": "2", "threshold": "85"}
        )

        body = response.json()
        assert [item["vehicleId"] for item in body["results"]] == ["V-1"]
        assert (body["next"], body["previous"]) == (
            None,
            "http://testserver/v1/analytics/fleet/inefficient?limit=1&threshold=85",
        )


class TestFleetSummaryApi:
    def test_the_summary_has_totals_and_counts_by_status(self, analyst_client, fleet):
        response = analyst_client.get("/v1/analytics/fleet/summary", {"hours": "3"})

        assert response.status_code == 200
        assert response.json() == {
            "from": "2026-02-10T10:00:00Z",
            "to": "2026-02-10T12:30:00Z",
            "hours": 3,
            "threshold": 85.0,
            "vehicles": 4,
            "totalAcConsumedKwh": 30.0,
            "totalDcDeliveredKwh": 24.4,
            "efficiencyPct": 81.33,
            "byStatus": {
                "OK": 1,
                "FAULT_DETECTED": 2,
                "ANOMALY": 0,
                "IDLE": 0,
                "INSUFFICIENT_DATA": 1,
            },
        }

    def test_a_bad_threshold_is_a_400(self, analyst_client, fleet):
        response = analyst_client.get("/v1/analytics/fleet/summary", {"threshold": "0.85"})

        assert (response.status_code, list(response.json())) == (400, ["threshold"])


class TestStatusApi:
    @pytest.fixture
    def statuses(self, clock):
        ingest(
            [
                vehicle_payload("V-1", at=at(12, 29), soc=15.0, kwh=0.5, temp=31.0),
                vehicle_payload("V-2", at=at(12, 29), soc=55.0),
                vehicle_payload("V-3", at=at(12, 29), soc=85.0),
                meter_payload("M-1", at=at(12, 29), kwh=0.7, voltage=231.0),
                meter_payload("M-2", at=at(12, 29)),
            ],
            now=NOW,
        )

    def test_a_vehicle_status_is_its_newest_reading(self, analyst_client, statuses):
        response = analyst_client.get("/v1/status/vehicle/V-1")

        assert response.status_code == 200
        assert response.json() == {
            "vehicleId": "V-1",
            "soc": 15.0,
            "kwhDeliveredDc": 0.5,
            "batteryTemp": 31.0,
            "timestamp": "2026-02-10T12:29:00Z",
            "receivedAt": "2026-02-10T12:30:00Z",
            "stale": False,
        }

    def test_a_meter_status_is_its_newest_reading(self, analyst_client, statuses):
        response = analyst_client.get("/v1/status/meter/M-1")

        assert response.json() == {
            "meterId": "M-1",
            "kwhConsumedAc": 0.7,
            "voltage": 231.0,
            "timestamp": "2026-02-10T12:29:00Z",
            "receivedAt": "2026-02-10T12:30:00Z",
            "stale": False,
        }

    @pytest.mark.parametrize(("seconds", "stale"), [(300, False), (301, True)])
    def test_a_device_silent_longer_than_the_setting_is_stale(
        self, analyst_client, statuses, clock, seconds, stale
    ):
        clock.shift(timedelta(seconds=seconds))

        vehicle = analyst_client.get("/v1/status/vehicle/V-1").json()
        meter = analyst_client.get("/v1/status/meter/M-1").json()

        assert (vehicle["stale"], meter["stale"]) == (stale, stale)

    def test_an_unknown_device_is_a_404(self, analyst_client, statuses):
        response = analyst_client.get("/v1/status/vehicle/V-404")

        assert (response.status_code, response.json()) == (
            404,
            {"detail": "No live status for vehicle 'V-404': unknown, or no reading yet."},
        )

    def test_a_device_without_a_reading_is_a_404(self, analyst_client, statuses):
        MeterFactory(meter_id="M-NEW")

        assert analyst_client.get("/v1/status/meter/M-NEW").status_code == 404

    @pytest.mark.parametrize(
        ("query", "vehicles"),
        [
            ({}, ["V-1", "V-2", "V-3"]),
            ({"socLt": "20"}, ["V-1"]),
            ({"socGt": "50"}, ["V-2", "V-3"]),
            ({"socGt": "20", "socLt": "60"}, ["V-2"]),
            ({"vehicleId": "V-3,V-1"}, ["V-1", "V-3"]),
            ({"stale": "true"}, []),
            ({"stale": "false"}, ["V-1", "V-2", "V-3"]),
        ],
    )
    def test_the_vehicle_list_filters(self, analyst_client, statuses, query, vehicles):
        response = analyst_client.get("/v1/status/vehicles", query)

        assert [item["vehicleId"] for item in response.json()["results"]] == vehicles

    def test_the_stale_filter_follows_the_clock(self, analyst_client, statuses, clock):
        ingest([vehicle_payload("V-2", at=at(12, 35))], now=at(12, 40))  # received at 12:30
        clock.shift(timedelta(minutes=6))
        ingest([vehicle_payload("V-3", at=at(12, 36))], now=at(12, 40))  # received at 12:36

        stale = analyst_client.get("/v1/status/vehicles", {"stale": "true"}).json()
        fresh = analyst_client.get("/v1/status/vehicles", {"stale": "false"}).json()

        assert [item["vehicleId"] for item in stale["results"]] == ["V-1", "V-2"]
        assert [item["vehicleId"] for item in fresh["results"]] == ["V-3"]

    def test_the_list_pages_with_a_cursor_and_no_count(self, analyst_client, statuses):
        first = analyst_client.get("/v1/status/vehicles", {"limit": "2"}).json()
        second = analyst_client.get(first["next"]).json()

        assert list(first) == ["next", "previous", "results"]
        assert [item["vehicleId"] for item in first["results"]] == ["V-1", "V-2"]
        assert [item["vehicleId"] for item in second["results"]] == ["V-3"]
        assert second["next"] is None

    def test_the_meter_list_filters_by_id(self, analyst_client, statuses):
        response = analyst_client.get("/v1/status/meters", {"meterId": "M-2"})

        assert [item["meterId"] for item in response.json()["results"]] == ["M-2"]

    @pytest.mark.parametrize(
        ("query", "parameter"), [({"socLt": "low"}, "socLt"), ({"stale": "maybe"}, "stale")]
    )
    def test_a_bad_filter_is_a_400_naming_it(self, analyst_client, statuses, query, parameter):
        response = analyst_client.get("/v1/status/vehicles", query)

        assert (response.status_code, list(response.json())) == (400, [parameter])


class TestHistoryApi:
    @pytest.fixture
    def history(self, clock):
        ingest(  # out of order, with another vehicle in between
            [
                vehicle_payload("V-1", at=at(11, 2), soc=52.0),
                vehicle_payload("V-1", at=at(11, 0), soc=50.0),
                vehicle_payload("V-2", at=at(11, 1), soc=10.0),
                vehicle_payload("V-1", at=at(11, 1), soc=51.0),
                vehicle_payload("V-1", at=at(9, 0), soc=40.0),
                meter_payload("M-1", at=at(11, 0), kwh=0.3, voltage=229.5),
            ],
            now=NOW,
        )

    def test_readings_come_oldest_first_in_the_wire_shape(self, analyst_client, history):
        response = analyst_client.get(
            "/v1/history/vehicle/V-1",
            {"from": "2026-02-10T10:00:00Z", "to": "2026-02-10T12:00:00Z"},
        )

        assert response.status_code == 200
        assert response.json()["results"] == [
            {
                "vehicleId": "V-1",
                "soc": soc,
                "kwhDeliveredDc": 0.9,
                "batteryTemp": 30.0,
                "timestamp": f"2026-02-10T11:0{minute}:00Z",
            }
            for minute, soc in ((0, 50.0), (1, 51.0), (2, 52.0))
        ]

    def test_the_window_is_half_open(self, analyst_client, history):
        response = analyst_client.get(
            "/v1/history/vehicle/V-1",
            {"from": "2026-02-10T11:00:00Z", "to": "2026-02-10T11:02:00Z"},
        )

        timestamps = [item["timestamp"] for item in response.json()["results"]]
        assert timestamps == ["2026-02-10T11:00:00Z", "2026-02-10T11:01:00Z"]

    def test_the_default_window_is_the_last_24_hours(self, analyst_client, history):
        ingest([vehicle_payload("V-1", at=at(-13))], now=NOW)  # 25 h 30 min ago

        response = analyst_client.get("/v1/history/vehicle/V-1")

        assert len(response.json()["results"]) == 4

    def test_the_cursor_walks_the_pages_in_order(self, analyst_client, history):
        first = analyst_client.get("/v1/history/vehicle/V-1", {"limit": "3"}).json()
        second = analyst_client.get(first["next"]).json()

        assert [item["soc"] for item in first["results"]] == [40.0, 50.0, 51.0]
        assert [item["soc"] for item in second["results"]] == [52.0]
        assert second["next"] is None

    def test_meter_readings_come_in_the_wire_shape(self, analyst_client, history):
        response = analyst_client.get("/v1/history/meter/M-1")

        assert response.json()["results"] == [
            {
                "meterId": "M-1",
                "kwhConsumedAc": 0.3,
                "voltage": 229.5,
                "timestamp": "2026-02-10T11:00:00Z",
            }
        ]

    @pytest.mark.parametrize(
        ("query", "parameter"),
        [
            ({"from": "2026-02-10T10:00:00", "to": "2026-02-10T11:00:00Z"}, "from"),
            ({"from": "2026-02-10T10:00:00Z"}, "to"),
            ({"hours": "0"}, "hours"),
        ],
    )
    def test_a_bad_window_is_a_400_naming_it(self, analyst_client, history, query, parameter):
        response = analyst_client.get("/v1/history/vehicle/V-1", query)

        assert (response.status_code, list(response.json())) == (400, [parameter])

    @pytest.mark.parametrize("url", ["/v1/history/vehicle/V-404", "/v1/history/meter/M-404"])
    def test_an_unknown_device_is_a_404(self, analyst_client, history, url):
        assert analyst_client.get(url).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/v1/analytics/fleet/inefficient",
        "/v1/analytics/fleet/summary",
        "/v1/status/vehicles",
        "/v1/status/meters",
        "/v1/status/vehicle/V-1",
        "/v1/history/vehicle/V-1",
    ],
)
def test_no_credentials_is_a_401(api_client, fleet, url):
    assert api_client.get(url).status_code == 401


PERFORMANCE_URL, FLEET_LIST_URL = "/v1/analytics/performance/V-1", "/v1/analytics/fleet/inefficient"


@pytest.mark.parametrize(
    ("url", "query", "parameter"),
    [
        *(
            (PERFORMANCE_URL, query, parameter)
            for query, parameter in [
                ({"hours": "abc"}, "hours"),
                ({"hours": "0"}, "hours"),
                ({"hours": "-3"}, "hours"),
                ({"hours": str(31 * 24 + 1)}, "hours"),
                (
                    {"hours": "2", "from": "2026-02-10T10:00:00Z", "to": "2026-02-10T11:00:00Z"},
                    "hours",
                ),
                ({"from": "2026-02-10T11:00:00Z", "to": "2026-02-10T10:00:00Z"}, "from"),
                ({"from": "2026-02-10T10:00:00Z", "to": "2026-02-10T10:00:00Z"}, "from"),
                ({"from": "2026-02-10T10:00:00", "to": "2026-02-10T11:00:00Z"}, "from"),
                ({"from": "2026-02-10T10:00:00Z", "to": "2026-02-10T11:00:00"}, "to"),
                ({"from": "yesterday", "to": "2026-02-10T11:00:00Z"}, "from"),
                ({"from": "2026-02-10T10:00:00Z"}, "to"),
                ({"to": "2026-02-10T10:00:00Z"}, "from"),
                ({"from": "2026-01-01T00:00:00Z", "to": "2026-02-10T00:00:00Z"}, "to"),
                ({"threshold": "abc"}, "threshold"),
                ({"threshold": "NaN"}, "threshold"),
                ({"threshold": "150"}, "threshold"),
            ]
        ),
        *(
            (FLEET_LIST_URL, query, parameter)
            for query, parameter in [
                ({"hours": "abc"}, "hours"),
                ({"hours": "0"}, "hours"),
                ({"threshold": "0.85"}, "threshold"),
                ({"page": "0"}, "page"),
                ({"page": "x"}, "page"),
                ({"limit": "501"}, "limit"),
            ]
        ),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(analyst_client, charged, url, query, parameter):
    response = analyst_client.get(url, query)

    assert response.status_code == 400
    assert list(response.json()) == [parameter]
