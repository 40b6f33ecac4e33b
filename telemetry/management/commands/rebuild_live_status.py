import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fleet.models import Meter, Vehicle
from telemetry.upkeep import live_status_rebuild


class Command(BaseCommand):
    help = (
        "Recompute every device's live status row from its newest history row, in chunks of "
        "devices (one transaction each). A repair tool: ingestion keeps live rows current, so run "
        "it only after a restore or a manual edit. Re-running is safe: rows that already match "
        "are left alone."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=1000,
            help="Devices per transaction (default 1000).",
        )

    def handle(self, *args, chunk_size, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        total = Meter.objects.count() + Vehicle.objects.count()
        bar = tqdm(
            file=options.get("stderr") or sys.stderr,
            total=total,
            unit=" devices",
            unit_scale=True,
            desc="live status",
        )
        try:
            result = live_status_rebuild(chunk_size=chunk_size, on_chunk=bar.update)
        except KeyboardInterrupt:
            raise CommandError("Interrupted; finished chunks are kept. Re-run to finish.") from None
        finally:
            bar.close()
        rate = result.devices / result.seconds if result.seconds else 0
        self.stdout.write(
            f"rebuild_live_status: devices {result.devices}, live rows repaired {result.repaired}, "
            f"{result.seconds:.1f} s, {rate:,.0f} devices/s"
        )
