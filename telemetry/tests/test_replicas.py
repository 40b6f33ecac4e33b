"""Read replicas, proven: a primary and two streaming replicas of the test's own, the project
under gunicorn in front of them, and each server's own scan counters (`pg_stat_user_tables`)
telling which one answered.

Requests run with DATABASE_CONN_MAX_AGE=0, so every backend exits after its request and flushes
its statistics; the counters are read once no client of the project is left on a server.
"""

import http.client
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.cookiejar import CookieJar

import psycopg
import pytest

from testsupport.load import CLOCK, Fleet, Load, Mix, manage, provision
from testsupport.postgres import ThrowawayPostgres
from testsupport.servers import Gunicorn
from testsupport.static import collect_static_once

pytestmark = [pytest.mark.postgresql]

DATABASE = "energy"
MAX_LAG_SECONDS = 1.0
CHECK_SECONDS = 0.2
DOWN_SECONDS = 1.5
READ_TABLES = (
    "telemetry_meterreading",
    "telemetry_vehiclereading",
    "telemetry_meterstatus",
    "telemetry_vehiclestatus",
    "telemetry_meterhourly",
    "telemetry_vehiclehourly",
)
REGISTRY_TABLES = ("fleet_vehicle", "fleet_meter", "fleet_meterassignment")
AUTH_TABLES = ("authtoken_token", "auth_user", "telemetry_deviceapikey")


@dataclass
class Replicated:
    primary: ThrowawayPostgres
    replicas: list[ThrowawayPostgres]
    fleet: Fleet
    server: Gunicorn

    @property
    def servers(self) -> dict[str, ThrowawayPostgres]:
        names = {f"replica_{n}": r for n, r in enumerate(self.replicas, start=1)}
        return {"primary": self.primary, **names}

    def caught_up(self) -> None:
        for replica in self.replicas:
            replica.wait_for_replay()


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("replicas")
    with ThreadPoolExecutor(1) as static, ThrowawayPostgres() as primary:
        collected = static.submit(collect_static_once)  # the admin's pages, meanwhile
        primary.create_database(DATABASE)
        fleet = provision(primary.url(DATABASE), vehicles=4)
        with primary.connect(DATABASE) as connection:  # the mapping API and the admin: staff
            connection.execute(
                "UPDATE auth_user SET is_staff = true, is_superuser = true WHERE username = 'load'"
            )
        with ThreadPoolExecutor(2) as pool:  # two base backups at once
            first, second = pool.map(lambda _: primary.replica(), range(2))
        with first, second:
            env = {
                "DATABASE_URL": primary.url(DATABASE),
                "DATABASE_REPLICA_URLS": f"{first.url(DATABASE)}, {second.url(DATABASE)}",
                "DATABASE_REPLICA_MAX_LAG_SECONDS": str(MAX_LAG_SECONDS),
                "DATABASE_REPLICA_CHECK_SECONDS": str(CHECK_SECONDS),
                "DATABASE_REPLICA_DOWN_SECONDS": str(DOWN_SECONDS),
                "DATABASE_CONN_MAX_AGE": "0",
                "API_AUTH_CACHE_SECONDS": "0",
            }
            collected.result()
            with Gunicorn(env, workers=1, threads=2, log_dir=log_dir) as server:
                service = Replicated(primary, [first, second], fleet, server)
                seed = Load(url=server.url, fleet=fleet, mix=Mix({}), clients=1).seed_readings()
                assert seed.acknowledged, seed.body
                service.caught_up()
                yield service
                assert "Traceback" not in server.log(), server.log()


def get(server: Gunicorn, path: str, authorization: str) -> tuple[int, object]:
    return request(server, "GET", path, authorization, None)


