"""MQTT ingestion end to end: a private Mosquitto, `manage.py ingest_mqtt` as a real process, the
test database. Every case waits for an observable outcome (rows committed, a dead letter) with a
deadline, never for a fixed time, except where it shows that nothing happens."""

import json
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum

from fleet.models import Meter, Vehicle
from telemetry.models import MeterHourly, MeterReading, VehicleHourly, VehicleReading
from testsupport.mqtt import IngestConsumer, Mosquitto, Publisher
from testsupport.proxy import TcpProxy
from testsupport.servers import ROOT, database_url

pytestmark = [pytest.mark.postgresql]

BASE = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)


def meter_reading(n: int, *, device: str | None = None) -> dict:
    return {
        "meterId": device or f"M-{n % 10}",
        "kwhConsumedAc": 0.25,
        "voltage": 230.0,
        "timestamp": (BASE + timedelta(seconds=n)).isoformat(),
    }


def vehicle_reading(n: int, *, device: str | None = None) -> dict:
    return {
        "vehicleId": device or f"V-{n % 10}",
        "soc": 50.0,
        "kwhDeliveredDc": 0.2,
        "batteryTemp": 30.0,
        "timestamp": (BASE + timedelta(seconds=n)).isoformat(),
    }


def stored() -> int:
    return MeterReading.objects.count() + VehicleReading.objects.count()


def rollup_count() -> int:
    meters = MeterHourly.objects.aggregate(n=Sum("reading_count"))["n"] or 0
    return meters + (VehicleHourly.objects.aggregate(n=Sum("reading_count"))["n"] or 0)


def wait_until(condition, *, timeout: float = 30, what: str = "", log=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log() if log else ''}")
        time.sleep(0.05)


def typed_message(n: int) -> tuple[str, str]:
    """Message n: a meter reading on its meter topic, or a vehicle reading on its vehicle topic."""
    reading = meter_reading(n) if n % 2 == 0 else vehicle_reading(n)
    kind, device = (
        ("meter", reading["meterId"]) if n % 2 == 0 else ("vehicle", reading["vehicleId"])
    )
    return f"telemetry/{kind}/{device}", json.dumps(reading)


@pytest.fixture
def stack(transactional_db, tmp_path):
    """A broker, a factory of consumers against the test database, and publishers."""
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    consumers, publishers = [], []

    class Stack:
        def __init__(self):
            self.broker = broker
            self.database_url = database_url(connection.settings_dict)

        def consumer(self, *args: str, env: dict | None = None, **kw) -> IngestConsumer:
            process = IngestConsumer(
                {"DATABASE_URL": self.database_url, "MQTT_CLIENT_ID": "ingest-test", **(env or {})},
                broker=kw.get("broker", broker.url),
                log_dir=tmp_path,
                args=args,
            )
            consumers.append(process)
            process.start()
            return process

        def publisher(self, name: str, **kw) -> Publisher:
            client = Publisher(kw.pop("url", broker.url), client_id=name, **kw)
            publishers.append(client)
            assert client.wait_connected(), client.connect_results
            return client

    try:
        yield Stack()
    finally:  # every process goes, even when closing one of them fails
        try:
            for client in publishers:
                client.close()
        finally:
            for process in consumers:
                process.stop(signal.SIGKILL)
            broker.stop()


def wait_subscribed(consumer: IngestConsumer) -> None:
    wait_until(
        lambda: consumer.metric("telemetry_mqtt_connected") == 1,
        what="the consumer's connection",
        log=consumer.log,
    )
    time.sleep(0.2)  # its SUBSCRIBE follows the CONNACK


