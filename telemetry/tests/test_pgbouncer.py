"""The ingest and read paths through pgbouncer in transaction pooling mode.

A private pgbouncer (pool of 2 server connections) in front of the test database; the project
under gunicorn (2 workers x 4 threads) with DATABASE_TRANSACTION_POOLING=true connects through
it, and so do two alarm evaluations, chunked `.iterator()` reads (server-side cursors would fail
here: their fetches land on other server connections) and two telemetry imports (a temporary
staging table per server connection, used inside one transaction at a time). Every acknowledged
reading must be stored once, nothing may fail, and PostgreSQL must never see more than the
pool's connections.
"""

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

from fleet.models import Meter, Vehicle
from fleet.services import meter_assign
from telemetry.models import MeterReading, VehicleReading
from telemetry.services import api_key_create
from testsupport.load import ROOT, Fleet, Load, Mix, audit, baseline
from testsupport.pgbouncer import Pgbouncer
from testsupport.servers import Gunicorn, database_url

pytestmark = [pytest.mark.postgresql]

POOL_SIZE = 2
VEHICLES = 6
ITERATE = (
    "import time\n"
    "from fleet.models import Vehicle\n"
    "for _ in range(20):\n"
    "    count = 0\n"
    "    for _ in Vehicle.objects.iterator(chunk_size=1):\n"
    "        count += 1\n"
    "        time.sleep(0.01)\n"
    "    print(count)\n"
)


def provision() -> Fleet:
    user = get_user_model().objects.create_user(username="pooled", password="pooled-pass-123")
    token = Token.objects.create(user=user)
    _, key = api_key_create(name="pooled gateway")
    since = datetime.now(UTC) - timedelta(hours=3)
    for n in range(VEHICLES):
        vehicle = Vehicle.objects.create(vehicle_id=f"V-POOL-{n}")
        meter = Meter.objects.create(meter_id=f"M-POOL-{n}")
        meter_assign(vehicle=vehicle, meter=meter, valid_from=since)
    return Fleet(
        api_key=key,
        token=token.key,
        vehicles=tuple(f"V-POOL-{n}" for n in range(VEHICLES)),
        meters=tuple(f"M-POOL-{n}" for n in range(VEHICLES)),
    )


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def server_connections(monitor: psycopg.Connection, *, ours: int, since: datetime) -> int:
    """Backends of the test database opened since pgbouncer started (idle connections an
    earlier test of this worker left open do not count), but this test's own two (`ours` and
    the monitor's)."""
    return monitor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid NOT IN (pg_backend_pid(), %s) "
        "AND backend_start >= %s",
        [ours, since],
    ).fetchone()[0]


def import_file(path, fleet: Fleet, *, offset: int) -> int:
    """An NDJSON file of readings of every device, before the load's clock; its row count."""
    start = (datetime.now(UTC) - timedelta(hours=2, minutes=40)).replace(microsecond=0)
    lines = []
    for second in range(40):
        at = (start + timedelta(seconds=offset + second)).isoformat().replace("+00:00", "Z")
        for meter in fleet.meters:
            lines.append({"meterId": meter, "kwhConsumedAc": 0.1, "voltage": 230, "timestamp": at})
        for vehicle in fleet.vehicles:
            lines.append(
                {
                    "vehicleId": vehicle,
                    "soc": 40,
                    "kwhDeliveredDc": 0.1,
                    "batteryTemp": 25,
                    "timestamp": at,
                }
            )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return len(lines)


def test_ingest_reads_alarms_and_imports_work_through_transaction_pooling(
    transactional_db, tmp_path, record_property
):
    fleet = provision()
    direct = database_url(connection.settings_dict)
    name = connection.settings_dict["NAME"]
    port = int(connection.settings_dict.get("PORT") or 5432)
    bouncer_started = datetime.now(UTC)
    with Pgbouncer(upstream_port=port, database=name, pool_size=POOL_SIZE) as bouncer:
        env = {
            "DATABASE_URL": bouncer.url(),
            "DATABASE_TRANSACTION_POOLING": "true",
            "API_AUTH_CACHE_SECONDS": "0",
        }
        cli_env = {**os.environ, "SECRET_KEY": "test-only-secret-key", "DEBUG": "false", **env}

        # Two imports at once: each chunk's staging table lives on whichever server connection
        # its transaction got, created there if missing, emptied at commit.
        files = [tmp_path / f"import-{n}.ndjson" for n in range(2)]
        expected = sum(import_file(path, fleet, offset=40 * n) for n, path in enumerate(files))
        imports = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "import_telemetry", str(path)],
                cwd=ROOT,
                env=cli_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for path in files
        ]
        for process in imports:
            output = process.communicate(timeout=120)[0]
            assert process.returncode == 0, output
        assert MeterReading.objects.count() + VehicleReading.objects.count() == expected

        with Gunicorn(env, workers=2, threads=4, log_dir=tmp_path) as server:
            seed = Load(url=server.url, fleet=fleet, mix=Mix({}), clients=1).seed_readings()
            assert seed.acknowledged, seed.body
            before = baseline(direct)
            load = Load(
                url=server.url,
                fleet=fleet,
                mix=Mix(
                    {
                        "ingest-single": 3,
                        "ingest-batch": 2,
                        "status": 2,
                        "history": 2,
                        "performance": 1,
                    },
                    batch_size=20,
                ),
                clients=8,
            ).start()
            peak, sampling = [0], threading.Event()
            connection.ensure_connection()
            ours = connection.connection.info.backend_pid

            def sample() -> None:
                with psycopg.connect(direct, autocommit=True) as monitor:
                    while not sampling.is_set():
                        peak[0] = max(
                            peak[0],
                            server_connections(monitor, ours=ours, since=bouncer_started),
                        )
                        time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            # Two evaluations at once (the second waits for the first's transaction-scoped
            # lock), and a chunked `.iterator()` (a server-side cursor unless disabled: its
            # fetches would be separate transactions, on whichever server connection).
            with ThreadPoolExecutor(3) as pool:
                evaluating = [pool.submit(manage, cli_env, "evaluate_alarms") for _ in range(2)]
                iterating = pool.submit(manage, cli_env, "shell", "--no-imports", "-c", ITERATE)
                evaluations = [future.result() for future in evaluating]
                iterated = iterating.result()
            time.sleep(2)
            outcomes = load.stop()
            sampling.set()
            sampler.join(timeout=5)
            log = server.log()
        result = audit(outcomes, database_url=direct, before=before)
        pooler_log = bouncer.log()

    figures = (
        f"through pgbouncer (pool {POOL_SIZE}): {'; '.join(result.lines())}; imported "
        f"{expected} rows by 2 concurrent imports; peak server connections {peak[0]}"
    )
    record_property("figures", figures)
    print(figures)
    assert iterated.returncode == 0, iterated.stdout + iterated.stderr
    assert iterated.stdout.split() == [str(VEHICLES)] * 20
    for evaluation in evaluations:
        assert evaluation.returncode == 0, evaluation.stdout + evaluation.stderr
        assert "mapped vehicles evaluated" in evaluation.stdout
    assert result.unanswered == 0 and result.server_errors == 0 and result.unavailable == 0
    assert result.acknowledged == result.requests > 50
    assert {o.kind for o in outcomes} == {
        "ingest-single",
        "ingest-batch",
        "status",
        "history",
        "performance",
    }
    assert result.exact, result
    assert 0 < peak[0] <= POOL_SIZE, peak
    assert "Traceback" not in log, log
    assert "prepared statement" not in log, log
    assert "ERROR" not in pooler_log, pooler_log
