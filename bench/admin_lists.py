"""The vehicle and meter admin lists at 100,000 devices: time and query count of each page.

    DATABASE_URL=postgres://…/energy_admin python bench/admin_lists.py
    DATABASE_URL=… python bench/admin_lists.py --vehicles 10000 --runs 3

Fills the (migrated) database of DATABASE_URL, if it holds fewer vehicles, up to --vehicles
vehicles and as many meters, each vehicle mapped to its meter, with a live status per device
(a tenth of them stale), 24 hourly rollups per device for the first 1,000 vehicles and meters, and
an open alarm on every tenth vehicle; then requests the lists (plain and with each filter) through
Django's test client as a superuser and prints, per list, the median time of --runs requests and
the number of SQL statements. Rows it writes carry ids starting `BENCH-`; a re-run reuses them.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energy.settings")
os.environ.setdefault("SECRET_KEY", "bench")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

# No `collectstatic` here: resolve static URLs without the manifest it would write.
settings.STORAGES = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from alarms.models import Alarm, AlarmSubject, AlarmType  # noqa: E402
from fleet.models import Meter, MeterAssignment, Vehicle  # noqa: E402
from telemetry.models import MeterHourly, MeterStatus, VehicleHourly, VehicleStatus  # noqa: E402

BATCH = 10_000


def fill(count: int) -> None:
    now = timezone.now()
    have = Vehicle.objects.filter(vehicle_id__startswith="BENCH-").count()
    if have >= count:
        return
    for first in range(have, count, BATCH):
        numbers = range(first, min(first + BATCH, count))
        vehicles = Vehicle.objects.bulk_create(
            [Vehicle(vehicle_id=f"BENCH-V-{n:06}") for n in numbers]
        )
        meters = Meter.objects.bulk_create([Meter(meter_id=f"BENCH-M-{n:06}") for n in numbers])
        MeterAssignment.objects.bulk_create(
            [
                MeterAssignment(vehicle=v, meter=m, valid_from=now - timedelta(days=30))
                for v, m in zip(vehicles, meters, strict=True)
            ]
        )
        received = [now - timedelta(hours=1) if n % 10 == 0 else now for n in numbers]
        VehicleStatus.objects.bulk_create(
            [
                VehicleStatus(
                    device=v,
                    recorded_at=at,
                    received_at=at,
                    energy_kwh=0.5,
                    soc_pct=60,
                    battery_temp_c=30,
                )
                for v, at in zip(vehicles, received, strict=True)
            ]
        )
        MeterStatus.objects.bulk_create(
            [
                MeterStatus(device=m, recorded_at=at, received_at=at, energy_kwh=0.6, voltage_v=230)
                for m, at in zip(meters, received, strict=True)
            ]
        )
        Alarm.objects.bulk_create(
            [
                Alarm(type=AlarmType.LOW_EFFICIENCY, subject=AlarmSubject.VEHICLE, vehicle=v)
                for n, v in zip(numbers, vehicles, strict=True)
                if n % 10 == 0
            ]
        )
        if first < 1000:
            hours = [
                now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=h)
                for h in range(1, 25)
            ]
            VehicleHourly.objects.bulk_create(
                VehicleHourly(
                    device=v, hour=h, energy_kwh=0.9, battery_temp_sum_c=300, reading_count=10
                )
                for v in vehicles[:1000]
                for h in hours
            )
            MeterHourly.objects.bulk_create(
                MeterHourly(device=m, hour=h, energy_kwh=1.0, reading_count=10)
                for m in meters[:1000]
                for h in hours
            )
        print(f"  {min(first + BATCH, count):,} vehicles", file=sys.stderr)


def measure(client: Client, url: str, runs: int) -> tuple[float, float, int, int]:
    """Median request time, median SQL time, statements and rows of the list at `url`."""
    timings, sql_timings = [], []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            timings.append(time.perf_counter() - started)
        sql_timings.append(sum(float(query["time"]) for query in queries))
        assert response.status_code == 200, (url, response.status_code)
    rows = len(response.context["cl"].result_list)
    return statistics.median(timings), statistics.median(sql_timings), len(queries), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    setup_test_environment()  # the test client's host, and response.context
    fill(args.vehicles)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    print(f"{Vehicle.objects.count():,} vehicles, {Meter.objects.count():,} meters")
    print(f"{'list':<48} {'request ms':>10} {'SQL ms':>7} {'queries':>7} {'rows':>5}")
    for url in (
        "/admin/fleet/vehicle/",
        "/admin/fleet/vehicle/?p=500",
        "/admin/fleet/vehicle/?q=BENCH-V-0999",
        "/admin/fleet/vehicle/?has_meter=no",
        "/admin/fleet/vehicle/?seen=stale",
        "/admin/fleet/vehicle/?open_alarm=LOW_EFFICIENCY",
        "/admin/fleet/meter/",
        "/admin/fleet/meter/?seen=live",
    ):
        seconds, sql_seconds, queries, rows = measure(client, url, args.runs)
        print(
            f"{url:<48} {seconds * 1000:>10.0f} {sql_seconds * 1000:>7.0f} {queries:>7} {rows:>5}"
        )


if __name__ == "__main__":
    main()
