import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from telemetry import simulation
from telemetry.bulk import DEFAULT_CHUNK_SIZE, readings_import
from telemetry.files import ImportFileError, file_format
from telemetry.management.options import aware_datetime


class Command(BaseCommand):
    help = (
        "Simulate a fleet: N vehicles charging through N meters (mapped, a few reassigned "
        "half-way, a share of them faulty, a share parked; from 8 vehicles a faulty charger "
        "serving two vehicles, a faulty vehicle on two meters, a meter going silent and an "
        "anomaly) for H hours, written to the database or to an "
        "NDJSON/CSV file for import_telemetry. For demos and benchmarks, run on demand; the same "
        "--seed and --start give the same readings, and re-running into the database is safe "
        "(nothing is stored twice)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--vehicles", type=int, required=True, help="Vehicles (and meters).")
        parser.add_argument("--hours", type=float, required=True, help="Hours of history.")
        parser.add_argument(
            "--interval", type=int, default=60, help="Seconds between readings (default 60)."
        )
        parser.add_argument(
            "--fault-share",
            type=float,
            default=0.05,
            help="Share of vehicles charging below 85 %% efficiency (default 0.05).",
        )
        parser.add_argument(
            "--idle-share",
            type=float,
            default=0.2,
            help="Share of vehicles parked all along: standby draw, no DC (default 0.2).",
        )
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1).")
        parser.add_argument(
            "--start",
            help="First reading's time, ISO 8601 with offset (default: now − hours, aligned).",
        )
        parser.add_argument(
            "--out",
            type=Path,
            metavar="FILE",
            help="Write FILE.ndjson / FILE.csv (optionally .gz) and FILE's .mappings.csv instead "
            "of the database.",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=DEFAULT_CHUNK_SIZE,
            help=f"Readings per transaction when writing to the database (default "
            f"{DEFAULT_CHUNK_SIZE}).",
        )

    def handle(self, *args, vehicles, hours, interval, fault_share, seed, start, out, **options):
        chunk_size = options["chunk_size"]
        idle_share = options["idle_share"]
        if not 0 <= idle_share <= 1:
            raise CommandError("--idle-share is a share between 0 and 1 (0.2 = 20 %).")
        if vehicles < 1:
            raise CommandError("--vehicles must be at least 1.")
        if hours <= 0:
            raise CommandError("--hours must be positive.")
        if not 1 <= interval <= 86_400:
            raise CommandError("--interval is between 1 and 86400 seconds.")
        if not 0 <= fault_share <= 1:
            raise CommandError("--fault-share is a share between 0 and 1 (0.05 = 5 %).")
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        now = timezone.now()
        if start is None:
            first = simulation.default_start(hours=hours, interval_seconds=interval, now=now)
        else:
            first = aware_datetime("--start", start)
        if int(hours * 3600) < interval:
            raise CommandError("--hours must cover at least one --interval.")
        plan = simulation.fleet_plan(
            vehicles=vehicles,
            hours=hours,
            interval_seconds=interval,
            fault_share=fault_share,
            seed=seed,
            start=first,
            idle_share=idle_share,
        )
        last = plan.timestamp(plan.steps - 1)
        if last > now + timedelta(seconds=settings.TELEMETRY_MAX_FUTURE_SECONDS):
            raise CommandError(
                f"The last reading ({last.isoformat()}) would be in the future; choose an earlier "
                "--start or fewer --hours."
            )
        progress_stream = options.get("stderr") or sys.stderr
        self.stderr.write(
            f"Fleet: {vehicles} vehicles, {len(plan.faulty)} faulty, {len(plan.idle)} parked, "
            f"faulty charger {plan.faulty_charger or '-'} (serving "
            f"{' then '.join(plan.faulty_charger_vehicles) or '-'}), faulty vehicle on two meters "
            f"{plan.two_meter_vehicle or '-'}, silent meter {plan.silent_meter or '-'}, anomaly "
            f"{plan.anomaly_vehicle or '-'}; "
            f"{len(plan.swapped_pairs)} pairs swapping meters at "
            f"{plan.timestamp(plan.swap_step).isoformat() if plan.swapped_pairs else '-'}; "
            f"{plan.steps} intervals from {first.isoformat()}, ~{plan.reading_count:,} readings."
        )
        bar = tqdm(
            file=progress_stream,
            total=plan.reading_count,
            unit=" rows",
            unit_scale=True,
            desc="simulate",
            mininterval=1,
        )
        try:
            if out is not None:
                self._to_file(plan, out, bar)
            else:
                self._to_database(plan, chunk_size, bar)
        except KeyboardInterrupt:
            raise CommandError(
                "Interrupted; committed chunks are kept. Re-run with the same --seed and --start "
                f"({first.isoformat()}) to finish."
            ) from None
        finally:
            bar.close()

    def _to_file(self, plan, out: Path, bar) -> None:
        try:
            file_format(out)
        except ImportFileError:
            raise CommandError("--out must end in .ndjson, .csv, .ndjson.gz or .csv.gz.") from None
        if not out.parent.is_dir():
            raise CommandError(f"--out: the directory {out.parent} does not exist.")
        started = datetime.now(UTC)
        written = simulation.simulation_write_file(plan=plan, path=out, on_batch=bar.update)
        mappings = _mappings_path(out)
        simulation.simulation_mappings_csv(plan=plan, path=mappings)
        seconds = (datetime.now(UTC) - started).total_seconds()
        bar.close()
        self.stderr.write(
            f"Load it with: manage.py import_mappings {mappings} && "
            f"manage.py import_telemetry {out}"
        )
        self.stdout.write(
            f"simulate_fleet: rows written {written} to {out}, mappings "
            f"{len(plan.assignments)} to {mappings}, {seconds:.1f} s, "
            f"{written / seconds if seconds else 0:,.0f} rows/s"
        )

    def _to_database(self, plan, chunk_size: int, bar) -> None:
        mappings = simulation.simulation_mappings_apply(plan=plan)
        for line, message in mappings.errors:
            self.stderr.write(f"mapping {line}: {message}")
        result = readings_import(
            chunks=simulation.simulation_chunks(plan, chunk_size=chunk_size),
            on_chunk=lambda chunk: bar.update(chunk.rows_read),
        )
        bar.close()
        self.stdout.write(
            f"simulate_fleet: mappings assigned {mappings.assigned}, unchanged "
            f"{mappings.unchanged}, failed {len(mappings.errors)}; {result.summary()}"
        )


def _mappings_path(out: Path) -> Path:
    name = out.name
    for suffix in (".gz", ".ndjson", ".jsonl", ".json", ".csv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return out.with_name(f"{name}.mappings.csv")
