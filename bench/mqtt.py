"""The MQTT figure of the benchmark: readings/s end to end, from the first publish to the commit of
the last reading, through a private Mosquitto and `manage.py ingest_mqtt` (bench/run.py --mqtt).

Publisher, broker, consumer and PostgreSQL share the machine's CPUs, as the HTTP figures' wrk,
gunicorn and PostgreSQL do. Every run writes readings of a day of its own, so none is a duplicate.
"""

import json
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from testsupport.mqtt import IngestConsumer, Mosquitto, Publisher
from testsupport.streams import history_rows_sql

DEVICES = 2000  # half meters, half vehicles, registered by a warm-up run


def reading(n: int, start: datetime) -> tuple[str, dict]:
    device, minute = n % DEVICES, n // DEVICES
    timestamp = (start + timedelta(minutes=minute)).isoformat()
    if device % 2 == 0:
        body = {"meterId": f"MQ-M-{device}", "kwhConsumedAc": 0.11, "voltage": 230.5}
        return f"telemetry/meter/MQ-M-{device}", {**body, "timestamp": timestamp}
    body = {"vehicleId": f"MQ-V-{device}", "soc": 50.0, "kwhDeliveredDc": 0.1, "batteryTemp": 31.5}
    return f"telemetry/vehicle/MQ-V-{device}", {**body, "timestamp": timestamp}


def stored_between(url: str, start: datetime, end: datetime) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(history_rows_sql(between=True), (start, end) * 2).fetchone()[0]


def run_once(url: str, broker: Mosquitto, *, readings: int, per_message: int, start: datetime):
    """Publish `readings` (one per message, or batches on telemetry/ingest); seconds to commit."""
    messages = []
    if per_message == 1:
        messages = [
            (topic, json.dumps(body))
            for topic, body in (reading(n, start) for n in range(readings))
        ]
    else:
        for first in range(0, readings, per_message):
            batch = [reading(n, start)[1] for n in range(first, first + per_message)]
            messages.append(("telemetry/ingest", json.dumps(batch)))
    publishers = [Publisher(broker.url, client_id=f"bench-{i}-{time.time_ns()}") for i in (0, 1)]
    for publisher in publishers:
        publisher.wait_connected()
    end = start + timedelta(days=1)

    def publish(publisher: Publisher, share: list) -> None:
        publisher.wait_published([publisher.publish(t, b) for t, b in share], timeout=600)

    began = time.perf_counter()
    threads = [
        threading.Thread(target=publish, args=(p, messages[i :: len(publishers)]))
        for i, p in enumerate(publishers)
    ]
    for thread in threads:
        thread.start()
    deadline = began + 600
    while stored_between(url, start, end) < readings:
        if time.perf_counter() > deadline:
            raise TimeoutError("the MQTT consumer did not store every reading within 600 s")
        time.sleep(0.05)
    seconds = time.perf_counter() - began
    for thread in threads:
        thread.join()
    for publisher in publishers:
        publisher.close()
    return seconds


def mqtt_ingest(args, env: dict, url: str, *, figure, http_batch_rate: float | None) -> list:
    """MQTT figures: single-reading messages and 100-reading messages, each beside the HTTP batch
    figure of the same run."""
    readings = 20_000 if args.quick else 100_000
    epoch = datetime(2026, 6, 1, tzinfo=UTC)
    figures = []
    with tempfile.TemporaryDirectory(prefix="energy-bench-mqtt-") as tmp:
        broker = Mosquitto(Path(tmp) / "broker")
        broker.start()
        consumer = IngestConsumer(
            {k: v for k, v in env.items() if k != "MQTT_METRICS_PORT"}
            | {"MQTT_CLIENT_ID": "bench-ingest", "LOG_LEVEL": "WARNING"},
            broker=broker.url,
            log_dir=Path(tmp),
        )
        consumer.start()
        try:
            time.sleep(1)  # subscribed
            run_once(url, broker, readings=DEVICES, per_message=1, start=epoch)  # registers
            for per_message in (1, 100):
                rates = []
                for run in range(args.runs):
                    day = epoch + timedelta(days=1 + per_message + run)
                    seconds = run_once(
                        url, broker, readings=readings, per_message=per_message, start=day
                    )
                    rates.append(readings / seconds)
                label = "one reading a message" if per_message == 1 else "100 readings a message"
                figures.append(
                    figure(
                        f"MQTT ingest end to end, {label}",
                        sorted(rates)[len(rates) // 2],
                        "readings/s",
                        limit=http_batch_rate,
                        limit_name="HTTP ingest, batches of 1000 (same run)",
                        runs=rates,
                        note=f"{readings:,} readings a run, publish to commit",
                    )
                )
        finally:
            consumer.stop()
            broker.stop()
    return figures
