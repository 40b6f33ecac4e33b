from alarms.management.looping import LoopCommand
from alarms.services import alarms_evaluate


class Command(LoopCommand):
    help = (
        "Open and clear alarms (LOW_EFFICIENCY, ANOMALY, DEVICE_OFFLINE) for every mapped vehicle "
        "and meter over the last ALARM_WINDOW_HOURS, and queue their notifications. Run it every "
        "minute (or with --loop 60); a re-run, or two at once, changes nothing twice."
    )

    def run_once(self) -> str:
        result = alarms_evaluate()
        opened = ", ".join(f"{k} {v}" for k, v in sorted(result.opened.items())) or "none"
        cleared = ", ".join(f"{k} {v}" for k, v in sorted(result.cleared.items())) or "none"
        return (
            f"{result.evaluated_at:%Y-%m-%dT%H:%M:%SZ}: {result.vehicles} mapped vehicles "
            f"evaluated; opened {opened}; cleared {cleared}; {result.active} active; "
            f"{result.deliveries} notifications queued"
        )
