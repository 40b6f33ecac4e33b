"""The series, attribution and CSV endpoints over HTTP; IDLE in the fleet answers."""

import csv
import io
from datetime import timedelta

import pytest
from django.http import StreamingHttpResponse

from analytics import exports
from analytics.tests.conftest import NOW
from analytics.tests.test_api import assign, at, charge
from telemetry.tests.factories import every_minute, ingest, meter_payload, vehicle_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(clock):
    """V-LOW on M-1 at 80 %, V-OK on M-2 at 90 %, V-PARKED on M-3 (standby draw, no DC)."""
    assign("V-LOW", "M-1", at(0))
    assign("V-OK", "M-2", at(0))
    assign("V-PARKED", "M-3", at(0))
    charge("V-LOW", "M-1", start=at(10), minutes=10, dc=0.8)
    charge("V-OK", "M-2", start=at(10), minutes=10, dc=0.9)
    ingest(
        [
            meter_payload("M-3", at=at(11), kwh=0.0016),
            vehicle_payload("V-PARKED", at=at(11), kwh=0),
        ],
        now=NOW,
    )


def read_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.DictReader(io.StringIO(body.decode())))


class TestIdleInTheFleetAnswers:
    def test_a_parked_vehicle_is_counted_idle_and_never_listed(self, analyst_client, fleet):
        listed = analyst_client.get("/v1/analytics/fleet/inefficient").json()
        summary = analyst_client.get("/v1/analytics/fleet/summary").json()

        assert [item["vehicleId"] for item in listed["results"]] == ["V-LOW"]
        assert summary["byStatus"] == {
            "OK": 1,
            "FAULT_DETECTED": 1,
            "ANOMALY": 0,
            "IDLE": 1,
            "INSUFFICIENT_DATA": 0,
        }

    def test_a_lower_minimum_charge_judges_the_parked_vehicle(self, analyst_client, fleet):
        body = analyst_client.get("/v1/analytics/performance/V-PARKED?minChargeKwh=0.001").json()

        assert (body["status"], body["efficiencyPct"]) == ("FAULT_DETECTED", 0.0)

    def test_the_per_vehicle_answer_says_idle_with_no_efficiency(self, analyst_client, fleet):
        body = analyst_client.get("/v1/analytics/performance/V-PARKED").json()

        assert (body["status"], body["efficiencyPct"], body["totalAcConsumedKwh"]) == (
            "IDLE",
            None,
            0.0016,
        )

    @pytest.mark.parametrize(
        "url",
        [
            "/v1/analytics/performance/V-LOW",
            "/v1/analytics/performance/V-LOW/series",
            "/v1/analytics/fleet/inefficient",
            "/v1/analytics/fleet/summary",
            "/v1/analytics/fleet/series",
            "/v1/analytics/fleet/attribution",
        ],
    )
    @pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "1001"])
    def test_a_bad_minimum_charge_is_a_400_naming_it(self, analyst_client, fleet, url, value):
        response = analyst_client.get(url, {"minChargeKwh": value})

        assert response.status_code == 400
        assert list(response.json()) == ["minChargeKwh"]


