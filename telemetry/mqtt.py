"""MQTT ingestion: a consumer that stores readings published to a broker, acknowledged after commit.

Devices publish to `telemetry/meter/{meterId}`, `telemetry/vehicle/{vehicleId}` or the polymorphic
`telemetry/ingest`, one reading or a batch exactly as over HTTP. The consumer subscribes with QoS 1
on a persistent MQTT 5 session (shared subscription `$share/<group>/...`, so several consumers split
the load), gathers messages into batches (size or time, whichever comes first), validates each
message with the HTTP path's `readings_parse` and stores the batch with one call of the one ingest
service, `readings_ingest`. Messages are acknowledged (manual PUBACK) only after that call has
committed: a crash or a database outage means redelivery, and the history's uniqueness makes a
redelivered reading a duplicate, never a second row.

A message that is refused (malformed JSON, invalid items, a topic whose id disagrees with the
payload's) is republished to `telemetry/rejected/<topic without its "telemetry/" prefix>` with the
per-item errors the API returns; its valid items are stored. A database outage pauses the consumer
(no acks, backoff, retry): good messages are never dead-lettered.

Threads: paho's network loop (`loop_start`) only puts received messages on a queue; the caller's
thread gathers, stores and acknowledges. `Client.ack()` from that thread only appends a PUBACK to
paho's outgoing deque and wakes the loop; acknowledgements and disconnections are serialised by a
lock so a PUBACK is never sent for a message of an earlier connection (the broker redelivers those).
"""

import base64
import contextlib
import dataclasses
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.conf import settings
from django.db import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
)
from django.utils import timezone
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

from telemetry.schemas import (
    METER,
    VEHICLE,
    MalformedBody,
    ParsedReadings,
    decode_json,
    readings_parse,
)
from telemetry.services import IngestResult, readings_ingest

logger = logging.getLogger("telemetry.mqtt")

TOPIC_ROOT = "telemetry"
REJECTED_ROOT = f"{TOPIC_ROOT}/rejected"
_ID_FIELD = {METER: "meterId", VEHICLE: "vehicleId"}
# Errors a reading itself can cause in the ingest service (values the database or datetime cannot
# hold): the message is refused. Anything else is the service's problem, never the message's.
_DATA_ERRORS = (DataError, IntegrityError, ValueError, OverflowError, ArithmeticError, TypeError)

# --- metrics (the process's default registry, the one the HTTP path's counters live in) ---------

MESSAGES = Counter(
    "telemetry_mqtt_messages_total",
    "MQTT messages consumed, by outcome (stored: every item valid; rejected: dead-lettered, "
    "its valid items stored; skipped: a dead-letter topic).",
    ["outcome"],
)
REDELIVERED = Counter(
    "telemetry_mqtt_redelivered_total", "MQTT messages received with the DUP flag (redeliveries)."
)
DATABASE_RETRIES = Counter(
    "telemetry_mqtt_database_retries_total",
    "Batches retried because the database was unavailable (nothing acknowledged meanwhile).",
)
BATCH_SECONDS = Histogram(
    "telemetry_mqtt_batch_seconds",
    "Seconds from a batch's flush to its acknowledgement (validate, commit, dead-letter, ack).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LAG_SECONDS = Gauge(
    "telemetry_mqtt_lag_seconds",
    "Age of the oldest message received but not yet committed (0 when idle).",
    multiprocess_mode="livemax",
)
LAST_COMMIT = Gauge(
    "telemetry_mqtt_last_commit_timestamp_seconds",
    "Unix time of the last batch committed by the MQTT consumer.",
    multiprocess_mode="max",
)
CONNECTED = Gauge(
    "telemetry_mqtt_connected",
    "1 while the consumer is connected to the broker.",
    multiprocess_mode="livemax",
)


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def broker_parse(url: str) -> BrokerAddress:
    """`mqtt://[user:password@]host[:port]` (1883) or `mqtts://…` (TLS, 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{url!r} is not mqtt://[user:password@]host[:port] (or mqtts://).")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port.") from None
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


@dataclass(frozen=True)
class ConsumerConfig:
    broker: BrokerAddress
    topics: tuple[str, ...] = (f"{TOPIC_ROOT}/#",)
    share_group: str = ""  # "" subscribes without sharing
    client_id: str = "energy-ingest-1"
    batch_size: int = 1000  # readings; a message is never split
    flush_seconds: float = 0.2
    session_expiry_seconds: int = 86400
    end_session: bool = False  # on shutdown, have the broker drop the session (retiring a consumer)

    def subscriptions(self) -> list[str]:
        if not self.share_group:
            return list(self.topics)
        return [f"$share/{self.share_group}/{topic}" for topic in self.topics]


# --- one message ---------------------------------------------------------------------------------


@dataclass
class Received:
    """A message as the network thread handed it over."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    connection: int  # the connection it arrived on: only that connection may acknowledge it
    at: float  # time.monotonic() on receipt


