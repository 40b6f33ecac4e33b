from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from fleet.models import device_id_validator
from telemetry.broker_auth import broker_credentials_write
from telemetry.mqtt import broker_parse


class Command(BaseCommand):
    help = (
        "Write Mosquitto's password file and ACL file for every registered meter and vehicle "
        "(username = device id; each may publish only under its own id), the consumer and any "
        "gateways. New passwords are written once to DIR/new-credentials-<time>.csv. Re-run after "
        "registering devices: existing passwords are kept (--rotate replaces them all), deleted "
        "devices are removed; then reload the broker (SIGHUP). When MQTT_URL carries the "
        "consumer's username and password, that password is the consumer's."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, type=Path, help="Directory for the files.")
        parser.add_argument(
            "--consumer",
            default="telemetry-consumer",
            help="Username of the ingest consumer (default telemetry-consumer).",
        )
        parser.add_argument(
            "--gateway",
            action="append",
            default=[],
            help="Username allowed to publish to telemetry/ingest (repeatable).",
        )
        parser.add_argument("--rotate", action="store_true", help="Give every user a new password.")

    def handle(self, *args, out: Path, consumer: str, gateway: list[str], rotate: bool, **options):
        for name in [consumer, *gateway]:
            try:
                device_id_validator(name)
            except ValidationError as error:
                raise CommandError(f"{name!r}: {error.messages[0]}") from None
        broker = broker_parse(settings.MQTT_URL)
        given = broker.password if broker.username == consumer else None
        try:
            result = broker_credentials_write(
                out_dir=out,
                consumer=consumer,
                gateways=gateway,
                rotate=rotate,
                consumer_password=given,
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        if result.shared_ids:
            self.stderr.write(
                f"warning: {result.shared_ids} ids are both a meter and a vehicle; "
                "each such pair shares one broker user."
            )
        if result.new_credentials_file:
            self.stderr.write(f"New passwords (shown nowhere else): {result.new_credentials_file}")
        self.stdout.write(
            f"mqtt_credentials users={result.created + result.kept} created={result.created} "
            f"kept={result.kept} removed={result.removed} "
            f"password_file={result.password_file} acl_file={result.acl_file}"
        )
