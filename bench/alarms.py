"""Benchmark of `evaluate_alarms`: one evaluation of a whole fleet, beside the figures read alone.

    python bench/alarms.py                      # 10,000 vehicles, 24 h of history every 5 min
    python bench/alarms.py --vehicles 1000      # a quick look

It recreates the database BENCH_ALARMS_DATABASE_URL (default .../energy_bench_alarms), writes the
fleet with `simulate_fleet` (mapped vehicles and meters, a share faulty, a few meter swaps), adds
one webhook endpoint (so every alarm change also writes its outbox row), then times:

- the figures statement alone (`fleet_vehicle_figures`): the floor under any evaluation;
- the first evaluation (opens the fleet's alarms and their deliveries);
- the steady state (nothing changes; every active alarm's latest figures are refreshed);
- a worst case: every device silent (evaluated 20 min after the last reading), so every mapped
  vehicle and meter opens DEVICE_OFFLINE at once.

Each timing is the median of --runs runs (the first evaluation and the worst case run once).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def recreate(url: str) -> None:
    admin_url, name = url.rsplit("/", 1)
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def timed(function, runs: int) -> tuple[float, list[float], object]:
    seconds, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--interval", type=int, default=300, help="seconds between readings")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--reuse", action="store_true", help="keep an earlier run's fleet (its alarms are deleted)"
    )
    args = parser.parse_args()

    url = os.environ.get(
        "BENCH_ALARMS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/energy_bench_alarms"
    )
    if not args.reuse:
        recreate(url)
    os.environ.update(DATABASE_URL=url, SECRET_KEY=os.environ.get("SECRET_KEY", "bench-only"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energy.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from alarms.models import Alarm
    from alarms.services import alarms_evaluate
    from analytics.selectors import fleet_vehicle_figures, fleet_window
    from fleet.models import Vehicle
    from notifications.models import Delivery, WebhookEndpoint
    from telemetry.models import MeterHourly, VehicleHourly, VehicleStatus

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    if args.reuse:
        Delivery.objects.all().delete()
        Alarm.objects.all().delete()
    else:
        call_command(
            "simulate_fleet",
            vehicles=args.vehicles,
            hours=args.hours,
            interval=args.interval,
            seed=7,
            stderr=open(os.devnull, "w"),  # noqa: SIM115 - tqdm's bar, not wanted here
        )
        WebhookEndpoint.objects.create(
            url="http://127.0.0.1:9/bench", secret="bench-secret-16chars"
        )
    load_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    last_reading = VehicleStatus.objects.order_by("-recorded_at").first().recorded_at
    now = last_reading + timedelta(minutes=1)
    start, end = fleet_window(hours=settings.ALARM_WINDOW_HOURS, now=now)

    figures_s, figures_runs, figures = timed(
        lambda: fleet_vehicle_figures(
            start=start,
            end=end,
            threshold=settings.ANALYTICS_FAULT_THRESHOLD_PCT,
            min_charge_kwh=1.0,
        ),
        args.runs,
    )
    first_s, _, first = timed(lambda: alarms_evaluate(now=now), 1)
    steady_s, steady_runs, steady = timed(lambda: alarms_evaluate(now=now), args.runs)
    silent_at = last_reading + timedelta(minutes=20)
    worst_s, _, worst = timed(lambda: alarms_evaluate(now=silent_at), 1)

    vehicles = Vehicle.objects.count()
    print(f"fleet: {vehicles:,} vehicles and meters, {args.hours} h every {args.interval} s")
    print(
        f"       loaded in {load_seconds:.0f} s; rollup rows: {MeterHourly.objects.count():,} "
        f"meter + {VehicleHourly.objects.count():,} vehicle"
    )
    print(
        f"       evaluated at {now:%Y-%m-%d %H:%M:%S}Z over {start:%H:%M}–{end:%H:%M} "
        f"({settings.ALARM_WINDOW_HOURS} h)"
    )
    print(
        f"figures statement alone      {figures_s:7.3f} s  {len(figures):,} vehicles  "
        f"runs {[round(s, 3) for s in figures_runs]}"
    )
    print(
        f"first evaluation             {first_s:7.3f} s  opened {first.opened}, "
        f"{first.deliveries:,} deliveries"
    )
    print(
        f"steady state (no change)     {steady_s:7.3f} s  {steady.active:,} active refreshed  "
        f"runs {[round(s, 3) for s in steady_runs]}"
    )
    print(
        f"every device silent          {worst_s:7.3f} s  opened {worst.opened}, "
        f"{worst.deliveries:,} deliveries"
    )
    print(
        f"target: well under 10 s at 10,000 vehicles; alarms {Alarm.objects.count():,}, "
        f"deliveries {Delivery.objects.count():,}"
    )
    print(f"load average (1, 5, 15 min) on {os.cpu_count()} CPUs: {os.getloadavg()}")


if __name__ == "__main__":
    main()