class TestIngestMqtt:
    def test_published_readings_are_stored_exactly_once(self, stack):
        consumer = stack.consumer()
        wait_subscribed(consumer)
        device = stack.publisher("device")
        messages = [typed_message(n) for n in range(200)]
        batch = [meter_reading(1000 + n) for n in range(25)] + [
            vehicle_reading(1000 + n) for n in range(25)
        ]
        infos = [device.publish(topic, body) for topic, body in messages]
        infos.append(device.publish("telemetry/ingest", json.dumps({"readings": batch})))
        # A replay of everything: duplicates, never second rows.
        infos += [device.publish(topic, body) for topic, body in messages]
        device.wait_published(infos)

        wait_until(
            lambda: consumer.metric("telemetry_mqtt_messages_total", 'outcome="stored"') == 401,
            what="401 messages stored",
            log=consumer.log,
        )
        assert stored() == 250
        assert rollup_count() == 250
        assert consumer.metric("telemetry_readings_total", 'outcome="accepted"') == 250
        assert consumer.metric("telemetry_readings_total", 'outcome="duplicate"') == 200
        assert consumer.metric("telemetry_mqtt_last_commit_timestamp_seconds") > 0
        assert consumer.metric("telemetry_mqtt_batch_seconds_count") >= 1

    def test_a_consumer_killed_mid_stream_and_restarted_loses_and_doubles_nothing(self, stack):
        total = 3000
        consumer = stack.consumer("--batch", "200", "--flush-ms", "50")
        wait_subscribed(consumer)
        device = stack.publisher("device")
        letters = stack.publisher("dead-letters")
        letters.collect("telemetry/rejected/#")
        infos = []

        def publish_all():
            for n in range(total):
                infos.append(device.publish(*typed_message(n)))
                if n % 100 == 0:
                    time.sleep(0.02)  # a stream, not one burst

        publisher = threading.Thread(target=publish_all)
        publisher.start()
        wait_until(lambda: stored() >= total // 4, what="a quarter stored", log=consumer.log)
        consumer.stop(signal.SIGKILL)
        at_kill = stored()
        publisher.join()
        device.wait_published(infos)
        restarted = stack.consumer("--batch", "200", "--flush-ms", "50")
        wait_until(lambda: stored() >= total, what="every reading", log=restarted.log)
        time.sleep(0.5)  # anything still redelivered would land now

        counts = {
            "published": total,
            "stored": stored(),
            "stored_at_kill": at_kill,
            "rollup_readings": rollup_count(),
            "dead_lettered": len(letters.received),
            "redelivered": restarted.metric("telemetry_mqtt_redelivered_total"),
            "duplicates_after_restart": restarted.metric(
                "telemetry_readings_total", 'outcome="duplicate"'
            ),
        }
        print(f"\nMQTT consumer SIGKILL and restart: {counts}")
        assert counts["stored"] == total
        assert counts["rollup_readings"] == total
        assert counts["dead_lettered"] == 0
        assert 0 < at_kill < total

    def test_a_broker_restarted_mid_stream_loses_nothing(self, stack):
        total = 2000
        consumer = stack.consumer("--batch", "200", "--flush-ms", "50")
        wait_subscribed(consumer)
        device = stack.publisher("device")
        infos = []

        def publish_all():
            for n in range(total):
                infos.append(device.publish(*typed_message(n)))
                if n % 100 == 0:
                    time.sleep(0.02)

        publisher = threading.Thread(target=publish_all)
        publisher.start()
        wait_until(lambda: stored() >= total // 4, what="a quarter stored", log=consumer.log)
        stack.broker.stop()  # Mosquitto saves its sessions and queues on SIGTERM
        at_stop = stored()
        time.sleep(0.5)
        stack.broker.start()
        # Published before the consumer is back (its reconnect waits at least a second): the
        # restored session must queue them.
        early = stack.publisher("early-device")
        early_infos = [early.publish(*typed_message(n)) for n in range(total, total + 100)]
        early.wait_published(early_infos)
        early_before_consumer = consumer.metric("telemetry_mqtt_connected") == 0
        total += 100
        publisher.join()
        device.wait_published(infos, timeout=60)
        wait_until(lambda: stored() >= total, what="every reading", log=consumer.log)
        time.sleep(0.5)
        counts = {
            "published": total,
            "published_before_the_consumer_reconnected": 100 if early_before_consumer else 0,
            "stored": stored(),
            "stored_at_broker_stop": at_stop,
            "rollup_readings": rollup_count(),
            "redelivered": consumer.metric("telemetry_mqtt_redelivered_total"),
        }
        print(f"\nMQTT broker restart: {counts}")
        assert counts["stored"] == total
        assert counts["rollup_readings"] == total
        assert 0 < at_stop < total

    def test_a_malformed_message_is_dead_lettered_and_the_next_good_one_stored(
        self, stack, device_client
    ):
        consumer = stack.consumer()
        wait_subscribed(consumer)
        letters = stack.publisher("dead-letters")
        letters.collect("telemetry/rejected/#")
        device = stack.publisher("device")
        mixed = [meter_reading(1), {**meter_reading(2), "kwhConsumedAc": "0.2"}, {"voltage": 1}]
        infos = [
            device.publish("telemetry/meter/M-1", b'{"meterId": "M-1", "kwh'),
            device.publish("telemetry/meter/M-1", json.dumps(meter_reading(0, device="M-1"))),
            device.publish("telemetry/ingest", json.dumps(mixed)),
        ]
        device.wait_published(infos)
        wait_until(lambda: len(letters.received) == 2, what="two dead letters", log=consumer.log)
        wait_until(lambda: stored() == 2, what="the good readings", log=consumer.log)

        by_topic = {m.topic: json.loads(m.payload) for m in letters.received}
        malformed = by_topic["telemetry/rejected/meter/M-1"]
        assert malformed["detail"].startswith("The body is not valid JSON")
        assert malformed["payload"] == '{"meterId": "M-1", "kwh'
        assert malformed["rejected"] == [] and malformed["valid"] == 0
        partial = by_topic["telemetry/rejected/ingest"]
        assert partial["valid"] == 1
        # The same per-item errors the HTTP API gives for the same batch.
        api = device_client.post("/v1/ingest", mixed, format="json").json()
        assert partial["rejected"] == api["rejected"]
        # Counted once acknowledged, just after the dead letters went out.
        wait_until(
            lambda: consumer.metric("telemetry_mqtt_messages_total", 'outcome="rejected"') == 2,
            what="two messages counted rejected",
        )
        assert consumer.metric("telemetry_mqtt_messages_total", 'outcome="stored"') == 1

    def test_ids_in_topic_and_payload_that_disagree_are_rejected(self, stack):
        consumer = stack.consumer()
        wait_subscribed(consumer)
        letters = stack.publisher("dead-letters")
        letters.collect("telemetry/rejected/#")
        device = stack.publisher("device")
        infos = [
            device.publish("telemetry/meter/M-1", json.dumps(meter_reading(0, device="M-2"))),
            device.publish("telemetry/meter/M-1", json.dumps(vehicle_reading(0, device="M-1"))),
            device.publish("telemetry/vehicle/V-1", json.dumps([vehicle_reading(1, device="V-1")])),
        ]
        device.wait_published(infos)
        wait_until(lambda: len(letters.received) == 2, what="two dead letters", log=consumer.log)
        wait_until(lambda: stored() == 1, what="V-1's reading", log=consumer.log)
        bodies = [json.loads(m.payload) for m in letters.received]
        assert bodies[0]["rejected"] == [
            {"index": 0, "errors": {"meterId": ["'M-2' differs from the topic's meter id 'M-1'."]}}
        ]
        assert list(bodies[1]["rejected"][0]["errors"]) == ["nonFieldErrors"]
        assert not Meter.objects.filter(meter_id="M-2").exists()
        assert list(VehicleReading.objects.values_list("device__vehicle_id", flat=True)) == ["V-1"]

    def test_consumers_of_one_group_split_the_stream_and_a_retired_one_leaves_none_behind(
        self, stack
    ):
        group = ("--share-group", "energy-ingest")
        first = stack.consumer("--client-id", "ingest-a", *group, "--end-session")
        second = stack.consumer("--client-id", "ingest-b", *group)
        wait_subscribed(first)
        wait_subscribed(second)
        device = stack.publisher("device")
        device.wait_published([device.publish(*typed_message(n)) for n in range(40)])
        stored_by = []

        def counted() -> bool:
            stored_by[:] = [
                c.metric("telemetry_mqtt_messages_total", 'outcome="stored"')
                for c in (first, second)
            ]
            return sum(stored_by) == 40

        wait_until(counted, what="40 messages stored", log=second.log)
        assert stored() == 40 and min(stored_by) > 0, stored_by

        # Without --end-session the broker would keep queueing half the stream for ingest-a.
        assert first.stop(signal.SIGTERM) == 0
        device.wait_published([device.publish(*typed_message(n)) for n in range(40, 60)])
        wait_until(lambda: stored() == 60, what="all to the remaining consumer", log=second.log)

    def test_sigterm_flushes_commits_and_acknowledges_before_exiting(self, stack):
        consumer = stack.consumer("--flush-ms", "60000")  # only a full batch or SIGTERM flushes
        wait_subscribed(consumer)
        device = stack.publisher("device")
        device.wait_published([device.publish(*typed_message(n)) for n in range(20)])
        wait_until(
            lambda: consumer.metric("telemetry_mqtt_lag_seconds") > 0, what="messages pending"
        )
        assert stored() == 0
        assert consumer.stop(signal.SIGTERM) == 0, consumer.log()
        assert stored() == 20
        # Everything was acknowledged: a consumer on the same session gets nothing again.
        again = stack.consumer()
        wait_subscribed(again)
        time.sleep(0.5)
        assert again.metric("telemetry_mqtt_redelivered_total") == 0
        assert again.metric("telemetry_mqtt_messages_total", 'outcome="stored"') == 0

    def test_a_database_outage_pauses_consumption_instead_of_dead_lettering(self, stack):
        proxy = TcpProxy(int(connection.settings_dict.get("PORT") or 5432))
        proxy.start()
        url = stack.database_url.replace(
            f":{connection.settings_dict.get('PORT') or 5432}/", f":{proxy.port}/"
        )
        try:
            consumer = stack.consumer("--flush-ms", "50", env={"DATABASE_URL": url})
            wait_subscribed(consumer)
            letters = stack.publisher("dead-letters")
            letters.collect("telemetry/rejected/#")
            device = stack.publisher("device")
            device.wait_published([device.publish(*typed_message(n)) for n in range(10)])
            wait_until(lambda: stored() == 10, what="the first readings", log=consumer.log)

            proxy.cut()
            device.wait_published([device.publish(*typed_message(n)) for n in range(10, 60)])
            wait_until(
                lambda: consumer.metric("telemetry_mqtt_database_retries_total") >= 2,
                what="retries during the outage",
                log=consumer.log,
            )
            assert stored() == 10
            assert letters.received == []

            proxy.restore()
            wait_until(
                lambda: stored() == 60, what="the readings after the outage", log=consumer.log
            )
            assert letters.received == []
            assert rollup_count() == 60
        finally:
            proxy.cut()


class TestBrokerCredentials:
    def test_a_device_may_publish_only_under_its_own_id(self, transactional_db, tmp_path):
        for meter_id in ("M-1", "M-2"):
            Meter.objects.create(meter_id=meter_id)
        Vehicle.objects.create(vehicle_id="V-1")
        out = tmp_path / "auth"
        call_command("mqtt_credentials", "--out", str(out), "--gateway", "depot-gw")
        (new_file,) = out.glob("new-credentials-*.csv")
        passwords = dict(line.split(",") for line in new_file.read_text().splitlines()[1:])
        assert set(passwords) == {"telemetry-consumer", "depot-gw", "M-1", "M-2", "V-1"}

        # The shipped broker configuration, with the generated files.
        broker = Mosquitto(
            tmp_path / "broker", shipped_config=ROOT / "mosquitto" / "mosquitto.conf", auth_dir=out
        )
        broker.start()
        consumer_url = (
            f"mqtt://telemetry-consumer:{passwords['telemetry-consumer']}@127.0.0.1:{broker.port}"
        )
        consumer = IngestConsumer(
            {"DATABASE_URL": database_url(connection.settings_dict)},
            broker=consumer_url,
            log_dir=tmp_path,
        )
        clients = []
        try:
            consumer.start()
            wait_subscribed(consumer)
            m1 = Publisher(broker.url, client_id="m1", username="M-1", password=passwords["M-1"])
            clients.append(m1)
            assert m1.wait_connected(), m1.connect_results
            own = m1.publish("telemetry/meter/M-1", json.dumps(meter_reading(0, device="M-1")))
            other = m1.publish("telemetry/meter/M-2", json.dumps(meter_reading(0, device="M-2")))
            polymorphic = m1.publish("telemetry/ingest", json.dumps(meter_reading(1, device="M-2")))
            gateway = Publisher(
                broker.url, client_id="gw", username="depot-gw", password=passwords["depot-gw"]
            )
            clients.append(gateway)
            assert gateway.wait_connected(), gateway.connect_results
            via_gateway = gateway.publish("telemetry/ingest", json.dumps(vehicle_reading(0)))
            m1.wait_published([own, other, polymorphic])
            gateway.wait_published([via_gateway])
            wait_until(
                lambda: stored() == 2, what="M-1's and the gateway's readings", log=consumer.log
            )
            time.sleep(0.5)
            assert list(MeterReading.objects.values_list("device__meter_id", flat=True)) == ["M-1"]
            assert VehicleReading.objects.count() == 1

            impostor = Publisher(broker.url, client_id="x", username="M-2", password="wrong")
            clients.append(impostor)
            assert not impostor.wait_connected(timeout=3)
            assert impostor.connect_results and "Not authorized" in impostor.connect_results[0]
        finally:
            for client in clients:
                client.close()
            consumer.stop(signal.SIGKILL)
            broker.stop()