class TestSeriesApi:
    def test_the_vehicle_series_has_one_item_per_bucket(self, analyst_client, fleet):
        response = analyst_client.get(
            "/v1/analytics/performance/V-LOW/series",
            {"from": "2026-02-10T09:30:00Z", "to": "2026-02-10T11:00:00Z"},
        )

        assert response.status_code == 200
        assert response.json() == {
            "vehicleId": "V-LOW",
            "from": "2026-02-10T09:30:00Z",
            "to": "2026-02-10T11:00:00Z",
            "bucket": "hour",
            "threshold": 85.0,
            "minChargeKwh": 1.0,
            "meterIds": ["M-1"],
            "items": [
                {
                    "start": "2026-02-10T09:30:00Z",
                    "end": "2026-02-10T10:00:00Z",
                    "totalAcConsumedKwh": 0.0,
                    "totalDcDeliveredKwh": 0.0,
                    "efficiencyPct": None,
                    "avgBatteryTempC": None,
                    "status": "INSUFFICIENT_DATA",
                },
                {
                    "start": "2026-02-10T10:00:00Z",
                    "end": "2026-02-10T11:00:00Z",
                    "totalAcConsumedKwh": 10.0,
                    "totalDcDeliveredKwh": 8.0,
                    "efficiencyPct": 80.0,
                    "avgBatteryTempC": 30.9,
                    "status": "FAULT_DETECTED",
                },
            ],
        }

    def test_the_fleet_series_sums_to_the_summary(self, analyst_client, fleet):
        series = analyst_client.get("/v1/analytics/fleet/series?hours=3").json()
        summary = analyst_client.get("/v1/analytics/fleet/summary?hours=3").json()

        assert [item["start"] for item in series["items"]] == [
            "2026-02-10T10:00:00Z",
            "2026-02-10T11:00:00Z",
            "2026-02-10T12:00:00Z",
        ]
        assert series["items"][-1]["end"] == "2026-02-10T12:30:00Z"
        assert sum(i["totalAcConsumedKwh"] for i in series["items"]) == pytest.approx(
            summary["totalAcConsumedKwh"]
        )
        # 10:00: 17 kWh DC of 20 AC for the fleet, 85 %.
        assert [i["status"] for i in series["items"]] == [
            "OK",
            "IDLE",
            "INSUFFICIENT_DATA",
        ]

    @pytest.mark.parametrize(
        "url, query, parameter",
        [
            ("/v1/analytics/performance/V-LOW/series", {"bucket": "week"}, "bucket"),
            ("/v1/analytics/performance/V-LOW/series", {"hours": "0"}, "hours"),
            ("/v1/analytics/performance/V-LOW/series", {"from": "2026-02-10T09:00:00"}, "from"),
            ("/v1/analytics/performance/V-LOW/series", {"threshold": "0.85"}, "threshold"),
            ("/v1/analytics/fleet/series", {"bucket": ""}, "bucket"),
            ("/v1/analytics/fleet/series", {"hours": "x"}, "hours"),
            ("/v1/analytics/fleet/attribution", {"days": "0"}, "days"),
            ("/v1/analytics/fleet/attribution", {"days": "32"}, "days"),
            ("/v1/analytics/fleet/attribution", {"days": "a"}, "days"),
        ],
    )
    def test_a_bad_parameter_is_a_400_naming_it(self, analyst_client, fleet, url, query, parameter):
        response = analyst_client.get(url, query)

        assert response.status_code == 400
        assert list(response.json()) == [parameter]

    def test_an_unknown_vehicle_is_a_404(self, analyst_client, fleet):
        response = analyst_client.get("/v1/analytics/performance/V-404/series")

        assert response.status_code == 404

    @pytest.mark.parametrize(
        "url",
        [
            "/v1/analytics/performance/V-LOW/series",
            "/v1/analytics/fleet/series",
            "/v1/analytics/fleet/attribution",
        ],
    )
    def test_no_credentials_is_a_401(self, api_client, fleet, url):
        assert api_client.get(url).status_code == 401


class TestAttributionApi:
    def test_the_charger_is_named_with_its_evidence(self, analyst_client, clock):
        assign("V-1", "M-C", at(0))
        assign("V-2", "M-C", at(6))
        charge("V-1", "M-C", start=at(2), minutes=30, dc=0.7)
        charge("V-2", "M-C", start=at(7), minutes=30, dc=0.75)

        body = analyst_client.get("/v1/analytics/fleet/attribution?days=1").json()

        assert body == {
            "from": "2026-02-09T13:00:00Z",
            "to": "2026-02-10T12:30:00Z",
            "days": 1,
            "threshold": 85.0,
            "minChargeKwh": 1.0,
            "suspects": [
                {
                    "verdict": "CHARGER_SUSPECTED",
                    "meterId": "M-C",
                    "vehicleId": None,
                    "pairings": [
                        {
                            "vehicleId": vehicle,
                            "meterId": "M-C",
                            "totalAcConsumedKwh": 30.0,
                            "totalDcDeliveredKwh": dc,
                            "efficiencyPct": pct,
                            "readings": {"vehicle": 30, "meter": 30},
                            "status": "FAULT_DETECTED",
                        }
                        for vehicle, dc, pct in (("V-1", 21.0, 70.0), ("V-2", 22.5, 75.0))
                    ],
                }
            ],
        }