def request(server, method, path, authorization, body) -> tuple[int, object]:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        headers = {"Authorization": authorization, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=json.dumps(body) if body else None, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def scans(pg: ThrowawayPostgres) -> dict[str, int]:
    """The server's scan counters, once every client backend of the project has exited."""
    deadline = time.monotonic() + 10
    with pg.connect() as admin:
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND backend_type = 'client backend'",
            [DATABASE],
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "client backends did not exit"
            time.sleep(0.05)
    return pg.scan_counts(DATABASE)


def scans_of(service: Replicated) -> dict[str, dict[str, int]]:
    return {name: scans(pg) for name, pg in service.servers.items() if pg.is_running()}


def grown(before: dict, after: dict, tables: Iterable[str]) -> dict[str, int]:
    """Scans added per server on the tables whose name starts with one of `tables`."""
    tables = tuple(tables)
    return {
        name: sum(
            count - before[name].get(relname, 0)
            for relname, count in after[name].items()
            if relname.startswith(tables)
        )
        for name in after
    }


READS = (
    "/v1/status/vehicle/{vehicle}",
    "/v1/status/vehicles",
    "/v1/status/meter/{meter}",
    "/v1/history/vehicle/{vehicle}",
    "/v1/history/meter/{meter}",
    "/v1/analytics/fleet/summary?hours=3",
    "/v1/analytics/fleet/inefficient?hours=3",
)


def read_all(service: Replicated, *, rounds: int) -> dict[str, object]:
    """Every read route `rounds` times (consecutive requests take the replicas in turn)."""
    token = f"Token {service.fleet.token}"
    answers: dict[str, object] = {}
    for path in READS:
        path = path.format(vehicle=service.fleet.vehicles[0], meter=service.fleet.meters[0])
        for _ in range(rounds):
            status, body = get(service.server, path, token)
            assert status == 200, (path, body)
            if isinstance(body, dict):
                body = {k: v for k, v in body.items() if k not in ("from", "to")}
            assert answers.setdefault(path, body) == body, path
    return answers


def test_reads_are_answered_by_the_replicas_and_everything_else_by_the_primary(
    replicated, record_property
):
    service = replicated
    before = scans_of(service)
    answers = read_all(service, rounds=4)
    after_reads = scans_of(service)

    # Right: the status and history of what the seed batch wrote, the fleet over its devices.
    vehicle = service.fleet.vehicles[0]
    status = answers[f"/v1/status/vehicle/{vehicle}"]
    assert status["vehicleId"] == vehicle and status["soc"] == 50.0
    history = answers[f"/v1/history/vehicle/{vehicle}"]["results"]
    assert [r["timestamp"] for r in history] == [status["timestamp"]]
    assert answers["/v1/analytics/fleet/summary?hours=3"]["vehicles"] == len(service.fleet.vehicles)

    read = grown(before, after_reads, READ_TABLES)
    registry = grown(before, after_reads, REGISTRY_TABLES)
    auth = grown(before, after_reads, AUTH_TABLES)
    assert read["primary"] == 0 and registry["primary"] == 0, (read, registry)
    assert read["replica_1"] > 0 and read["replica_2"] > 0, read  # spread over both
    assert auth["primary"] > 0 and auth["replica_1"] == auth["replica_2"] == 0, auth

    # Ingestion, a mapping and its listing: the primary only.
    token = f"Token {service.fleet.token}"
    ingest = Load(url=service.server.url, fleet=service.fleet, mix=Mix({}), clients=1)
    assert ingest.seed_readings().acknowledged
    mapping = {"vehicleId": service.fleet.vehicles[1], "meterId": service.fleet.meters[2]}
    assert request(service.server, "POST", "/v1/fleet/mappings", token, mapping)[0] == 201
    assert get(service.server, "/v1/fleet/vehicles", token)[0] == 200
    after_writes = scans_of(service)
    everything = grown(after_reads, after_writes, ("",))
    assert everything["replica_1"] == everything["replica_2"] == 0, everything
    assert grown(after_reads, after_writes, REGISTRY_TABLES)["primary"] > 0
    assert grown(after_reads, after_writes, ("telemetry_deviceapikey",))["primary"] > 0
    service.caught_up()

    figures = (
        f"{len(READS) * 4} reads: scans of read tables primary {read['primary']}, "
        f"replica_1 {read['replica_1']}, replica_2 {read['replica_2']}; registry primary "
        f"{registry['primary']}, replicas {registry['replica_1']}+{registry['replica_2']}; "
        f"auth primary {auth['primary']}, replicas {auth['replica_1']}+{auth['replica_2']}; "
        f"ingest+mapping: replicas {everything['replica_1']}+{everything['replica_2']}, "
        f"primary {everything['primary']}"
    )
    record_property("figures", figures)
    print(figures)


def test_a_lagging_replica_is_skipped_and_a_fresh_key_authenticates_on_the_primary(replicated):
    service = replicated
    for replica in service.replicas:
        replica.pause_replay()
    try:
        # A key issued now is unknown to both replicas, yet authenticates at once.
        script = (
            "from telemetry.services import api_key_create\n"
            "print(api_key_create(name='fresh gateway')[1])"
        )
        fresh_key = manage(service.primary.url(DATABASE), "shell", "-c", script).split()[-1]
        vehicle = service.fleet.vehicles[3]
        (at,) = CLOCK.take(1)
        reading = {
            "vehicleId": vehicle,
            "soc": 77.0,
            "kwhDeliveredDc": 0.2,
            "batteryTemp": 30.0,
            "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        status, body = request(
            service.server, "POST", "/v1/ingest", f"Api-Key {fresh_key}", reading
        )
        assert status in (200, 201), body
        time.sleep(MAX_LAG_SECONDS + 2 * CHECK_SECONDS)  # both now lag beyond the bound

        before = scans_of(service)
        token = f"Token {service.fleet.token}"
        for _ in range(3):
            status, body = get(service.server, f"/v1/status/vehicle/{vehicle}", token)
            assert status == 200 and body["soc"] == 77.0, body  # fresh: the primary answered
        read = grown(before, scans_of(service), READ_TABLES)
        assert read["primary"] > 0 and read["replica_1"] == read["replica_2"] == 0, read
    finally:
        for replica in service.replicas:
            replica.resume_replay()
    service.caught_up()
    time.sleep(2 * CHECK_SECONDS)
    before = scans_of(service)
    status, body = get(service.server, f"/v1/status/vehicle/{vehicle}", token)
    assert status == 200 and body["soc"] == 77.0
    read = grown(before, scans_of(service), READ_TABLES)
    assert read["primary"] == 0 and read["replica_1"] + read["replica_2"] > 0, read


def test_a_stopped_replica_is_skipped_then_the_primary_answers_the_same(replicated):
    service = replicated
    first, second = service.replicas
    answers = read_all(service, rounds=1)
    second.stop()
    time.sleep(2 * CHECK_SECONDS)  # a verdict given just before the stop has expired
    try:
        before = scans_of(service)
        assert read_all(service, rounds=3) == answers  # not one error
        read = grown(before, scans_of(service), READ_TABLES)
        assert read["primary"] == 0 and read["replica_1"] > 0, read

        first.stop()
        time.sleep(2 * CHECK_SECONDS)
        try:
            before = scans_of(service)
            assert read_all(service, rounds=2) == answers  # the primary's answers are the same
            read = grown(before, scans_of(service), READ_TABLES)
            assert read["primary"] > 0, read
        finally:
            first.start()
    finally:
        second.start()
    service.caught_up()
    time.sleep(DOWN_SECONDS + CHECK_SECONDS)  # marked down no longer: used again
    before = scans_of(service)
    read_all(service, rounds=2)
    read = grown(before, scans_of(service), READ_TABLES)
    assert read["primary"] == 0 and read["replica_1"] > 0 and read["replica_2"] > 0, read


def test_the_admin_reads_the_primary_even_its_history_pages(replicated):
    service = replicated
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    login = f"{service.server.url}/admin/login/?next=/admin/"
    form = browser.open(login, timeout=15).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
    fields = {"csrfmiddlewaretoken": csrf, "username": "load", "password": "load-pass-123"}
    before = scans_of(service)
    with browser.open(login, urllib.parse.urlencode(fields).encode(), timeout=15) as answer:
        assert answer.url.endswith("/admin/"), answer.url  # logged in
    pages = ("vehiclereading", "vehiclestatus", "meterhourly")
    for page in pages:
        vehicle = service.fleet.vehicles[0]
        with browser.open(f"{service.server.url}/admin/telemetry/{page}/?q={vehicle}") as answer:
            assert answer.status == 200
    with browser.open(f"{service.server.url}/admin/fleet/meterassignment/") as answer:
        assert answer.status == 200
    after = scans_of(service)
    everything = grown(before, after, ("",))
    assert everything["replica_1"] == everything["replica_2"] == 0, everything
    read = grown(before, after, READ_TABLES)
    assert read["primary"] >= len(pages), read
    assert grown(before, after, ("django_session", "auth_user"))["primary"] > 0


def test_the_replicas_refuse_writes(replicated):
    """What makes the counters above meaningful: the replicas are read-only copies."""
    with psycopg.connect(replicated.replicas[0].url(DATABASE), autocommit=True) as standby:
        assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            standby.execute("DELETE FROM telemetry_vehiclestatus")
