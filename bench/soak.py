"""The soak: mixed ingest and reads through gunicorn for minutes; every acknowledged reading stored.

    python bench/soak.py                      # 10 minutes against a throwaway PostgreSQL cluster
    python bench/soak.py --seconds 60         # the CI form (telemetry/tests/test_soak.py)
    python bench/soak.py --database-url postgres://postgres@127.0.0.1:5432/energy_soak

Serves the project with its production gunicorn configuration (2 workers × 4 threads) against a
database: by default a throwaway cluster of its own (`testsupport.postgres`, on a spare port, gone
afterwards); with `--database-url`, that database (migrated first; what it already holds is left
out of the count). Client threads send single readings, mixed batches, status, history and
per-vehicle analytics reads at `--rate` requests per second in all. At the end it prints p50/p99
per minute per kind of request (and per 10 s when the run is two minutes or shorter) and checks
that the readings acknowledged equal the readings stored (history rows, and the hourly rollups'
counts). It exits 1 when they differ, or when any request got a 5xx or no answer.

Latencies are measured by the Python clients, which share the CPUs with the server and
PostgreSQL: they are the service as a client sees it on this machine, not the server alone.
"""

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testsupport.load import (  # noqa: E402 - after the path is set
    INGEST_KINDS,
    READ_KINDS,
    Load,
    Mix,
    audit,
    baseline,
    latency_table,
    overall,
    provision,
)
from testsupport.postgres import ThrowawayPostgres  # noqa: E402
from testsupport.servers import Gunicorn  # noqa: E402

KINDS = INGEST_KINDS + READ_KINDS
MIX = {"ingest-single": 40, "ingest-batch": 15, "status": 20, "history": 10, "performance": 15}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600, help="length of the run (600)")
    parser.add_argument("--rate", type=float, default=100, help="requests/s in all; 0: unpaced")
    parser.add_argument("--clients", type=int, default=8, help="client threads (8)")
    parser.add_argument("--batch-size", type=int, default=50, help="readings per batch (50)")
    parser.add_argument("--vehicles", type=int, default=100, help="mapped vehicle-meter pairs")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--database-url", help="a PostgreSQL database instead of a throwaway one")
    args = parser.parse_args()

    with ExitStack() as stack:
        if args.database_url:
            url, where = args.database_url, "the database given"
        else:
            pg = stack.enter_context(ThrowawayPostgres())
            pg.create_database("energy_soak")
            url, where = pg.url("energy_soak"), f"a throwaway PostgreSQL cluster ({pg.bindir})"
        fleet = provision(url, vehicles=args.vehicles)
        before = baseline(url)
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="energy-soak-")))
        server = stack.enter_context(
            Gunicorn(
                {"DATABASE_URL": url, "LOG_LEVEL": "WARNING"},
                workers=args.workers,
                log_dir=log_dir,
            )
        )
        print(
            f"soak {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.seconds} s, {args.clients} "
            f"clients at {args.rate or 'unpaced'} req/s, mix {MIX}, batches of "
            f"{args.batch_size}, {args.vehicles} vehicles + meters, gunicorn {args.workers} "
            f"workers × 4 threads, against {where}; {os.cpu_count()} CPUs shared by all",
            flush=True,
        )
        load = Load(
            url=server.url,
            fleet=fleet,
            mix=Mix(MIX, batch_size=args.batch_size),
            clients=args.clients,
            rate=args.rate or None,
        )
        if not load.seed_readings().acknowledged:
            print("the seed batch was refused:\n" + server.log()[-3000:])
            return 1
        rss_start = worker_rss(server)
        load.start()
        _wait(load, args.seconds)
        outcomes = load.stop()
        rss_end = worker_rss(server)
        result = audit(outcomes, database_url=url, before=before)
        server_log = server.log()

    elapsed = max(outcome.started + outcome.seconds for outcome in outcomes)
    # The few requests begun in the moment between the deadline and the clients' stop are
    # audited, but would make a last interval of their own in the tables.
    timed = [outcome for outcome in outcomes if outcome.started < args.seconds]
    readings = result.readings_acknowledged
    print("\nper minute (latency in ms as the clients saw it; !2xx = answers that were not 2xx)")
    print(latency_table(timed, interval=60, kinds=KINDS))
    if args.seconds <= 120:
        print("\nper 10 s")
        print(latency_table(timed, interval=10, kinds=KINDS))
    print("\nwhole run")
    for kind in KINDS:
        print(f"  {overall(outcomes, kind)}")
    print(
        f"  {len(outcomes) / elapsed:.1f} requests/s, {readings / elapsed:.0f} readings/s "
        f"acknowledged; gunicorn worker RSS {rss_start} MB at the start, {rss_end} MB at the end"
    )
    for line in result.lines():
        print(f"  {line}")
    problems = []
    if not result.exact:
        problems.append("the readings stored differ from the readings acknowledged")
    if result.unavailable or result.server_errors:
        problems.append(f"{result.unavailable + result.server_errors} answers were 5xx")
    if result.unanswered:
        problems.append(f"{result.unanswered} requests got no answer")
    if problems:
        print("\nFAILED: " + "; ".join(problems))
        print("\nlast lines of the server log:\n" + "\n".join(server_log.splitlines()[-30:]))
        return 1
    print(f"\nOK: readings acknowledged = readings stored = {readings}; no 5xx")
    return 0


def _wait(load: Load, seconds: int) -> None:
    """Sleep through the run, with a line a minute so a long run shows it is alive."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(60.0, left))
        done = len(load.outcomes)
        failed = sum(1 for outcome in load.outcomes if not outcome.acknowledged)
        print(f"  {load.now():5.0f} s: {done} requests, {failed} not 2xx", flush=True)


def worker_rss(server: Gunicorn) -> list[int]:
    """Resident memory (MB) of each gunicorn worker of this server (children of its master)."""
    sizes = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != server.process.pid:  # the parent pid
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) // 1024)
    return sorted(sizes)


if __name__ == "__main__":
    sys.exit(main())