@dataclass
class Verdict:
    """What became of one message of a batch."""

    message: Received
    offset: int = 0  # index of its first item in the batch handed to the ingest service
    count: int = 0
    valid: int = 0
    rejected: list[dict] = dataclasses.field(default_factory=list)
    detail: str | None = None
    skipped: bool = False

    @property
    def refused(self) -> bool:
        return bool(self.detail or self.rejected)


class TopicRefused(ValueError):
    """A topic under which no reading may be published."""


def network_loop_stop(client: mqtt.Client) -> None:
    """`client.loop_stop()` after a `disconnect()`, without its race.

    paho-mqtt 2.2's network thread clears its own handle when it ends after a disconnect, and
    `loop_stop` can read that handle between its check and its `join` (an AttributeError on
    None): the thread has then ended, which is what stopping wanted.
    """
    with contextlib.suppress(AttributeError):
        client.loop_stop()


def topic_route(topic: str) -> tuple[str | None, str | None]:
    """(kind, device id) a topic fixes: ("meter", id), ("vehicle", id) or (None, None)."""
    parts = topic.split("/")
    if parts == [TOPIC_ROOT, "ingest"]:
        return None, None
    if len(parts) == 3 and parts[0] == TOPIC_ROOT and parts[1] in _ID_FIELD and parts[2]:
        return parts[1], parts[2]
    raise TopicRefused(
        f"Readings are published to {TOPIC_ROOT}/meter/{{meterId}}, "
        f"{TOPIC_ROOT}/vehicle/{{vehicleId}} or {TOPIC_ROOT}/ingest, not {topic!r}."
    )


def dead_letter_topic(topic: str) -> str:
    prefix = f"{TOPIC_ROOT}/"
    return f"{REJECTED_ROOT}/{topic[len(prefix) :] if topic.startswith(prefix) else topic}"


@dataclass(frozen=True)
class Limits:
    """The API's limits, read from settings once (not per message: that is the hot path)."""

    max_bytes: int
    max_batch: int
    max_future: timedelta

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            max_bytes=settings.TELEMETRY_MAX_BODY_BYTES,
            max_batch=settings.TELEMETRY_MAX_BATCH,
            max_future=timedelta(seconds=settings.TELEMETRY_MAX_FUTURE_SECONDS),
        )


