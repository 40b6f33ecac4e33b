from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from telemetry.partitions import partitioning_enabled
from telemetry.upkeep import partitions_upkeep


class Command(BaseCommand):
    help = (
        "Create the daily history partitions for today and --ahead days (UTC), and drop those "
        "older than --drop-older-than days together with those days' hourly rollups (retention). "
        "Run daily from cron; re-running is safe (existing partitions are kept, dropped ones are "
        "gone). --dry-run lists what it would do. PostgreSQL only; elsewhere it says so, exits 0."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--ahead",
            type=int,
            default=None,
            help="Days to create ahead of today (default TELEMETRY_PARTITIONS_AHEAD_DAYS).",
        )
        parser.add_argument(
            "--drop-older-than",
            type=int,
            default=None,
            metavar="DAYS",
            help="Drop partitions of days before today − DAYS (default TELEMETRY_RETENTION_DAYS).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be created and dropped."
        )

    def handle(self, *args, ahead, drop_older_than, dry_run, **options):
        ahead = settings.TELEMETRY_PARTITIONS_AHEAD_DAYS if ahead is None else ahead
        if drop_older_than is None:
            drop_older_than = settings.TELEMETRY_RETENTION_DAYS
        if ahead < 0:
            raise CommandError("--ahead must be 0 or more.")
        if drop_older_than < 1:
            raise CommandError("--drop-older-than must be at least 1 day.")
        if not partitioning_enabled():
            self.stdout.write(
                "manage_partitions: partitions are a PostgreSQL feature; this database "
                "keeps history in plain tables. Nothing to do."
            )
            return
        result = partitions_upkeep(
            ahead_days=ahead, retention_days=drop_older_than, dry_run=dry_run
        )
        verb_create, verb_drop = (
            ("would create", "would drop") if dry_run else ("created", "dropped")
        )
        for day in result.created:
            self.stderr.write(f"{verb_create} partitions of {day.isoformat()}")
        for partition in result.dropped:
            self.stderr.write(f"{verb_drop} {partition.table}")
        self.stdout.write(
            f"manage_partitions{' (dry run)' if dry_run else ''}: days {verb_create} "
            f"{len(result.created)}, partitions {verb_drop} {len(result.dropped)}, rollup rows "
            f"{'to delete' if dry_run else 'deleted'} {result.rollup_rows_deleted}"
        )
