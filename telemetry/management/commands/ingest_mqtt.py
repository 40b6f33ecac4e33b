import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from telemetry.mqtt import ConsumerConfig, MqttConsumer, broker_parse, metrics_serve

logger = logging.getLogger("telemetry.mqtt")


class Command(BaseCommand):
    help = (
        "Consume readings from the MQTT broker (QoS 1, persistent session, shared subscription) "
        "and store them through the ingest service, acknowledging each batch after it commits. "
        "Runs until SIGTERM or SIGINT (then flushes, commits, acknowledges and disconnects); "
        "restarting it is safe: unacknowledged messages are redelivered and stored once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--broker", default=None, help="mqtt://[user:password@]host[:port] (default MQTT_URL)."
        )
        parser.add_argument(
            "--topic",
            action="append",
            default=None,
            help="Topic filter to consume (repeatable; default telemetry/#).",
        )
        parser.add_argument(
            "--batch", type=int, default=1000, help="Readings per batch at most (default 1000)."
        )
        parser.add_argument(
            "--flush-ms",
            type=int,
            default=200,
            help="Store a batch at the latest this long after its first message (default 200).",
        )
        parser.add_argument(
            "--client-id", default=None, help="MQTT client id (default MQTT_CLIENT_ID)."
        )
        parser.add_argument(
            "--share-group",
            default=None,
            help="Shared-subscription group (default MQTT_SHARE_GROUP; '' for none).",
        )

        parser.add_argument(
            "--end-session",
            action="store_true",
            help="On shutdown, end the persistent session (retiring this consumer for good).",
        )

    def handle(
        self, *args, broker, topic, batch, flush_ms, client_id, share_group, end_session, **options
    ):
        try:
            address = broker_parse(broker or settings.MQTT_URL)
        except ValueError as error:
            raise CommandError(f"--broker: {error}") from None
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        if flush_ms < 1:
            raise CommandError("--flush-ms must be at least 1.")
        config = ConsumerConfig(
            broker=address,
            topics=tuple(topic or ["telemetry/#"]),
            share_group=settings.MQTT_SHARE_GROUP if share_group is None else share_group,
            client_id=client_id or settings.MQTT_CLIENT_ID,
            batch_size=batch,
            flush_seconds=flush_ms / 1000,
            session_expiry_seconds=settings.MQTT_SESSION_EXPIRY_SECONDS,
            end_session=end_session,
        )
        if settings.MQTT_METRICS_PORT:
            metrics_serve(port=settings.MQTT_METRICS_PORT)
        consumer = MqttConsumer(config)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: consumer.stop())
        logger.info(
            "ingest_mqtt consuming %s from %s as %s",
            ", ".join(config.subscriptions()),
            address,
            config.client_id,
        )
        consumer.run()
        self.stdout.write("ingest_mqtt stopped after flushing and acknowledging.")
