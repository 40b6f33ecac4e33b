import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from api.times import hour_ceil, hour_floor
from telemetry.management.options import aware_datetime
from telemetry.upkeep import history_span, rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the hourly rollups of whole hours in [--since, --until) from history, one "
        "hour per transaction (default: every hour holding history or rollups). A repair tool: "
        "ingestion keeps rollups exact, so run it after a restore, a manual edit or a bug. "
        "Re-running is safe: each hour is replaced, never added to."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="First hour, ISO 8601 with offset (rounded down).")
        parser.add_argument("--until", help="End hour, ISO 8601 with offset (rounded up).")

    def handle(self, *args, since, until, **options):
        since_at = aware_datetime("--since", since)
        until_at = aware_datetime("--until", until)
        if since_at is not None and until_at is not None and since_at >= until_at:
            raise CommandError("--since must be before --until.")
        span = None
        if since_at is None or until_at is None:
            span = history_span()
        first = hour_floor(since_at) if since_at else span[0] if span else None
        end = hour_ceil(until_at) if until_at else span[1] if span else None
        if first is None or end is None or first >= end:
            self.stdout.write("rebuild_rollups: no history in range, nothing to do.")
            return
        hours = int((end - first).total_seconds() // 3600)
        bar = tqdm(
            file=options.get("stderr") or sys.stderr, total=hours, unit=" hours", desc="rollups"
        )
        try:
            result = rollups_rebuild(since=first, until=end, on_chunk=bar.update)
        except KeyboardInterrupt:
            raise CommandError("Interrupted; rebuilt hours are kept. Re-run to finish.") from None
        finally:
            bar.close()
        self.stdout.write(
            f"rebuild_rollups: hours {result.hours} ({result.since.isoformat()} to "
            f"{result.until.isoformat()}), rollup rows deleted {result.rows_deleted}, "
            f"written {result.rows_written}, {result.seconds:.1f} s"
        )