def message_parse(
    message: Received, *, now, limits: Limits | None = None
) -> tuple[Verdict, ParsedReadings | None]:
    """Validate one message as the HTTP API validates one request, plus the topic's device id."""
    limits = limits or Limits.from_settings()
    verdict = Verdict(message)
    if message.topic.startswith(f"{REJECTED_ROOT}/"):
        verdict.skipped = True
        return verdict, None
    try:
        kind, device_id = topic_route(message.topic)
        if len(message.payload) > limits.max_bytes:
            raise MalformedBody(
                f"The message is over {limits.max_bytes} bytes; send smaller batches."
            )
        payload = decode_json(message.payload)
        parsed = readings_parse(
            payload,
            now=now,
            max_future=limits.max_future,
            kind=kind,
        )
    except (TopicRefused, MalformedBody) as error:
        verdict.detail = str(error)
        return verdict, None
    except _DATA_ERRORS as error:  # a value validation did not foresee: refuse, never block
        logger.exception("mqtt message on %s could not be validated", message.topic)
        verdict.detail = f"The readings could not be validated: {error}"
        return verdict, None
    if parsed.is_batch and parsed.size == 0:
        verdict.detail = "The batch is empty."
        return verdict, None
    if parsed.size > limits.max_batch:
        verdict.detail = (
            f"A batch holds at most {limits.max_batch} readings; this one has {parsed.size}."
        )
        return verdict, None
    verdict.count = parsed.size
    verdict.rejected = [rejection_body(r) for r in parsed.rejected]
    if device_id is not None:
        readings = parsed.meters if kind == METER else parsed.vehicles
        agreeing = []
        for index, reading in readings:
            payload_id = reading.meter_id if kind == METER else reading.vehicle_id
            if payload_id == device_id:
                agreeing.append((index, reading))
            else:
                error = f"{payload_id!r} differs from the topic's {kind} id {device_id!r}."
                verdict.rejected.append({"index": index, "errors": {_ID_FIELD[kind]: [error]}})
        readings[:] = agreeing
    verdict.valid = len(parsed.meters) + len(parsed.vehicles)
    return verdict, parsed


def rejection_body(rejection: Any, *, index: int | None = None) -> dict:
    """A rejection in the API's JSON shape (every field of the dataclass, so new ones flow)."""
    body = dataclasses.asdict(rejection)
    if index is not None:
        body["index"] = index
    return body


def batch_combine(parts: list[tuple[Verdict, ParsedReadings]]) -> ParsedReadings:
    """The valid readings of several messages as one batch, each message's items at its offset."""
    combined = ParsedReadings(is_batch=True)
    offset = 0
    for verdict, parsed in parts:
        verdict.offset = offset
        combined.meters += [(offset + index, reading) for index, reading in parsed.meters]
        combined.vehicles += [(offset + index, reading) for index, reading in parsed.vehicles]
        offset += verdict.count
    return combined


def verdicts_apply(parts: list[tuple[Verdict, ParsedReadings]], result: IngestResult) -> None:
    """Hand the ingest service's own rejections (e.g. unknown devices) back to their messages."""
    for rejection in result.rejected:
        for verdict, _ in parts:
            if verdict.offset <= rejection.index < verdict.offset + verdict.count:
                local = rejection.index - verdict.offset
                verdict.rejected.append(rejection_body(rejection, index=local))
                verdict.valid -= 1
                break


def dead_letter_body(verdict: Verdict) -> bytes:
    """The dead letter: the API's `rejected` items (and `detail`), the topic and the payload."""
    body: dict[str, Any] = {
        "topic": verdict.message.topic,
        "valid": verdict.valid,
        "rejected": sorted(verdict.rejected, key=lambda item: item["index"]),
    }
    if verdict.detail:
        body["detail"] = verdict.detail
    try:
        body["payload"] = verdict.message.payload.decode()
    except UnicodeDecodeError:
        body["payloadBase64"] = base64.b64encode(verdict.message.payload).decode()
    return json.dumps(body).encode()


# --- the consumer --------------------------------------------------------------------------------


