from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from fleet.models import device_id_validator
from telemetry.services import api_key_create


class Command(BaseCommand):
    help = (
        "Issue a device API key and print it once (only its hash is stored). Run once per device "
        "or gateway; re-running issues another key, it never changes an existing one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="What the key is for (50 chars max).")
        parser.add_argument(
            "--device",
            default="",
            help="Vehicle or meter id this key may write for (default: any).",
        )

    def handle(self, *args, name: str, device: str, **options):
        if len(name) > 50:
            raise CommandError("--name is at most 50 characters.")
        if device:
            try:
                device_id_validator(device)
            except ValidationError as error:
                raise CommandError(f"--device {device!r}: {error.messages[0]}") from None
        api_key, key = api_key_create(name=name, device_id=device)
        scope = f"device {device}" if device else "any device"
        self.stderr.write(f"Created key {api_key.prefix!r} ({name}) for {scope}. It is shown once:")
        self.stdout.write(key)
