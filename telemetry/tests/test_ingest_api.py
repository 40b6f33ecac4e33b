"""The ingestion table of the contract, row by row, through the HTTP API."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import override_settings

from fleet.models import Meter, Vehicle
from telemetry import models
from telemetry.models import DeviceAPIKey
from telemetry.services import api_key_create
from telemetry.tests.factories import T0, every_minute, meter_payload, vehicle_payload

NOW = T0 + timedelta(hours=1)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fixed_clock")]


@pytest.fixture
def fixed_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def stored_counts() -> dict[str, int]:
    return {
        "meter_history": models.MeterReading.objects.count(),
        "vehicle_history": models.VehicleReading.objects.count(),
        "meter_live": models.MeterStatus.objects.count(),
        "vehicle_live": models.VehicleStatus.objects.count(),
    }


NOTHING = {"meter_history": 0, "vehicle_history": 0, "meter_live": 0, "vehicle_live": 0}


class TestOneReading:
    def test_a_new_meter_reading_is_stored_in_history_and_live_status(self, device_client):
        response = device_client.post("/v1/ingest", meter_payload(kwh=1.25), format="json")

        assert response.status_code == 201
        assert response.json() == {"accepted": 1, "duplicates": 0, "conflicts": 0, "rejected": []}
        reading = models.MeterReading.objects.select_related("device").get()
        assert (reading.device.meter_id, reading.recorded_at, reading.energy_kwh) == (
            "M-1",
            T0,
            1.25,
        )
        live = models.MeterStatus.objects.get()
        assert (live.recorded_at, live.voltage_v, live.received_at) == (T0, 230.0, NOW)

    def test_a_new_vehicle_reading_is_stored_in_history_and_live_status(self, device_client):
        payload = vehicle_payload(kwh=0.5, soc=81.5, temp=36.0)

        response = device_client.post("/v1/ingest", payload, format="json")

        assert response.status_code == 201
        live = models.VehicleStatus.objects.select_related("device").get()
        assert (live.device.vehicle_id, live.soc_pct, live.energy_kwh, live.battery_temp_c) == (
            "V-1",
            81.5,
            0.5,
            36.0,
        )
        assert models.VehicleReading.objects.count() == 1

    def test_a_replayed_reading_is_counted_once(self, device_client):
        device_client.post("/v1/ingest", meter_payload(kwh=2.0), format="json")

        response = device_client.post("/v1/ingest", meter_payload(kwh=2.0), format="json")

        assert response.status_code == 200
        assert response.json() == {"accepted": 0, "duplicates": 1, "conflicts": 0, "rejected": []}
        assert models.MeterReading.objects.count() == 1
        assert list(models.MeterHourly.objects.values_list("energy_kwh", "reading_count")) == [
            (2.0, 1)
        ]

    def test_a_replay_with_other_values_never_changes_the_first(self, device_client):
        device_client.post("/v1/ingest", meter_payload(kwh=2.0), format="json")

        device_client.post("/v1/ingest", meter_payload(kwh=9.0), format="json")

        assert list(models.MeterReading.objects.values_list("energy_kwh", flat=True)) == [2.0]
        assert models.MeterStatus.objects.get().energy_kwh == 2.0

    def test_an_invalid_reading_is_a_400_with_field_errors_and_stores_nothing(self, device_client):
        payload = meter_payload() | {"voltage": 2500}

        response = device_client.post("/v1/ingest", payload, format="json")

        assert response.status_code == 400
        assert response.json() == {
            "accepted": 0,
            "duplicates": 0,
            "conflicts": 0,
            "rejected": [{"index": 0, "errors": {"voltage": ["Expected `float` <= 2000.0"]}}],
        }
        assert stored_counts() == NOTHING
        assert not Meter.objects.exists()

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"timestamp": "2026-02-10T10:15:00"}, "timestamp"),
            ({"timestamp": "yesterday"}, "timestamp"),
            ({"kwhConsumedAc": "1.5"}, "kwhConsumedAc"),
            ({"kwhConsumedAc": True}, "kwhConsumedAc"),
            ({"kwhConsumedAc": -0.1}, "kwhConsumedAc"),
            ({"voltage": -1}, "voltage"),
            ({"meterId": "M 1"}, "meterId"),
            ({"meterId": "M" * 65}, "meterId"),
            ({"meterId": ""}, "meterId"),
            ({"type": "vehicle"}, "type"),
            ({"type": "boiler"}, "type"),
        ],
    )
    def test_each_bound_of_a_meter_reading_is_enforced(self, device_client, change, field):
        response = device_client.post("/v1/ingest", meter_payload() | change, format="json")

        assert response.status_code == 400
        assert list(response.json()["rejected"][0]["errors"]) == [field]
        assert stored_counts() == NOTHING

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"soc": 100.5}, "soc"),
            ({"soc": -1}, "soc"),
            ({"batteryTemp": -61}, "batteryTemp"),
            ({"batteryTemp": 151}, "batteryTemp"),
            ({"kwhDeliveredDc": None}, "kwhDeliveredDc"),
        ],
    )
    def test_each_bound_of_a_vehicle_reading_is_enforced(self, device_client, change, field):
        response = device_client.post("/v1/ingest", vehicle_payload() | change, format="json")

        assert response.status_code == 400
        assert list(response.json()["rejected"][0]["errors"]) == [field]

    def test_a_missing_field_is_named(self, device_client):
        payload = meter_payload()
        del payload["voltage"]

        response = device_client.post("/v1/ingest", payload, format="json")

        assert response.json()["rejected"] == [
            {"index": 0, "errors": {"voltage": ["This field is required."]}}
        ]

    def test_a_timestamp_more_than_five_minutes_ahead_is_rejected(self, device_client):
        ahead = device_client.post(
            "/v1/ingest", meter_payload(at=NOW + timedelta(minutes=6)), format="json"
        )
        within = device_client.post(
            "/v1/ingest", meter_payload(at=NOW + timedelta(minutes=4)), format="json"
        )

        assert ahead.status_code == 400
        assert list(ahead.json()["rejected"][0]["errors"]) == ["timestamp"]
        assert within.status_code == 201

    def test_a_timestamp_with_an_offset_is_stored_in_utc(self, device_client):
        payload = meter_payload() | {"timestamp": "2026-02-10T15:30:00+05:30"}

        device_client.post("/v1/ingest", payload, format="json")

        assert models.MeterReading.objects.get().recorded_at == T0

    def test_unknown_extra_fields_are_ignored(self, device_client):
        payload = meter_payload() | {"firmware": "1.2.3", "type": "meter"}

        response = device_client.post("/v1/ingest", payload, format="json")

        assert response.status_code == 201

    @pytest.mark.parametrize(
        "body",
        [
            b'{"meterId":"M-1","kwhConsumedAc":NaN,"voltage":230,"timestamp":"2026-02-10T10:00:00Z"}',
            b'{"meterId":"M-1","kwhConsumedAc":Infinity,"voltage":230,"timestamp":"2026-02-10T10:00:00Z"}',
            b'{"meterId":"M-1","kwhConsumedAc":1e999,"voltage":230,"timestamp":"2026-02-10T10:00:00Z"}',
            b'{"meterId": "M-1", ',
            b"",
            b'"just a string"',
        ],
    )
    def test_malformed_json_and_non_finite_numbers_are_a_400(self, device_client, body):
        response = device_client.post("/v1/ingest", body, content_type="application/json")

        assert response.status_code == 400
        assert response.json()["accepted"] == 0
        assert response.json()["detail"]
        assert stored_counts() == NOTHING

    def test_a_reading_of_neither_shape_says_what_it_needs(self, device_client):
        response = device_client.post("/v1/ingest", {"kwh": 1}, format="json")

        assert response.json()["rejected"] == [
            {
                "index": 0,
                "errors": {
                    "nonFieldErrors": ["A reading needs meterId (meter) or vehicleId (vehicle)."]
                },
            }
        ]


class TestBatches:
    def test_an_array_of_valid_readings_is_stored_whole(self, device_client):
        payloads = [meter_payload(at=t) for t in every_minute(T0, 3)] + [vehicle_payload()]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 201
        assert response.json() == {"accepted": 4, "duplicates": 0, "conflicts": 0, "rejected": []}
        assert stored_counts() == {
            "meter_history": 3,
            "vehicle_history": 1,
            "meter_live": 1,
            "vehicle_live": 1,
        }

    def test_the_readings_object_form_of_seed_003_is_accepted(self, device_client):
        payloads = {"readings": [meter_payload(), vehicle_payload()]}

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 201
        assert response.json()["accepted"] == 2

    def test_a_batch_with_bad_items_stores_exactly_the_good_ones(self, device_client):
        payloads = [
            meter_payload("M-1"),
            meter_payload("M-2") | {"voltage": "230"},
            vehicle_payload("V-1"),
            {"vehicleId": "V-2"},
            7,
        ]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 207
        assert response.json() == {
            "accepted": 2,
            "duplicates": 0,
            "conflicts": 0,
            "rejected": [
                {"index": 1, "errors": {"voltage": ["Expected `float`, got `str`"]}},
                {
                    "index": 3,
                    "errors": {
                        "soc": ["This field is required."],
                        "kwhDeliveredDc": ["This field is required."],
                        "batteryTemp": ["This field is required."],
                        "timestamp": ["This field is required."],
                    },
                },
                {"index": 4, "errors": {"nonFieldErrors": ["Expected a JSON object."]}},
            ],
        }
        assert set(Meter.objects.values_list("meter_id", flat=True)) == {"M-1"}
        assert set(Vehicle.objects.values_list("vehicle_id", flat=True)) == {"V-1"}

    def test_a_batch_with_no_valid_item_is_a_400_and_stores_nothing(self, device_client):
        payloads = [meter_payload() | {"voltage": -5}, {"vehicleId": "V-1"}]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 400
        assert [item["index"] for item in response.json()["rejected"]] == [0, 1]
        assert stored_counts() == NOTHING

    def test_an_empty_batch_is_a_400(self, device_client):
        response = device_client.post("/v1/ingest", [], format="json")

        assert response.status_code == 400
        assert response.json() == {
            "accepted": 0,
            "duplicates": 0,
            "conflicts": 0,
            "rejected": [],
            "detail": "The batch is empty.",
        }

    @override_settings(TELEMETRY_MAX_BATCH=3)
    def test_a_batch_over_the_limit_is_a_413_and_stores_nothing(self, device_client):
        payloads = [meter_payload(at=t) for t in every_minute(T0, 4)]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 413
        assert response.json()["detail"] == "A batch holds at most 3 readings; this one has 4."
        assert stored_counts() == NOTHING

    @override_settings(TELEMETRY_MAX_BODY_BYTES=2048)
    def test_a_body_over_the_size_limit_is_a_413_and_stores_nothing(self, device_client):
        payloads = [meter_payload(at=t) for t in every_minute(T0, 40)]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 413
        assert "2048 bytes" in response.json()["detail"]
        assert stored_counts() == NOTHING

    def test_a_reading_repeated_inside_one_batch_is_stored_once(self, device_client):
        payloads = [meter_payload(kwh=1.0), meter_payload(kwh=1.0), meter_payload(kwh=5.0)]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 201
        assert response.json() == {"accepted": 1, "duplicates": 2, "conflicts": 1, "rejected": []}
        assert list(models.MeterHourly.objects.values_list("energy_kwh", "reading_count")) == [
            (1.0, 1)
        ]

    def test_a_replayed_batch_is_all_duplicates(self, device_client):
        payloads = [meter_payload(at=t) for t in every_minute(T0, 5)]
        device_client.post("/v1/ingest", payloads, format="json")

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 200
        assert response.json() == {"accepted": 0, "duplicates": 5, "conflicts": 0, "rejected": []}
        assert models.MeterHourly.objects.get().reading_count == 5

    def test_a_batch_of_1000_costs_a_constant_number_of_queries(
        self, device_client, django_assert_max_num_queries
    ):
        meters = [
            meter_payload(f"M-{i % 50}", at=T0 + timedelta(minutes=i // 50)) for i in range(500)
        ]
        vehicles = [
            vehicle_payload(f"V-{i % 50}", at=T0 + timedelta(minutes=i // 50)) for i in range(500)
        ]
        device_client.post("/v1/ingest", meters[:50] + vehicles[:50], format="json")  # registers

        # key lookup, 2 device lookups, savepoints of the test transaction, and the store
        # statements: one per stream on PostgreSQL, three per stream elsewhere (no CTE writes).
        limit = 8 if connection.vendor == "postgresql" else 12
        with django_assert_max_num_queries(limit):
            response = device_client.post("/v1/ingest", meters + vehicles, format="json")

        assert response.json() == {
            "accepted": 900,
            "duplicates": 100,
            "conflicts": 0,
            "rejected": [],
        }


class TestTypedRoutes:
    def test_the_meter_route_takes_meter_readings_one_or_many(self, device_client):
        one = device_client.post("/v1/ingest/meter", meter_payload("M-1"), format="json")
        many = device_client.post("/v1/ingest/meter", [meter_payload("M-2")], format="json")

        assert (one.status_code, many.status_code) == (201, 201)

    def test_the_meter_route_rejects_a_vehicle_reading(self, device_client):
        response = device_client.post(
            "/v1/ingest/meter", [meter_payload(), vehicle_payload()], format="json"
        )

        assert response.status_code == 207
        assert response.json()["rejected"] == [
            {
                "index": 1,
                "errors": {
                    "nonFieldErrors": [
                        "This route takes meter readings; this is a vehicle reading."
                    ]
                },
            }
        ]

    def test_the_vehicle_batch_route_needs_a_batch(self, device_client):
        one = device_client.post("/v1/ingest/vehicle/batch", vehicle_payload(), format="json")
        many = device_client.post(
            "/v1/ingest/vehicle/batch", {"readings": [vehicle_payload()]}, format="json"
        )

        assert one.status_code == 400
        assert one.json()["detail"] == ('Expected a JSON array of readings or {"readings": [...]}.')
        assert many.status_code == 201

    def test_a_meter_reading_may_omit_the_id_only_on_no_route(self, device_client):
        payload = meter_payload()
        del payload["meterId"]

        response = device_client.post("/v1/ingest/meter/batch", [payload], format="json")

        assert response.json()["rejected"] == [
            {"index": 0, "errors": {"meterId": ["This field is required."]}}
        ]

    @pytest.mark.parametrize("alias", ["/v1/telemetry/ingest", "/v1/telemetry"])
    def test_the_reference_design_aliases_behave_like_ingest(self, device_client, alias):
        payloads = [meter_payload() | {"type": "meter"}, vehicle_payload() | {"type": "vehicle"}]

        first = device_client.post(alias, payloads, format="json")
        replay = device_client.post(alias, payloads[0], format="json")

        assert (first.status_code, first.json()["accepted"]) == (201, 2)
        assert (replay.status_code, replay.json()["duplicates"]) == (200, 1)


class TestDeviceKeys:
    def test_a_request_without_a_key_is_a_401_and_stores_nothing(self, api_client):
        response = api_client.post("/v1/ingest", meter_payload(), format="json")

        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Api-Key"
        assert response.json()["accepted"] == 0
        assert stored_counts() == NOTHING

    def test_an_unknown_key_is_a_401(self, api_client, device_key):
        api_client.credentials(HTTP_AUTHORIZATION="Api-Key abcdefgh.not-the-secret")

        response = api_client.post("/v1/ingest", meter_payload(), format="json")

        assert response.status_code == 401
        assert response.json()["detail"] == "Unknown or revoked API key."

    def test_a_revoked_key_is_refused_and_stores_nothing(self, api_client):
        api_key, key = api_key_create(name="old gateway")
        DeviceAPIKey.objects.filter(pk=api_key.pk).update(revoked=True)
        api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

        response = api_client.post("/v1/ingest", meter_payload(), format="json")

        assert response.status_code == 401
        assert stored_counts() == NOTHING

    def test_a_key_revoked_after_use_stops_working_within_the_cache_delay(self, api_client):
        api_key, key = api_key_create(name="stolen gateway")
        api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        api_client.post("/v1/ingest", meter_payload(), format="json")
        DeviceAPIKey.objects.filter(pk=api_key.pk).update(revoked=True)

        with time_machine.travel(NOW + timedelta(seconds=6), tick=False):
            response = api_client.post(
                "/v1/ingest", meter_payload(at=T0 + timedelta(minutes=1)), format="json"
            )

        assert response.status_code == 401
        assert models.MeterReading.objects.count() == 1

    @override_settings(API_AUTH_CACHE_SECONDS=0)
    def test_without_the_cache_a_revoked_key_stops_working_at_once(self, api_client):
        api_key, key = api_key_create(name="stolen gateway")
        api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        api_client.post("/v1/ingest", meter_payload(), format="json")
        DeviceAPIKey.objects.filter(pk=api_key.pk).update(revoked=True)

        response = api_client.post(
            "/v1/ingest", meter_payload(at=T0 + timedelta(minutes=1)), format="json"
        )

        assert response.status_code == 401

    def test_an_expired_key_is_refused(self, api_client):
        api_key, key = api_key_create(name="temporary")
        DeviceAPIKey.objects.filter(pk=api_key.pk).update(expiry_date=NOW - timedelta(seconds=1))
        api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

        response = api_client.post("/v1/ingest", meter_payload(), format="json")

        assert (response.status_code, response.json()["detail"]) == (
            401,
            "This API key has expired.",
        )

    def test_a_scoped_key_writes_its_own_device(self, api_client):
        _, key = api_key_create(name="vehicle V-1", device_id="V-1")
        api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

        response = api_client.post("/v1/ingest", vehicle_payload("V-1"), format="json")

        assert response.status_code == 201

    def test_a_scoped_key_cannot_write_another_device_and_nothing_is_stored(self, api_client):
        _, key = api_key_create(name="vehicle V-1", device_id="V-1")
        api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        payloads = [vehicle_payload("V-1"), vehicle_payload("V-2")]

        response = api_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 403
        assert response.json() == {
            "accepted": 0,
            "duplicates": 0,
            "conflicts": 0,
            "rejected": [],
            "detail": (
                "This key may only write readings of device 'V-1'; the request also carries "
                "V-2. Nothing was stored."
            ),
        }
        assert stored_counts() == NOTHING

    def test_use_of_a_key_is_recorded(self, device_client):
        device_client.post("/v1/ingest", meter_payload(), format="json")

        assert DeviceAPIKey.objects.get().last_used_at == NOW

    def test_a_person_session_is_not_a_device_key(self, api_client, staff_user):
        api_client.force_login(staff_user)

        response = api_client.post("/v1/ingest", meter_payload(), format="json")

        assert response.status_code == 401


class TestLiveStatusMovesForwardOnly:
    def test_an_older_reading_is_kept_in_history_but_does_not_overwrite_live(self, device_client):
        device_client.post("/v1/ingest", meter_payload(at=T0 + timedelta(minutes=5)), format="json")

        response = device_client.post(
            "/v1/ingest", meter_payload(at=T0, voltage=199.0), format="json"
        )

        assert response.status_code == 201
        assert models.MeterReading.objects.count() == 2
        live = models.MeterStatus.objects.get()
        assert (live.recorded_at, live.voltage_v) == (T0 + timedelta(minutes=5), 230.0)

    def test_a_newer_reading_moves_live_status(self, device_client):
        device_client.post("/v1/ingest", vehicle_payload(soc=40), format="json")

        device_client.post(
            "/v1/ingest", vehicle_payload(at=T0 + timedelta(minutes=1), soc=41), format="json"
        )

        live = models.VehicleStatus.objects.get()
        assert (live.recorded_at, live.soc_pct) == (T0 + timedelta(minutes=1), 41.0)

    def test_a_batch_moves_live_status_to_its_newest_reading_whatever_the_order(
        self, device_client
    ):
        times = every_minute(T0, 4)
        payloads = [vehicle_payload(at=t, soc=10 + i) for i, t in enumerate(times)]

        device_client.post("/v1/ingest", list(reversed(payloads)), format="json")

        assert models.VehicleStatus.objects.get().soc_pct == 13.0


class TestHourlyRollups:
    def test_rollups_hold_the_sums_of_each_hour(self, device_client):
        payloads = [
            vehicle_payload(at=T0 + timedelta(minutes=m), kwh=0.5, temp=20 + m)
            for m in (0, 30, 59, 60)
        ]

        device_client.post("/v1/ingest", payloads, format="json")

        rows = models.VehicleHourly.objects.order_by("hour").values_list(
            "hour", "energy_kwh", "battery_temp_sum_c", "reading_count"
        )
        assert list(rows) == [
            (T0, 1.5, 20 + 50 + 79, 3),
            (T0 + timedelta(hours=1), 0.5, 80, 1),
        ]

    def test_a_late_reading_into_a_closed_hour_updates_that_hour(self, device_client):
        device_client.post("/v1/ingest", meter_payload(at=T0, kwh=1.0), format="json")
        device_client.post(
            "/v1/ingest", meter_payload(at=T0 + timedelta(hours=1), kwh=1.0), format="json"
        )

        device_client.post(
            "/v1/ingest", meter_payload(at=T0 + timedelta(minutes=45), kwh=2.0), format="json"
        )

        assert models.MeterHourly.objects.get(hour=T0).energy_kwh == 3.0
        assert models.MeterStatus.objects.get().recorded_at == T0 + timedelta(hours=1)


class TestDeviceRegistration:
    def test_a_reading_from_an_unknown_device_registers_it(self, device_client):
        device_client.post(
            "/v1/ingest", [meter_payload("M-9"), vehicle_payload("V-9")], format="json"
        )

        assert Meter.objects.get().meter_id == "M-9"
        assert Vehicle.objects.get().vehicle_id == "V-9"

    @override_settings(TELEMETRY_AUTO_REGISTER=False)
    def test_with_registration_off_an_unknown_device_is_rejected_clearly(self, device_client):
        Meter.objects.create(meter_id="M-1")
        payloads = [meter_payload("M-1"), meter_payload("M-404")]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 207
        assert response.json()["rejected"] == [
            {
                "index": 1,
                "errors": {
                    "meterId": [
                        "Unknown meter 'M-404'; automatic registration is off "
                        "(TELEMETRY_AUTO_REGISTER)."
                    ]
                },
            }
        ]
        assert not Meter.objects.filter(meter_id="M-404").exists()

    @override_settings(TELEMETRY_AUTO_REGISTER=False)
    def test_with_registration_off_a_single_unknown_device_is_a_400(self, device_client):
        response = device_client.post("/v1/ingest", vehicle_payload("V-404"), format="json")

        assert response.status_code == 400
        assert stored_counts() == NOTHING


class TestMetrics:
    def test_metrics_count_readings_by_outcome_for_staff(self, device_client, staff_client):
        device_client.post(
            "/v1/ingest", [meter_payload(), meter_payload(), {"meterId": "x"}], format="json"
        )

        body = staff_client.get("/metrics").content.decode()

        counts = {
            line.split('"')[1]: float(line.split()[-1])
            for line in body.splitlines()
            if line.startswith("telemetry_readings_total{")
        }
        assert counts["accepted"] >= 1 and counts["duplicate"] >= 1 and counts["rejected"] >= 1

    def test_metrics_are_not_public(self, api_client, analyst_client):
        assert api_client.get("/metrics").status_code == 401
        assert analyst_client.get("/metrics").status_code == 403


def test_the_response_of_every_outcome_is_json_with_the_same_keys(device_client):
    bodies = [
        device_client.post("/v1/ingest", meter_payload(), format="json"),
        device_client.post("/v1/ingest", b"[", content_type="application/json"),
        device_client.post("/v1/ingest", [meter_payload(), {}], format="json"),
    ]

    assert [
        set(json.loads(r.content)) >= {"accepted", "duplicates", "conflicts", "rejected"}
        for r in bodies
    ] == [
        True,
        True,
        True,
    ]


def test_readings_keep_microsecond_timestamps(device_client):
    at = datetime(2026, 2, 10, 10, 0, 0, 123456, tzinfo=UTC)

    device_client.post("/v1/ingest", meter_payload(at=at), format="json")
    replay = device_client.post("/v1/ingest", meter_payload(at=at), format="json")

    assert models.MeterReading.objects.get().recorded_at == at
    assert replay.json()["duplicates"] == 1