class MqttConsumer:
    """Consume readings from the broker until `stop()`; then flush, commit, ack and disconnect."""

    def __init__(self, config: ConsumerConfig):
        self.config = config
        self._inbox: queue.Queue[Received] = queue.Queue()
        self._stop = threading.Event()
        self._ack_lock = threading.Lock()
        self._connection = 0
        self._connected = threading.Event()
        self._oldest_pending: float | None = None
        self._limits = Limits.from_settings()
        self._client = self._make_client()

    def stop(self) -> None:
        self._stop.set()

    # paho callbacks: the network thread -------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        broker = self.config.broker
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.error(
                "mqtt broker %s refused the connection: %s", self.config.broker, reason_code
            )
            return
        logger.info(
            "mqtt connected to %s as %s (session present: %s)",
            self.config.broker,
            self.config.client_id,
            flags.session_present,
        )
        client.subscribe(
            [(topic, SubscribeOptions(qos=1)) for topic in self.config.subscriptions()]
        )
        CONNECTED.set(1)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._ack_lock:
            self._connection += 1
        self._connected.clear()
        CONNECTED.set(0)
        if not self._stop.is_set():
            logger.warning(
                "mqtt disconnected from %s (%s); reconnecting", self.config.broker, reason_code
            )

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(
            Received(
                topic=message.topic,
                payload=message.payload,
                mid=message.mid,
                qos=message.qos,
                dup=bool(message.dup),
                connection=self._connection,
                at=time.monotonic(),
            )
        )

    # the consuming thread --------------------------------------------------------------------

    def run(self) -> None:
        """Consume until `stop()`; the broker connection is retried with backoff meanwhile."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.config.session_expiry_seconds
        # The broker may send this many unacknowledged messages: room for the batch being
        # committed and the next ones, so the stream keeps flowing during a commit.
        properties.ReceiveMaximum = min(65535, max(100, 4 * self.config.batch_size))
        self._client.connect_async(
            self.config.broker.host,
            self.config.broker.port,
            keepalive=30,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()
        try:
            while not self._stop.is_set():
                batch = self._gather()
                if batch:
                    self._flush(batch)
            # Shutdown: what has arrived is stored and acknowledged before disconnecting.
            batch = self._drain()
            if batch:
                self._flush(batch)
        finally:
            properties = None
            if self.config.end_session:
                properties = Properties(PacketTypes.DISCONNECT)
                properties.SessionExpiryInterval = 0
            self._client.disconnect(properties=properties)
            network_loop_stop(self._client)
            CONNECTED.set(0)

    def _gather(self) -> list[tuple[Verdict, ParsedReadings | None]]:
        """Messages until the batch holds `batch_size` readings or its oldest is `flush_seconds`
        old; each is validated on arrival (a message is never split)."""
        batch: list[tuple[Verdict, ParsedReadings | None]] = []
        readings = 0
        deadline = None
        while not self._stop.is_set():
            timeout = 0.1 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                message = self._inbox.get(timeout=min(timeout, 0.1))
            except queue.Empty:
                self._update_lag()
                if deadline is not None and time.monotonic() >= deadline:
                    break
                continue
            if not batch:
                deadline = message.at + self.config.flush_seconds
                self._oldest_pending = message.at
            verdict, parsed = message_parse(message, now=timezone.now(), limits=self._limits)
            batch.append((verdict, parsed))
            readings += verdict.count
            if readings >= self.config.batch_size:
                break
        return batch

    def _drain(self) -> list[tuple[Verdict, ParsedReadings | None]]:
        batch = []
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return batch
            batch.append(message_parse(message, now=timezone.now(), limits=self._limits))

    def _update_lag(self) -> None:
        oldest = self._oldest_pending
        LAG_SECONDS.set(0 if oldest is None else time.monotonic() - oldest)

    def _flush(self, batch: list[tuple[Verdict, ParsedReadings | None]]) -> None:
        started = time.monotonic()
        verdicts = [verdict for verdict, _ in batch]
        parts = [(v, parsed) for v, parsed in batch if parsed is not None and v.valid]
        REDELIVERED.inc(sum(1 for v in verdicts if v.message.dup))
        if not self._store(parts):
            return  # stopped during a database outage: nothing acknowledged, all redelivered
        confirmed = self._dead_letter([v for v in verdicts if v.refused])
        self._acknowledge(verdicts, confirmed)
        for verdict in verdicts:
            outcome = "skipped" if verdict.skipped else "rejected" if verdict.refused else "stored"
            MESSAGES.labels(outcome=outcome).inc()
        self._oldest_pending = None
        self._update_lag()
        BATCH_SECONDS.observe(time.monotonic() - started)
        logger.info(
            "mqtt batch messages=%d readings=%d refused=%d ms=%.1f",
            len(verdicts),
            sum(v.count for v in verdicts),
            sum(1 for v in verdicts if v.refused),
            (time.monotonic() - started) * 1000,
        )

    def _store(self, parts: list[tuple[Verdict, ParsedReadings]]) -> bool:
        """Store the valid readings of `parts` with one ingest call; False if stopped meanwhile.

        When the call fails on the data itself (not the database being away), the messages are
        stored one by one and the one that fails is refused, so a poison message cannot block the
        stream. Other errors (a schema out of date, a bug) stop the consumer unacknowledged.
        """
        if not parts:
            return True
        try:
            result = self._ingest(batch_combine(parts))
        except _DATA_ERRORS as error:
            if len(parts) > 1:
                return all(self._store([part]) for part in parts)
            verdict = parts[0][0]
            logger.exception("mqtt message on %s could not be stored", verdict.message.topic)
            verdict.detail = f"The readings could not be stored: {error}"
            verdict.valid = 0
            return True
        if result is None:
            return False
        verdicts_apply(parts, result)
        LAST_COMMIT.set(time.time())
        return True

    def _ingest(self, parsed: ParsedReadings) -> IngestResult | None:
        """One call of the ingest service; while the database is away, back off and retry.

        Only connection errors are retried: any other error stops the consumer unacknowledged
        (redelivery), so a bug never dead-letters good readings. Asked to stop during an outage,
        it tries once more and then leaves the batch to redelivery (None).
        """
        delay = 0.5
        while True:
            if not connection.in_atomic_block:  # (a caller's transaction: tests)
                close_old_connections()  # a broken or too old connection is replaced here
            try:
                return readings_ingest(parsed=parsed, api_key=None)
            except (OperationalError, InterfaceError) as error:
                DATABASE_RETRIES.inc()
                logger.warning(
                    "mqtt batch not stored, database unavailable (%s); retry in %.1f s",
                    str(error).strip(),
                    delay,
                )
                connection.close()
                self._update_lag()
                if self._stop.is_set():
                    return None
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def _dead_letter(self, refused: list[Verdict]) -> set[int]:
        """Publish the dead letters (QoS 1); the ids of the messages whose letter was confirmed."""
        sent = []
        for verdict in refused:
            info = self._client.publish(
                dead_letter_topic(verdict.message.topic), dead_letter_body(verdict), qos=1
            )
            sent.append((verdict, info))
        confirmed = set()
        deadline = time.monotonic() + 10
        for verdict, info in sent:
            # Not connected: paho keeps the letter and resends it after reconnecting.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
            if info.is_published():
                confirmed.add(id(verdict))
            else:
                logger.warning(
                    "mqtt dead letter for %s not confirmed; the message will be redelivered",
                    verdict.message.topic,
                )
        return confirmed

    def _acknowledge(self, verdicts: list[Verdict], confirmed: set[int]) -> None:
        with self._ack_lock:
            for verdict in verdicts:
                message = verdict.message
                if message.qos == 0 or message.connection != self._connection:
                    continue  # an earlier connection's message: the broker redelivers it
                if verdict.refused and id(verdict) not in confirmed:
                    continue
                self._client.ack(message.mid, message.qos)


def metrics_serve(*, port: int, addr: str = "0.0.0.0") -> None:
    """Serve this process's metrics (the HTTP path's counters and the consumer's) for Prometheus.

    With PROMETHEUS_MULTIPROC_DIR set, every process writing there is summed, as at /metrics.
    """
    registry = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=addr, **({"registry": registry} if registry else {}))