class TestCsvExports:
    @pytest.mark.parametrize(
        "query, headers", [({"format": "csv"}, {}), ({}, {"HTTP_ACCEPT": "text/csv"})]
    )
    def test_the_fleet_list_comes_as_csv(self, analyst_client, fleet, query, headers):
        response = analyst_client.get("/v1/analytics/fleet/inefficient", query, **headers)

        assert response.status_code == 200
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert read_csv(response) == [
            {
                "vehicleId": "V-LOW",
                "from": "2026-02-09T13:00:00Z",
                "to": "2026-02-10T12:30:00Z",
                "meterIds": "M-1",
                "totalAcConsumedKwh": "10.0",
                "totalDcDeliveredKwh": "8.0",
                "efficiencyPct": "80.0",
                "avgBatteryTempC": "30.9",
                "readings.vehicle": "10",
                "readings.meter": "10",
                "status": "FAULT_DETECTED",
            }
        ]

    def test_a_series_comes_as_csv(self, analyst_client, fleet):
        response = analyst_client.get("/v1/analytics/fleet/series?hours=2&format=csv")

        rows = read_csv(response)
        assert [row["start"] for row in rows] == ["2026-02-10T11:00:00Z", "2026-02-10T12:00:00Z"]
        assert rows[0] == {
            "start": "2026-02-10T11:00:00Z",
            "end": "2026-02-10T12:00:00Z",
            "totalAcConsumedKwh": "0.0016",
            "totalDcDeliveredKwh": "0.0",
            "efficiencyPct": "",
            "avgBatteryTempC": "30.0",
            "status": "IDLE",
        }

    def test_an_error_stays_json(self, analyst_client, fleet):
        response = analyst_client.get("/v1/analytics/fleet/inefficient?format=csv&hours=0")

        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        assert list(response.json()) == ["hours"]

    def test_history_streams_every_reading_of_the_window_in_chunks(
        self, analyst_client, clock, monkeypatch, django_assert_max_num_queries
    ):
        # 1,050 readings read 100 at a time: 11 keyed chunks, each a bounded query.
        monkeypatch.setattr(exports, "HISTORY_CHUNK_ROWS", 100)
        start = at(0)
        moments = [start + timedelta(seconds=30 * i) for i in range(1050)]
        ingest([vehicle_payload("V-1", at=m, kwh=0.01, soc=50, temp=20) for m in moments], now=NOW)

        response = analyst_client.get(
            "/v1/history/vehicle/V-1",
            {"from": "2026-02-10T00:00:00Z", "to": "2026-02-10T12:00:00Z", "format": "csv"},
        )
        with django_assert_max_num_queries(11 + 1):  # the chunks, plus none left over
            rows = read_csv(response)

        assert isinstance(response, StreamingHttpResponse)
        assert response["Content-Disposition"] == 'attachment; filename="vehicle-V-1.csv"'
        assert len(rows) == 1050
        assert rows[0] == {
            "vehicleId": "V-1",
            "soc": "50.0",
            "kwhDeliveredDc": "0.01",
            "batteryTemp": "20.0",
            "timestamp": "2026-02-10T00:00:00Z",
        }
        assert [row["timestamp"] for row in rows] == sorted({row["timestamp"] for row in rows})

    def test_meter_history_streams_as_csv(self, analyst_client, clock):
        ingest([meter_payload("M-1", at=m, kwh=0.5) for m in every_minute(at(10), 3)], now=NOW)

        response = analyst_client.get("/v1/history/meter/M-1?hours=24", HTTP_ACCEPT="text/csv")

        assert read_csv(response) == [
            {"meterId": "M-1", "kwhConsumedAc": "0.5", "voltage": "230.0", "timestamp": t}
            for t in ("2026-02-10T10:00:00Z", "2026-02-10T10:01:00Z", "2026-02-10T10:02:00Z")
        ]

    def test_an_unknown_device_s_csv_is_a_json_404(self, analyst_client, clock):
        response = analyst_client.get("/v1/history/meter/M-404?format=csv")

        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
