from alarms.management.looping import LoopCommand
from notifications.services import notifications_deliver


class Command(LoopCommand):
    help = (
        "POST the queued alarm notifications to their webhook endpoints (signed, retried with "
        "backoff, NOTIFY_MAX_ATTEMPTS at most). Run it continuously with --loop 5; several "
        "workers may run at once, and a re-run never loses a delivery."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--batch", type=int, default=100, help="Deliveries one round takes (default 100)."
        )

    def handle(self, *args, batch: int = 100, **options) -> None:
        self.batch = max(1, batch)
        super().handle(*args, **options)

    def run_once(self) -> str:
        """Rounds of --batch deliveries until one finds fewer due: a backlog drains at once."""
        totals = dict.fromkeys(("claimed", "delivered", "retrying", "failed"), 0)
        while True:
            run = notifications_deliver(limit=self.batch)
            for name in totals:
                totals[name] += getattr(run, name)
            if run.claimed < self.batch:
                break
        return (
            f"{totals['claimed']} deliveries attempted: {totals['delivered']} delivered, "
            f"{totals['retrying']} to retry, {totals['failed']} failed"
        )
