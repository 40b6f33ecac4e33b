from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from fleet.models import Vehicle
from telemetry.models import DeviceAPIKey
from telemetry.services import api_key_create

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"


class Command(BaseCommand):
    help = (
        "Prepare a demo: an admin login (admin/admin), a DRF token, a device API key and, on an "
        "empty database, a small simulated fleet. For the README's first command, never for "
        "production. Re-running keeps the fleet and, with --key-file, the device key (a new key "
        "replaces the demo's old ones only when the file is lost)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--vehicles", type=int, default=20)
        parser.add_argument("--hours", type=int, default=6)
        parser.add_argument(
            "--key-file",
            help="Keep the demo's device key in this file (git-ignored db/): reused while valid.",
        )

    def handle(self, *args, vehicles: int, hours: int, key_file: str | None = None, **options):
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        token, _ = Token.objects.get_or_create(user=user)
        if not Vehicle.objects.exists():
            call_command(
                "simulate_fleet", vehicles=vehicles, hours=hours, seed=1, stdout=self.stderr
            )
        key = _demo_key(key_file)
        # The example calls name a vehicle that reports: mapped, with a reading.
        reporting = Vehicle.objects.filter(
            status__isnull=False, assignments__valid_to__isnull=True
        ).order_by("vehicle_id")
        vehicle = reporting.first() or Vehicle.objects.order_by("vehicle_id").first()
        self.stdout.write(f"DEMO_ADMIN={DEMO_USERNAME}/{DEMO_PASSWORD}")
        self.stdout.write(f"DEMO_TOKEN={token.key}")
        self.stdout.write(f"DEMO_API_KEY={key}")
        self.stdout.write(f"DEMO_VEHICLE={vehicle}")


DEMO_KEY_NAME = "demo gateway"


def _demo_key(key_file: str | None) -> str:
    """The key kept in `key_file` while it is valid; else a new one, replacing the demo's old
    keys (their text is lost with the file), so re-running the demo piles up no keys."""
    path = Path(key_file) if key_file else None
    if path is not None and path.exists():
        kept = path.read_text().strip()
        if kept and DeviceAPIKey.objects.is_valid(kept):
            return kept
    DeviceAPIKey.objects.filter(name=DEMO_KEY_NAME).delete()
    _, key = api_key_create(name=DEMO_KEY_NAME)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key + "\n")
        path.chmod(0o600)
    return key
