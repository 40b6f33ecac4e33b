"""The benchmark: every performance figure of the README beside a limit measured in the same run.

    scripts/bench                 # the full run (a fleet-day: 14.4M readings); ~25 min here
    scripts/bench --quick         # a smaller fleet, shorter load runs; ~5 min

It recreates the database BENCH_DATABASE_URL (default .../energy_bench), serves the project with its
production gunicorn configuration, loads it with wrk on loopback (bounded in time), and prints a
table: figure, median of the runs, target, the limit measured in this run and the ratio to it.
The figures also go to bench/results/latest.json.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
SERVICE_PORT = 8011
BARE_PORT = 8012
WRK_LINE = re.compile(
    r"p50_ms=(?P<p50>[\d.]+) p99_ms=(?P<p99>[\d.]+) requests=(?P<requests>\d+) "
    r"errors=(?P<errors>\d+) rps=(?P<rps>[\d.]+)"
)


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str = ""
    limit: float | None = None
    limit_name: str = ""
    runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> str:
        if not self.limit:
            return ""
        return f"{self.value / self.limit:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small fleet and short runs")
    parser.add_argument("--runs", type=int, default=3, help="runs per load figure (median)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per load run")
    parser.add_argument("--vehicles", type=int, default=5000, help="fleet size for the fleet-day")
    parser.add_argument("--hours", type=int, default=24, help="hours of history to import")
    parser.add_argument(
        "--extra-days", type=int, default=0, help="earlier fleet-days to add (history growth)"
    )
    parser.add_argument("--skip-http-ingest", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument(
        "--mqtt", action="store_true", help="also MQTT ingest end to end (bench/mqtt.py)"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seconds, args.vehicles, args.hours = 2, 5, 500, 6
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk); scripts/bench installs it.")

    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/energy_bench")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-only",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    figures: list[Figure] = []
    started = time.time()
    info = machine_info(url)
    print_header(info)

    recreate_database(url)
    manage(env, "migrate", "--no-input", "-v0")
    key = manage(env, "create_api_key", "--name", "bench").strip()
    token = bench_token(env)

    with (
        served(env, "energy.wsgi", SERVICE_PORT, cwd=ROOT),
        served(env, "bare_wsgi", BARE_PORT, cwd=BENCH),
    ):
        if not args.skip_http_ingest:
            figures += http_ingest(args, key)
        if args.mqtt:
            figures += mqtt_figures(args, env, url, figures)
        if not args.skip_import:
            workdir = Path(tempfile.mkdtemp(prefix="energy-bench-"))
            try:
                figures += import_fleet_day(args, env, url, token, workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        figures.append(worker_rss())

    print_table(figures)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    result = {"machine": info, "seconds": round(time.time() - started), "figures": []}
    result["figures"] = [asdict(f) | {"ratio": f.ratio} for f in figures]
    (out / "latest.json").write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out / 'latest.json'} after {result['seconds']} s")


# --- set-up -----------------------------------------------------------------------------


def machine_info(url: str) -> dict:
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres") as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("shared_buffers", "max_wal_size", "synchronous_commit")
        }
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "postgresql": pg,
        "postgresql_settings": settings,
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
    }


def recreate_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def manage(env: dict, *arguments: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *arguments], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"manage.py {' '.join(arguments)} failed:\n{done.stderr}")
    return done.stdout


def bench_token(env: dict) -> str:
    """A DRF token of a read-only user `bench` (the last line: `shell` may print a banner)."""
    output = manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; from rest_framework.authtoken.models "
        "import Token; u, _ = User.objects.get_or_create(username='bench'); "
        "print(Token.objects.get_or_create(user=u)[0].key)",
    )
    return output.strip().splitlines()[-1]


class served:
    """gunicorn with the production configuration, for the duration of a `with` block."""

    def __init__(self, env: dict, app: str, port: int, *, cwd: Path):
        self.command = [
            str(Path(PYTHON).parent / "gunicorn"),
            app,
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
        ]
        self.env, self.port, self.cwd = env, port, cwd

    def __enter__(self):
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(100):
            try:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return self
            except Exception as error:  # not up yet, or the bare app's 204 on any path
                if getattr(error, "code", None):
                    return self
                time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def wrk(url: str, script: str, *, connections: int, seconds: int, env: dict) -> dict:
    threads = min(2, connections)
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(BENCH / script),
            url,
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    match = WRK_LINE.search(done.stdout)
    if not match:
        sys.exit(f"wrk {script} on {url} printed no summary:\n{done.stdout}\n{done.stderr}")
    return {k: float(v) for k, v in match.groupdict().items()}


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


# --- 1. HTTP ingest -----------------------------------------------------------------------


def http_ingest(args, key: str) -> list[Figure]:
    figures = []
    epoch = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    scenarios = [(1, 32), (1, 128), (100, 32), (1000, 8)]
    # Register the devices once, so the measured runs store readings of known devices.
    wrk(
        f"http://127.0.0.1:{SERVICE_PORT}/v1/ingest",
        "ingest.lua",
        connections=8,
        seconds=3,
        env={
            "BENCH_KEY": key,
            "BENCH_BATCH": "1000",
            "BENCH_DEVICES": "2000",
            "BENCH_START": str(epoch),
        },
    )
    offset = 1
    for batch, connections in scenarios:
        service_runs, bare_runs = [], []
        for _ in range(args.runs):
            offset += 1  # every run writes new minutes: no duplicates
            load = {
                "BENCH_KEY": key,
                "BENCH_BATCH": str(batch),
                "BENCH_DEVICES": "2000",
                "BENCH_START": str(epoch + offset * 86400),
            }
            service_runs.append(
                wrk(
                    f"http://127.0.0.1:{SERVICE_PORT}/v1/ingest",
                    "ingest.lua",
                    connections=connections,
                    seconds=args.seconds,
                    env=load,
                )
            )
            bare_runs.append(
                wrk(
                    f"http://127.0.0.1:{BARE_PORT}/",
                    "ingest.lua",
                    connections=connections,
                    seconds=args.seconds,
                    env=load,
                )
            )
        label = "single readings" if batch == 1 else f"batches of {batch}"
        rate = median_of(service_runs, "rps") * batch
        unit = "requests/s" if batch == 1 else "readings/s"
        target = {1: "≥ 1,500 req/s (32 clients)", 100: "≥ 40,000/s", 1000: "≥ 70,000/s"}[batch]
        figures.append(
            Figure(
                f"HTTP ingest, {label}, {connections} clients",
                rate,
                unit,
                target=target if (batch != 1 or connections == 32) else "",
                limit=median_of(bare_runs, "rps") * batch,
                limit_name="bare parse-and-204 endpoint",
                runs=[r["rps"] * batch for r in service_runs],
                note=f"errors {sum(r['errors'] for r in service_runs):.0f}",
            )
        )
        figures.append(
            Figure(
                f"  p50 / p99 latency, {label}, {connections} clients",
                median_of(service_runs, "p50"),
                "ms",
                target="p99 < 50 ms" if batch == 1 and connections == 32 else "",
                note=f"p99 {median_of(service_runs, 'p99'):.1f} ms",
            )
        )
    return figures


# --- 1b. MQTT ingest, beside the HTTP batch figure ---------------------------------------


def mqtt_figures(args, env: dict, url: str, figures: list[Figure]) -> list[Figure]:
    sys.path.insert(0, str(ROOT))
    from bench.mqtt import mqtt_ingest

    http_batch = next((f.value for f in figures if "batches of 1000" in f.name), None)
    return mqtt_ingest(args, env, url, figure=Figure, http_batch_rate=http_batch)


# --- 2. import of a fleet-day, and the COPY limit -------------------------------------------


def import_fleet_day(args, env: dict, url: str, token: str, workdir: Path) -> list[Figure]:
    """Simulate a fleet-day, import it in two steps, measure analytics after each.

    The first step fills an empty history with ~1M readings, the second brings it to the whole
    fleet-day: import rate and per-vehicle latency are reported at both sizes (how cost grows).
    With --extra-days, earlier days are simulated and imported too and latency measured again.
    """
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    data = workdir / "fleet-day.csv"
    began = time.perf_counter()
    simulate(env, args, start=now - timedelta(hours=args.hours), out=data)
    generated = time.perf_counter() - began
    rows = sum(1 for _ in data.open()) - 1
    figures = [
        Figure(
            "simulate_fleet, one fleet-day to a CSV file",
            rows / generated,
            "readings/s",
            note=f"{rows:,} readings in {generated:.0f} s",
        )
    ]
    began = time.perf_counter()
    manage(env, "import_mappings", str(data.with_suffix(".mappings.csv")), "--atomic")
    figures.append(
        Figure(
            "import_mappings --atomic", time.perf_counter() - began, "s", note=f"{args.vehicles}+"
        )
    )

    first, rest = split_csv(data, first_rows=min(1_000_000, rows // 10))
    figures.append(import_file(env, first, "into an empty history"))
    figures += analytics(args, url, token, only_per_vehicle=True)
    figures.append(import_file(env, rest, "on top", limit=copy_limit(url, data)))
    figures += analytics(args, url, token)
    for day in range(1, args.extra_days + 1):
        older = workdir / f"fleet-day-{day}.csv"
        simulate(env, args, start=now - timedelta(hours=args.hours * (day + 1)), out=older)
        figures.append(import_file(env, older, f"an earlier day ({day})"))
        older.unlink()
        figures += analytics(args, url, token, only_per_vehicle=True)
    return figures


def simulate(env: dict, args, *, start: datetime, out: Path) -> None:
    manage(
        env,
        "simulate_fleet",
        *("--vehicles", str(args.vehicles), "--hours", str(args.hours), "--seed", "7"),
        *("--start", start.isoformat(), "--out", str(out)),
    )


def split_csv(data: Path, *, first_rows: int) -> tuple[Path, Path]:
    """The CSV cut in two files after `first_rows` data lines, each with the header."""
    first, rest = data.with_name("first.csv"), data.with_name("rest.csv")
    with data.open() as source, first.open("w") as head, rest.open("w") as tail:
        header = source.readline()
        head.write(header)
        tail.write(header)
        for number, line in enumerate(source):
            (head if number < first_rows else tail).write(line)
    return first, rest


def import_file(env: dict, path: Path, label: str, *, limit: float | None = None) -> Figure:
    rows = sum(1 for _ in path.open()) - 1
    time_bin = shutil.which("time") or "/usr/bin/time"
    began = time.perf_counter()
    done = subprocess.run(
        [time_bin, "-v", PYTHON, "manage.py", "import_telemetry", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"import_telemetry failed:\n{done.stderr[-3000:]}")
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    return Figure(
        f"import_telemetry, {rows / 1e6:.1f}M readings {label}",
        rows / seconds,
        "readings/s",
        target="≥ 150,000/s, flat memory",
        limit=limit,
        limit_name="plain COPY of the same file into an equally indexed table" if limit else "",
        note=f"{seconds:.0f} s, peak RSS {peak_kib / 1024:.0f} MB",
    )


def copy_limit(url: str, data: Path) -> float:
    """Rows/s of a plain COPY of the same CSV into a table indexed like the history tables.

    The index is not unique: the simulated file holds a few duplicate readings on purpose.
    """
    header = data.open().readline().strip().split(",")
    columns = ", ".join(_LIMIT_COLUMNS[name] for name in header)
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TEMP TABLE copy_limit (kind text, device text, recorded_at timestamptz, "
            "kwh float8, voltage float8, soc float8, battery_temp float8)"
        )
        conn.execute("CREATE INDEX ON copy_limit (device, recorded_at)")
        copy_sql = f"COPY copy_limit ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)"
        began = time.perf_counter()
        with conn.cursor().copy(copy_sql) as copy, data.open("rb") as source:
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        seconds = time.perf_counter() - began
        rows = conn.execute("SELECT count(*) FROM copy_limit").fetchone()[0]
    return rows / seconds


# simulate_fleet's CSV header -> copy_limit's columns
_LIMIT_COLUMNS = {
    "type": "kind",
    "deviceId": "device",
    "timestamp": "recorded_at",
    "kwh": "kwh",
    "voltage": "voltage",
    "soc": "soc",
    "batteryTemp": "battery_temp",
}


# --- 3. analytics through HTTP -----------------------------------------------------------


def analytics(args, url: str, token: str, *, only_per_vehicle: bool = False) -> list[Figure]:
    sys.path.insert(0, str(ROOT))
    from testsupport.streams import history_rows_sql, streams

    with psycopg.connect(url) as conn:
        # The simulated fleet (not the devices the HTTP ingest runs made up).
        simulated = {
            stream.kind: [
                r[0]
                for r in conn.execute(
                    f"SELECT {stream.registry_id} FROM {stream.registry} "
                    f"WHERE {stream.registry_id} LIKE 'SIM-%%' ORDER BY 1"
                ).fetchall()
            ]
            for stream in streams()
        }
        vehicles, meters = simulated["vehicle"], simulated["meter"]
        history_rows = conn.execute(history_rows_sql()).fetchone()[0]
        conn.execute("ANALYZE")
    base = f"http://127.0.0.1:{SERVICE_PORT}"
    cases = [
        (
            "per-vehicle performance (warm, 50 vehicles)",
            [f"/v1/analytics/performance/{v}" for v in vehicles[:50]],
            "p50 < 3 ms, p99 < 10 ms",
        ),
        (
            "per-vehicle performance (random vehicles of the whole fleet)",
            [f"/v1/analytics/performance/{v}" for v in vehicles],
            "p50 < 3 ms, p99 < 10 ms",
        ),
        ("fleet inefficient list", ["/v1/analytics/fleet/inefficient?hours=24"], "< 50 ms"),
        ("fleet summary", ["/v1/analytics/fleet/summary"], ""),
        (
            "status lookup",
            [f"/v1/status/vehicle/{v}" for v in vehicles]
            + [f"/v1/status/meter/{m}" for m in meters],
            "p50 < 2 ms",
        ),
        (
            "history page (100 readings)",
            [f"/v1/history/vehicle/{v}?limit=100" for v in vehicles],
            "",
        ),
    ]
    if only_per_vehicle:
        cases = cases[:2]
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, paths, target in cases:
            paths_file = Path(tmp) / "paths.txt"
            paths_file.write_text("\n".join(paths))
            runs = [
                # One client: these figures are latencies, not throughput under contention.
                wrk(
                    base,
                    "get.lua",
                    connections=1,
                    seconds=args.seconds,
                    env={"BENCH_TOKEN": token, "BENCH_PATHS_FILE": str(paths_file)},
                )
                for _ in range(args.runs)
            ]
            figures.append(
                Figure(
                    f"{name}, {history_rows / 1e6:.1f}M history rows",
                    median_of(runs, "p50"),
                    "ms p50",
                    target=target,
                    note=(
                        f"p99 {median_of(runs, 'p99'):.1f} ms, "
                        f"{median_of(runs, 'rps'):.0f} req/s at 1 client, "
                        f"errors {sum(r['errors'] for r in runs):.0f}"
                    ),
                )
            )
    return figures


def worker_rss() -> Figure:
    sizes = []
    for line in subprocess.run(
        ["ps", "-eo", "rss,args"], capture_output=True, text=True
    ).stdout.splitlines():
        if "energy.wsgi" in line and "gunicorn" in line:
            sizes.append(int(line.split()[0]) / 1024)
    return Figure(
        "gunicorn worker RSS after the run (largest)",
        max(sizes or [0]),
        "MB",
        target="< 200 MB",
        note=f"{len(sizes)} processes",
    )


# --- output ------------------------------------------------------------------------------


def print_header(info: dict) -> None:
    print(f"energy telemetry benchmark — {info['date']}")
    print(
        f"{info['cpus']} CPUs, {info['memory_gib']} GiB, Python {info['python']}, "
        f"PostgreSQL {info['postgresql']} {info['postgresql_settings']}, {info['wrk']}\n"
    )


def print_table(figures: list[Figure]) -> None:
    print(f"\n{'figure':60} {'value':>14} {'target':>28} {'limit (same run)':>18} {'ratio':>6}")
    for f in figures:
        limit = f"{f.limit:,.0f}" if f.limit else ""
        print(
            f"{f.name:60} {f.value:>10,.1f} {f.unit:<3} {f.target:>28} {limit:>18} "
            f"{f.ratio:>6}  {f.note}"
        )


if __name__ == "__main__":
    main()
