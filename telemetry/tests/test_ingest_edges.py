"""Hostile and buggy input on the ingest routes: a catalogue of bad requests, each a clear 4xx in
the ingest shape that changes no table; the bounds, conflicts and every-field-error rules."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.test import override_settings
from prometheus_client import REGISTRY

from fleet.models import Meter
from fleet.services import mapping_create
from telemetry.models import MeterHourly, MeterReading, VehicleReading
from telemetry.partitions import partitions_list
from telemetry.services import _array_literal, api_key_create
from telemetry.tests.factories import T0, every_minute, meter_payload, vehicle_payload
from telemetry.tests.test_ingest_api import NOW, fixed_clock  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fixed_clock")]
SHAPE = {"accepted", "duplicates", "conflicts", "rejected"}


def tables() -> dict:
    """Everything an ingest request may change: history, live, rollups, registry, partitions.

    Every model of the telemetry and fleet apps but the keys (whose last use a request records).
    """
    models = [
        model
        for label in ("telemetry", "fleet")
        for model in apps.get_app_config(label).get_models()
        if model._meta.model_name != "deviceapikey"
    ]
    state = {model.__name__: sorted(model.objects.values_list()) for model in models}
    state["partitions"] = [(p.parent, p.day) for p in partitions_list()]
    return state


def raw(item: dict) -> bytes:
    return json.dumps(item).encode()


def deep(opening: str, closing: str, depth: int) -> bytes:
    return (opening * depth + closing * depth).encode()


M = meter_payload()
V = vehicle_payload()
M_TEXT = raw(M).decode()

# (route, body, expected status, the field named in the rejection, or "detail")
CATALOGUE = [
    # encodings
    ("/v1/ingest", M_TEXT.replace('"M-1"', '"M-\xff1"').encode("latin-1"), 400, "detail"),
    ("/v1/ingest", b"\xff\xfe\x00[", 400, "detail"),
    ("/v1/ingest", M_TEXT.encode("utf-16"), 400, "detail"),
    ("/v1/ingest", b"\xef\xbb\xbf" + raw(M), 400, "detail"),
    ("/v1/ingest", M_TEXT.replace('"M-1"', '"M-\\ud800"').encode(), 400, "detail"),
    ("/v1/ingest", M_TEXT.replace('"M-1"', '"M-1\\u0000"').encode(), 400, "meterId"),
    ("/v1/ingest", M_TEXT.replace('"M-1"', '"M-1\\u00e9"').encode(), 400, "meterId"),
    # nesting
    ("/v1/ingest", deep("[", "]", 20_000), 400, "detail"),
    ("/v1/ingest", ('{"a":' * 20_000 + "1" + "}" * 20_000).encode(), 400, "detail"),
    ("/v1/ingest", b'{"readings":' + deep("[", "]", 20_000) + b"}", 400, "detail"),
    (
        "/v1/ingest",
        raw(M | {"extra": "x"})[:-1] + b',"n":' + deep("[", "]", 20_000) + b"}",
        400,
        "detail",
    ),
    # malformed JSON and shapes of the body
    ("/v1/ingest", raw(M)[:-3], 400, "detail"),
    ("/v1/ingest", M_TEXT.replace("230.0", "NaN").encode(), 400, "detail"),
    ("/v1/ingest", M_TEXT.replace("230.0", "Infinity").encode(), 400, "detail"),
    ("/v1/ingest", M_TEXT.replace("230.0", "1e999").encode(), 400, "detail"),
    ("/v1/ingest", raw(M) + b"x", 400, "detail"),
    ("/v1/ingest", b" \n\t ", 400, "detail"),
    ("/v1/ingest", b'"hello"', 400, "detail"),
    ("/v1/ingest", b"5", 400, "detail"),
    ("/v1/ingest", b"null", 400, "detail"),
    ("/v1/ingest", b"[]", 400, "detail"),
    ("/v1/ingest", b'{"readings": []}', 400, "detail"),
    ("/v1/ingest/meter/batch", raw(M), 400, "detail"),
    ("/v1/ingest", b'["x"]', 400, "nonFieldErrors"),
    ("/v1/ingest", b'{"readings": "x"}', 400, "nonFieldErrors"),
    ("/v1/ingest", b"[[]]", 400, "nonFieldErrors"),
    # types
    ("/v1/ingest", raw(M | {"kwhConsumedAc": "1.0"}), 400, "kwhConsumedAc"),
    ("/v1/ingest", raw(M | {"voltage": True}), 400, "voltage"),
    ("/v1/ingest", raw(V | {"soc": None}), 400, "soc"),
    ("/v1/ingest", raw(V | {"batteryTemp": [30]}), 400, "batteryTemp"),
    ("/v1/ingest", raw(M | {"timestamp": 1770717600}), 400, "timestamp"),
    ("/v1/ingest", raw(M | {"meterId": 1}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"meterId": None}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"type": ["meter"]}), 400, "type"),
    ("/v1/ingest", raw(M | {"type": {"a": 1}}), 400, "type"),
    ("/v1/ingest", raw(M | {"type": "car"}), 400, "type"),
    ("/v1/ingest", raw(M | {"type": "vehicle"}), 400, "type"),
    # bounds
    ("/v1/ingest", raw(M | {"kwhConsumedAc": 100.001}), 400, "kwhConsumedAc"),
    ("/v1/ingest", raw(M | {"kwhConsumedAc": 1e308}), 400, "kwhConsumedAc"),
    ("/v1/ingest", raw(M | {"kwhConsumedAc": -0.5}), 400, "kwhConsumedAc"),
    ("/v1/ingest", M_TEXT.replace("1.0", "1" + "0" * 400).encode(), 400, "kwhConsumedAc"),
    ("/v1/ingest", raw(V | {"kwhDeliveredDc": 1e300}), 400, "kwhDeliveredDc"),
    ("/v1/ingest", raw(M | {"voltage": 2000.5}), 400, "voltage"),
    ("/v1/ingest", raw(M | {"voltage": -1}), 400, "voltage"),
    ("/v1/ingest", raw(V | {"soc": 100.1}), 400, "soc"),
    ("/v1/ingest", raw(V | {"soc": -1}), 400, "soc"),
    ("/v1/ingest", raw(V | {"batteryTemp": -61}), 400, "batteryTemp"),
    ("/v1/ingest", raw(V | {"batteryTemp": 151}), 400, "batteryTemp"),
    # device ids
    ("/v1/ingest", raw(M | {"meterId": "M-1\n"}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"meterId": "M-1 "}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"meterId": " M-1"}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"meterId": ""}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"meterId": "M" * 65}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"meterId": "M/1"}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"meterId": "M,1"}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"meterId": 'M"1'}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"meterId": "M-1\\"}), 400, "meterId"),
    ("/v1/ingest", raw(M | {"meterId": "{M-1}"}), 400, "meterId"),
    ("/v1/ingest", raw(V | {"vehicleId": "\u039c-1"}), 400, "vehicleId"),
    ("/v1/ingest", raw(V | {"vehicleId": "V-1\r\n"}), 400, "vehicleId"),
    # timestamps
    ("/v1/ingest", raw(M | {"timestamp": "2026-02-10T10:00:00"}), 400, "timestamp"),
    ("/v1/ingest", raw(M | {"timestamp": "0001-01-01T00:00:00+01:00"}), 400, "timestamp"),
    ("/v1/ingest", raw(M | {"timestamp": "9999-12-31T23:59:59-01:00"}), 400, "timestamp"),
    ("/v1/ingest", raw(M | {"timestamp": "1950-01-01T00:00:00Z"}), 400, "timestamp"),
    ("/v1/ingest", raw(M | {"timestamp": "2100-01-01T00:00:00Z"}), 400, "timestamp"),
    ("/v1/ingest", raw(M | {"timestamp": "2026-02-30T00:00:00Z"}), 400, "timestamp"),
    ("/v1/ingest", raw(M | {"timestamp": "yesterday"}), 400, "timestamp"),
    ("/v1/ingest", raw(M | {"timestamp": "2026-02-10T10:00:00+25:00"}), 400, "timestamp"),
    # shapes of an item
    ("/v1/ingest", raw(M | {"vehicleId": "V-1"}), 400, "nonFieldErrors"),
    ("/v1/ingest", raw({"voltage": 230}), 400, "nonFieldErrors"),
    ("/v1/ingest/meter", raw(V), 400, "nonFieldErrors"),
    ("/v1/ingest/vehicle/batch", raw([M]), 400, "nonFieldErrors"),
    ("/v1/ingest", raw({k: v for k, v in M.items() if k != "voltage"}), 400, "voltage"),
]


@pytest.mark.parametrize(
    ("route", "body", "status", "field"),
    CATALOGUE,
    ids=[f"{i:02d}-{c[0].rsplit('/', 1)[-1]}-{c[3]}" for i, c in enumerate(CATALOGUE)],
)
def test_bad_input_is_a_4xx_in_the_ingest_shape_naming_the_field_and_changes_nothing(
    device_client, route, body, status, field
):
    before = tables()

    response = device_client.generic("POST", route, body, content_type="application/json")

    assert response.status_code == status, response.content
    data = response.json()
    assert set(data) - {"detail"} == SHAPE
    assert (data["accepted"], data["duplicates"], data["conflicts"]) == (0, 0, 0)
    if field == "detail":
        assert data["detail"] and data["rejected"] == []
    else:
        assert [item["index"] for item in data["rejected"]] == [0]
        assert field in data["rejected"][0]["errors"], data
        assert all(data["rejected"][0]["errors"][field])
    assert tables() == before


class TestRequestLevelRefusals:
    """More of the catalogue: sizes, keys and media types, refused as a whole."""

    @pytest.fixture(autouse=True)
    def unchanged(self):
        before = tables()
        yield
        assert tables() == before

    def assert_refused(self, response, status):
        assert response.status_code == status, response.content
        data = response.json()
        assert set(data) == SHAPE | {"detail"} and data["detail"]
        assert (data["accepted"], data["rejected"]) == (0, [])

    @override_settings(TELEMETRY_MAX_BATCH=3)
    def test_a_batch_over_the_limit(self, device_client):
        payloads = [meter_payload(at=t) for t in every_minute(T0, 4)]
        self.assert_refused(device_client.post("/v1/ingest", payloads, format="json"), 413)

    @override_settings(TELEMETRY_MAX_BODY_BYTES=1024)
    def test_a_body_over_the_size_limit(self, device_client):
        payloads = [meter_payload(at=t) for t in every_minute(T0, 30)]
        self.assert_refused(device_client.post("/v1/ingest", payloads, format="json"), 413)

    def test_a_key_scoped_to_another_device(self, api_client):
        _, key = api_key_create(name="M-2 only", device_id="M-2")
        api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        self.assert_refused(api_client.post("/v1/ingest", M, format="json"), 403)

    def test_a_scoped_key_and_the_same_id_with_a_newline(self, api_client):
        _, key = api_key_create(name="M-1 only", device_id="M-1")
        api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        response = api_client.post("/v1/ingest", M | {"meterId": "M-1\n"}, format="json")
        assert response.status_code == 400
        assert "meterId" in response.json()["rejected"][0]["errors"]

    def test_no_key(self, api_client):
        response = api_client.post("/v1/ingest", M, format="json")
        assert response.status_code in (401, 403)
        self.assert_refused(response, response.status_code)

    def test_an_unknown_key(self, api_client):
        api_client.credentials(HTTP_AUTHORIZATION="Api-Key not.a-key")
        response = api_client.post("/v1/ingest", M, format="json")
        assert response.status_code in (401, 403)
        self.assert_refused(response, response.status_code)

    def test_a_body_that_is_not_json(self, device_client):
        response = device_client.generic("POST", "/v1/ingest", raw(M), content_type="text/plain")
        self.assert_refused(response, 415)

    def test_an_empty_body(self, device_client):
        response = device_client.generic("POST", "/v1/ingest", b"", content_type="application/json")
        self.assert_refused(response, 400)


class TestDeviceIds:
    def test_an_existing_device_id_with_a_newline_never_reaches_that_device(self, device_client):
        device_client.post("/v1/ingest", M, format="json")
        before = tables()

        response = device_client.post(
            "/v1/ingest",
            [meter_payload("M-1\n", at=T0 + timedelta(minutes=1), kwh=9.0)],
            format="json",
        )

        assert response.status_code == 400
        assert tables() == before
        assert list(Meter.objects.values_list("meter_id", flat=True)) == ["M-1"]

    def test_ids_that_spell_sql_or_array_syntax_are_stored_verbatim(self, device_client):
        ids = ["NULL", "null", "M.1:x", "-", "_"]
        payloads = [meter_payload(device_id) for device_id in ids]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 201
        assert sorted(Meter.objects.values_list("meter_id", flat=True)) == sorted(ids)
        assert MeterReading.objects.filter(device__meter_id="NULL").count() == 1

    @pytest.mark.postgresql
    def test_array_literals_carry_every_text_verbatim(self):
        texts = [" a ", "b\n", 'c"d', "e\\f", "NULL", "", "{g,h}", "i,j", "ü", " "]
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::text[]", [_array_literal(texts)])
            assert cursor.fetchone()[0] == texts
            cursor.execute("SELECT %s::text[]", [_array_literal(["M-1", "M-2"])])
            assert cursor.fetchone()[0] == ["M-1", "M-2"]


class TestEveryFieldError:
    def test_a_reading_with_four_bad_fields_lists_four_fields(self, device_client):
        payload = {
            "vehicleId": "V-1\n",
            "soc": 101,
            "kwhDeliveredDc": 1000,
            "batteryTemp": "hot",
            "timestamp": "2026-02-10T10:00:00Z",
        }

        response = device_client.post("/v1/ingest", payload, format="json")

        assert response.status_code == 400
        errors = response.json()["rejected"][0]["errors"]
        assert set(errors) == {"vehicleId", "soc", "kwhDeliveredDc", "batteryTemp"}
        assert "TELEMETRY_MAX_KWH_PER_READING" in errors["kwhDeliveredDc"][0]
        assert errors["soc"] == ["Expected `float` <= 100.0"]

    def test_missing_and_invalid_fields_and_a_wrong_type_are_all_listed(self, device_client):
        payload = {"meterId": "M 1", "type": "vehicle", "timestamp": "1950-01-01T00:00:00Z"}

        response = device_client.post("/v1/ingest", payload, format="json")

        errors = response.json()["rejected"][0]["errors"]
        assert set(errors) == {"type", "meterId", "kwhConsumedAc", "voltage", "timestamp"}
        assert "TELEMETRY_MAX_AGE_DAYS" in errors["timestamp"][0]


class TestKwhBound:
    def test_the_default_bound_is_100_kwh_for_both_kinds(self, device_client):
        payloads = [
            meter_payload(kwh=100.0),
            vehicle_payload(kwh=100.0),
            meter_payload("M-2", kwh=100.5),
            vehicle_payload("V-2", kwh=100.5),
        ]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 207
        rejected = {item["index"]: item["errors"] for item in response.json()["rejected"]}
        assert set(rejected) == {2, 3}
        assert "100 kWh" in rejected[2]["kwhConsumedAc"][0]
        assert "100 kWh" in rejected[3]["kwhDeliveredDc"][0]

    @override_settings(TELEMETRY_MAX_KWH_PER_READING=5.0)
    def test_the_bound_is_a_setting(self, device_client):
        response = device_client.post("/v1/ingest", [M | {"kwhConsumedAc": 6.0}], format="json")
        assert response.status_code == 400
        assert "5 kWh" in response.json()["rejected"][0]["errors"]["kwhConsumedAc"][0]

    def test_a_device_hour_of_maximum_values_keeps_every_analytics_read_working(
        self, device_client, analyst_client
    ):
        mapping_create(vehicle_id="V-1", meter_id="M-1", valid_from=T0 - timedelta(days=1))
        hour = [T0 + timedelta(seconds=s) for s in range(0, 3600, 2)]  # 1800 readings
        meters = [meter_payload(at=t, kwh=100.0, voltage=2000.0) for t in hour]
        vehicles = [vehicle_payload(at=t, kwh=100.0, soc=100.0, temp=150.0) for t in hour]

        for batch in (meters, vehicles):
            response = device_client.post("/v1/ingest", batch, format="json")
            assert response.status_code == 201, response.content

        window = "from=2026-02-10T09:00:00Z&to=2026-02-10T11:00:00Z"
        figures = analyst_client.get(f"/v1/analytics/performance/V-1?{window}")
        assert figures.status_code == 200, figures.content
        assert figures.json()["totalAcConsumedKwh"] == pytest.approx(180_000.0)
        assert figures.json()["totalDcDeliveredKwh"] == pytest.approx(180_000.0)
        for route in ("/v1/analytics/fleet/inefficient", "/v1/analytics/fleet/summary"):
            response = analyst_client.get(f"{route}?hours=24")
            assert response.status_code == 200, (route, response.content)
        assert MeterHourly.objects.get().energy_kwh == pytest.approx(180_000.0)


class TestMaxAge:
    def test_sixty_days_of_1950_are_rejected_and_create_no_partition(self, device_client):
        before = tables()
        start = datetime(1950, 3, 1, tzinfo=UTC)
        payloads = [meter_payload(at=start + timedelta(days=d)) for d in range(60)]
        payloads += [vehicle_payload(at=start + timedelta(days=d)) for d in range(60)]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 400
        assert len(response.json()["rejected"]) == 120
        assert all("timestamp" in item["errors"] for item in response.json()["rejected"])
        assert tables() == before
        assert not [p for p in partitions_list() if p.day.year == 1950]

    @override_settings(TELEMETRY_MAX_AGE_DAYS=2)
    def test_the_limit_is_a_setting_and_the_edge_is_inclusive(self, device_client):
        payloads = [
            meter_payload(at=NOW - timedelta(days=2)),
            meter_payload(at=NOW - timedelta(days=2, seconds=1)),
        ]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 207
        assert [item["index"] for item in response.json()["rejected"]] == [1]
        assert "Older than 2 days" in response.json()["rejected"][0]["errors"]["timestamp"][0]

    @pytest.mark.postgresql
    @override_settings(TELEMETRY_MAX_AGE_DAYS=3)
    def test_ingest_creates_partitions_only_inside_the_window(self, device_client):
        days = {p.day for p in partitions_list()}
        payloads = [meter_payload(at=NOW - timedelta(days=d)) for d in range(10)]

        device_client.post("/v1/ingest", payloads, format="json")

        created = {p.day for p in partitions_list()} - days
        earliest = (NOW - timedelta(days=3)).date()
        latest = (NOW + timedelta(minutes=5)).date()
        assert created and all(earliest <= day <= latest for day in created)


class TestConflicts:
    def test_a_replay_with_other_values_keeps_the_stored_one_and_is_reported(
        self, device_client, caplog
    ):
        before_metric = REGISTRY.get_sample_value("telemetry_reading_conflicts_total") or 0
        device_client.post("/v1/ingest", [M, V], format="json")

        with caplog.at_level(logging.INFO, logger="telemetry.ingest"):
            response = device_client.post(
                "/v1/ingest",
                [M | {"kwhConsumedAc": 2.0}, V, V | {"soc": 10.0}],
                format="json",
            )

        assert response.status_code == 200
        assert response.json() == {
            "accepted": 0,
            "duplicates": 3,
            "conflicts": 2,
            "rejected": [],
        }
        assert MeterReading.objects.get().energy_kwh == M["kwhConsumedAc"]
        assert VehicleReading.objects.get().soc_pct == V["soc"]
        assert MeterHourly.objects.get().energy_kwh == M["kwhConsumedAc"]
        assert "duplicates=3 conflicts=2" in caplog.text
        after_metric = REGISTRY.get_sample_value("telemetry_reading_conflicts_total")
        assert after_metric - before_metric == 2

    def test_an_identical_replay_is_no_conflict(self, device_client):
        device_client.post("/v1/ingest", [M, V], format="json")
        response = device_client.post("/v1/ingest", [M, V], format="json")
        assert (response.json()["duplicates"], response.json()["conflicts"]) == (2, 0)

    def test_same_request_duplicates_that_differ_are_conflicts(self, device_client):
        payloads = [M, M | {"voltage": 231.0}, M, M | {"voltage": 232.0}, meter_payload("M-2")]

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.status_code == 201
        assert response.json()["accepted"] == 2
        assert (response.json()["duplicates"], response.json()["conflicts"]) == (3, 2)
        assert MeterReading.objects.get(device__meter_id="M-1").voltage_v == M["voltage"]

    def test_a_stored_reading_and_two_equal_replays_that_differ_from_it(self, device_client):
        device_client.post("/v1/ingest", M, format="json")
        other = M | {"voltage": 240.0}

        response = device_client.post("/v1/ingest", [other, other], format="json")

        assert (response.json()["duplicates"], response.json()["conflicts"]) == (2, 2)

    def test_conflicts_of_new_devices_on_the_registering_path(self, device_client):
        payloads = [M, M | {"voltage": 1.0}, V, V | {"soc": 1.0}]  # both streams, new devices

        response = device_client.post("/v1/ingest", payloads, format="json")

        assert response.json() == {
            "accepted": 2,
            "duplicates": 2,
            "conflicts": 2,
            "rejected": [],
        }


INGEST_ROUTES = [
    "/v1/ingest",
    "/v1/ingest/meter",
    "/v1/ingest/vehicle",
    "/v1/ingest/meter/batch",
    "/v1/ingest/vehicle/batch",
    "/v1/telemetry/ingest",
    "/v1/telemetry",
]


def test_the_openapi_schema_documents_every_answer_of_every_ingest_route(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    for route in INGEST_ROUTES:
        responses = schema["paths"][route]["post"]["responses"]
        assert set(responses) >= {"200", "201", "207", "400", "401", "403", "413", "429", "503"}
        for code, response in responses.items():
            examples = response["content"]["application/json"]["examples"]
            assert examples, (route, code)
            for example in examples.values():
                assert set(example["value"]) - {"detail"} == SHAPE, (route, code)
                if code in {"401", "403", "413", "429", "503"}:
                    assert example["value"]["detail"], (route, code)
        for code in ("429", "503"):
            assert responses[code]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    reading = schema["components"]["schemas"]["MeterReadingIn"]["properties"]["meterId"]
    assert reading["pattern"] == "^[A-Za-z0-9_.:\\-]{1,64}$"
