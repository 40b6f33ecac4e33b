"""The MQTT consumer's message verdicts and broker credentials, without a broker (both backends).
End to end through a real Mosquitto: test_mqtt_broker.py."""

import base64
import hashlib
import json
import time
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from fleet.models import Meter, Vehicle
from telemetry.broker_auth import password_hash, password_matches
from telemetry.mqtt import (
    Received,
    broker_parse,
    dead_letter_body,
    dead_letter_topic,
    message_parse,
    topic_route,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
METER = {
    "meterId": "M-1",
    "kwhConsumedAc": 0.2,
    "voltage": 230.0,
    "timestamp": "2026-11-23T11:00:00Z",
}


def received(topic: str, payload) -> Received:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Received(topic, body, mid=1, qos=1, dup=False, connection=0, at=time.monotonic())


class TestTopics:
    def test_typed_topics_fix_the_kind_and_the_device(self):
        assert topic_route("telemetry/meter/M-1") == ("meter", "M-1")
        assert topic_route("telemetry/vehicle/V-1") == ("vehicle", "V-1")
        assert topic_route("telemetry/ingest") == (None, None)

    @pytest.mark.parametrize(
        "topic", ["telemetry/meter", "telemetry/meter/", "telemetry/meter/M-1/x", "other/ingest"]
    )
    def test_other_topics_are_refused(self, topic):
        with pytest.raises(ValueError, match="Readings are published to"):
            topic_route(topic)

    def test_dead_letters_go_under_telemetry_rejected(self):
        assert dead_letter_topic("telemetry/meter/M-1") == "telemetry/rejected/meter/M-1"
        assert dead_letter_topic("telemetry/ingest") == "telemetry/rejected/ingest"


class TestMessageParse:
    def test_a_valid_reading_on_its_topic_is_valid(self):
        verdict, parsed = message_parse(received("telemetry/meter/M-1", METER), now=NOW)
        assert (verdict.count, verdict.valid, verdict.refused) == (1, 1, False)
        assert [r.meter_id for _, r in parsed.meters] == ["M-1"]

    def test_a_payload_id_other_than_the_topics_is_rejected_by_index(self):
        batch = [METER, {**METER, "meterId": "M-2"}]
        verdict, parsed = message_parse(received("telemetry/meter/M-1", batch), now=NOW)
        assert verdict.rejected == [
            {"index": 1, "errors": {"meterId": ["'M-2' differs from the topic's meter id 'M-1'."]}}
        ]
        assert verdict.valid == 1 and [i for i, _ in parsed.meters] == [0]

    def test_a_vehicle_reading_on_a_meter_topic_is_rejected(self):
        vehicle = {"vehicleId": "M-1", "soc": 1, "kwhDeliveredDc": 0, "batteryTemp": 1}
        verdict, _ = message_parse(
            received("telemetry/meter/M-1", {**vehicle, "timestamp": METER["timestamp"]}), now=NOW
        )
        assert verdict.valid == 0 and list(verdict.rejected[0]["errors"]) == ["nonFieldErrors"]

    @pytest.mark.parametrize(
        ("payload", "detail"),
        [
            (b"{", "The body is not valid JSON"),
            (b"[]", "The batch is empty."),
            (b"42", "Expected a reading object"),
            (b'{"x": NaN}', "The body is not valid JSON"),
        ],
    )
    def test_a_message_without_readings_is_refused_whole(self, payload, detail):
        verdict, parsed = message_parse(received("telemetry/ingest", payload), now=NOW)
        assert parsed is None and verdict.detail.startswith(detail)

    def test_dead_letters_are_not_consumed_again(self):
        verdict, parsed = message_parse(received("telemetry/rejected/ingest", b"{}"), now=NOW)
        assert verdict.skipped and parsed is None and not verdict.refused

    def test_a_dead_letter_carries_topic_errors_and_payload(self):
        verdict, _ = message_parse(received("telemetry/ingest", b"\xff{"), now=NOW)
        body = json.loads(dead_letter_body(verdict))
        assert body["topic"] == "telemetry/ingest" and body["rejected"] == []
        assert base64.b64decode(body["payloadBase64"]) == b"\xff{"


class TestBrokerParse:
    def test_credentials_and_default_ports(self):
        address = broker_parse("mqtt://telemetry-consumer:p%40ss@broker")
        assert (address.host, address.port, address.username, address.password) == (
            "broker",
            1883,
            "telemetry-consumer",
            "p@ss",
        )
        assert broker_parse("mqtts://broker").port == 8883

    @pytest.mark.parametrize("url", ["http://broker", "mqtt://", "mqtt://broker:x"])
    def test_a_bad_url_is_refused(self, url):
        with pytest.raises(ValueError):
            broker_parse(url)


class TestMqttCredentials:
    def test_the_hash_is_pbkdf2_sha512_in_mosquittos_format(self):
        hashed = password_hash("secret", salt=b"0123456789ab")
        _, algorithm, iterations, salt, digest = hashed.split("$")
        assert (algorithm, base64.b64decode(salt)) == ("7", b"0123456789ab")
        expected = hashlib.pbkdf2_hmac("sha512", b"secret", b"0123456789ab", int(iterations))
        assert base64.b64decode(digest) == expected

    def test_a_rerun_keeps_passwords_adds_new_devices_and_drops_deleted_ones(self, db, tmp_path):
        Meter.objects.create(meter_id="M-1")
        Vehicle.objects.create(vehicle_id="V-1")
        call_command("mqtt_credentials", "--out", str(tmp_path))
        first = dict(
            line.split(":", 1) for line in (tmp_path / "mosquitto.passwd").read_text().splitlines()
        )
        assert set(first) == {"telemetry-consumer", "M-1", "V-1"}
        acl = (tmp_path / "mosquitto.acl").read_text()
        assert "pattern write telemetry/meter/%u" in acl
        assert "pattern write telemetry/vehicle/%u" in acl
        assert "user telemetry-consumer\ntopic read telemetry/#" in acl

        Meter.objects.create(meter_id="M-2")
        Vehicle.objects.filter(vehicle_id="V-1").delete()
        call_command("mqtt_credentials", "--out", str(tmp_path))
        second = dict(
            line.split(":", 1) for line in (tmp_path / "mosquitto.passwd").read_text().splitlines()
        )
        assert set(second) == {"telemetry-consumer", "M-1", "M-2"}
        assert second["M-1"] == first["M-1"]
        assert second["telemetry-consumer"] == first["telemetry-consumer"]

        call_command("mqtt_credentials", "--out", str(tmp_path), "--rotate")
        third = dict(
            line.split(":", 1) for line in (tmp_path / "mosquitto.passwd").read_text().splitlines()
        )
        assert third["M-1"] != second["M-1"]
        files = sorted(tmp_path.glob("new-credentials-*.csv"))
        assert files and all(f.stat().st_mode & 0o077 == 0 for f in files)

    def test_a_consumer_name_that_is_a_device_id_is_refused(self, db, tmp_path):
        Meter.objects.create(meter_id="M-1")
        with pytest.raises(CommandError, match="is a device id"):
            call_command("mqtt_credentials", "--out", str(tmp_path), "--consumer", "M-1")

    def test_the_consumer_password_in_mqtt_url_is_the_consumers(self, db, tmp_path, settings):
        settings.MQTT_URL = "mqtt://telemetry-consumer:s3cret@broker:1883"
        call_command("mqtt_credentials", "--out", str(tmp_path))
        call_command("mqtt_credentials", "--out", str(tmp_path), "--rotate")
        entries = dict(
            line.split(":", 1) for line in (tmp_path / "mosquitto.passwd").read_text().splitlines()
        )
        assert password_matches("s3cret", entries["telemetry-consumer"])
        assert not password_matches("other", entries["telemetry-consumer"])


class TestPoisonMessages:
    def test_a_message_the_store_cannot_hold_is_refused_and_the_rest_of_its_batch_stored(self, db):
        from telemetry.models import MeterReading
        from telemetry.mqtt import BrokerAddress, ConsumerConfig, MqttConsumer

        consumer = MqttConsumer(ConsumerConfig(broker=BrokerAddress("127.0.0.1", 1)))
        poison = {**METER, "meterId": "M-9", "timestamp": "0001-01-01T00:00:00+01:00"}
        batch = [
            message_parse(received("telemetry/meter/M-1", METER), now=NOW),
            message_parse(received("telemetry/meter/M-9", poison), now=NOW),
        ]
        parts = [(verdict, parsed) for verdict, parsed in batch if parsed and verdict.valid]
        assert consumer._store(parts)
        good, bad = (verdict for verdict, _ in batch)
        assert not good.refused and bad.refused and bad.valid == 0, bad
        assert list(MeterReading.objects.values_list("device__meter_id", flat=True)) == ["M-1"]
