from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from fleet.models import Vehicle
from telemetry.services import api_key_create

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"


class Command(BaseCommand):
    help = (
        "Prepare a demo: an admin login (admin/admin), a DRF token, a device API key and, on an "
        "empty database, a small simulated fleet. For the README's first command, never for "
        "production. Re-running keeps the fleet and prints a new device key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--vehicles", type=int, default=20)
        parser.add_argument("--hours", type=int, default=6)

    def handle(self, *args, vehicles: int, hours: int, **options):
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
        _, key = api_key_create(name="demo gateway")
        self.stdout.write(f"DEMO_ADMIN={DEMO_USERNAME}/{DEMO_PASSWORD}")
        self.stdout.write(f"DEMO_TOKEN={token.key}")
        self.stdout.write(f"DEMO_API_KEY={key}")
        self.stdout.write(f"DEMO_VEHICLE={Vehicle.objects.order_by('vehicle_id').first()}")
