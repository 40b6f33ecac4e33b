import math
import zlib
from datetime import datetime

from django.core.management.base import CommandError
from django.utils import timezone

from alarms.management.looping import LoopCommand
from fleet.models import MeterAssignment
from telemetry.schemas import ReadingLimits, readings_parse
from telemetry.services import readings_ingest

CHARGER_KW = 7.0


def _profile(vehicle_id: str) -> tuple[float, int]:
    """A vehicle's charging efficiency (one in five below 85 %) and SoC phase, fixed by its id."""
    seed = zlib.crc32(vehicle_id.encode())
    efficiency = 0.72 + (seed % 8) / 100 if seed % 5 == 0 else 0.89 + (seed % 5) / 100
    return efficiency, seed % 80


def live_payloads(*, pairs: list[tuple[str, str]], now: datetime, interval_s: float) -> list[dict]:
    """One meter reading and one vehicle reading per (vehicle, meter) pair at `now`: the energy
    of `interval_s` seconds on a 7 kW charger, DC at the vehicle's efficiency, SoC climbing 20 →
    100 % and starting over, a battery temperature that swings between 26 and 38 °C."""
    at = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    ac_kwh = round(CHARGER_KW * interval_s / 3600, 4)
    minute = int(now.timestamp() // 60)
    payloads = []
    for vehicle_id, meter_id in pairs:
        efficiency, phase = _profile(vehicle_id)
        payloads.append(
            {"meterId": meter_id, "kwhConsumedAc": ac_kwh, "voltage": 230.0, "timestamp": at}
        )
        payloads.append(
            {
                "vehicleId": vehicle_id,
                "kwhDeliveredDc": round(ac_kwh * efficiency, 4),
                "soc": 20 + (minute + phase) % 81,
                "batteryTemp": round(32 + 6 * math.sin((minute + phase) / 30), 1),
                "timestamp": at,
            }
        )
    return payloads


class Command(LoopCommand):
    help = (
        "Make the first N mapped vehicles and their meters report once now (for a demo that stays "
        "live: run with --loop 60 beside the server, as scripts/demo does). Readings go through "
        "the ingest service, as the API's would; a re-run adds the next minute's readings."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--vehicles", type=int, default=20, help="How many vehicles report.")

    def handle(self, *args, vehicles: int, loop: float | None = None, **options):
        if vehicles < 1:
            raise CommandError("--vehicles takes a number of vehicles of at least 1.")
        self.vehicles = vehicles
        self.interval_s = loop or 60.0
        super().handle(*args, loop=loop, **options)

    def run_once(self) -> str:
        pairs = list(
            MeterAssignment.objects.current()
            .order_by("vehicle__vehicle_id")
            .values_list("vehicle__vehicle_id", "meter__meter_id")[: self.vehicles]
        )
        if not pairs:
            return "no vehicle has a meter assigned: nothing to report"
        now = timezone.now()
        parsed = readings_parse(
            live_payloads(pairs=pairs, now=now, interval_s=self.interval_s),
            now=now,
            limits=ReadingLimits.of(now=now),
        )
        result = readings_ingest(parsed=parsed, api_key=None)
        return f"{now:%H:%M:%S} {len(pairs)} vehicles reported: {result.accepted} readings accepted"
