"""Database faults against a PostgreSQL cluster of the test's own, broken on purpose.

The project runs under gunicorn (its production config, 2 workers × 4 threads) against a
throwaway cluster (testsupport.postgres) whose backends are terminated, which is stopped and
started, and restarted, while clients send readings and read. Every answer must be a 2xx or a 503
with a JSON body in the route's shape and `Retry-After`; the service must recover by itself; the
database must hold exactly the acknowledged readings.
"""

import http.client
import json
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from testsupport.load import INGEST_KINDS, Fleet, Load, Mix, audit, baseline, provision
from testsupport.postgres import ThrowawayPostgres
from testsupport.servers import Gunicorn

pytestmark = [pytest.mark.postgresql, pytest.mark.faults]

WORKERS, THREADS = 2, 4
RETRY_AFTER = "5"
INGEST_SHAPE = {"accepted", "duplicates", "rejected", "detail"}
UNAVAILABLE = "The database is unavailable; retry in 5 s."
LOG_LINE = "database unavailable:"


@dataclass
class Breakable:
    pg: ThrowawayPostgres
    database: str
    fleet: Fleet
    server: Gunicorn

    @property
    def url(self) -> str:
        return self.pg.url(self.database)

    def log_offset(self) -> int:
        return len(self.server.log())

    def log_since(self, offset: int) -> str:
        return self.server.log()[offset:]


@pytest.fixture(scope="module")
def breakable(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("faults")
    with ThrowawayPostgres() as pg:
        pg.create_database("energy")
        fleet = provision(pg.url("energy"), vehicles=10)
        env = {
            "DATABASE_URL": pg.url("energy"),
            "DATABASE_RETRY_AFTER_SECONDS": RETRY_AFTER,
            # Every request looks its credential up: a key or token remembered by one worker
            # would let a route answer (a 403, /metrics) without the database, depending on
            # which tests ran in the last seconds.
            "API_AUTH_CACHE_SECONDS": "0",
        }
        with Gunicorn(env, workers=WORKERS, threads=THREADS, log_dir=log_dir) as server:
            service = Breakable(pg=pg, database="energy", fleet=fleet, server=server)
            load = Load(url=server.url, fleet=fleet, mix=Mix({}), clients=1)
            assert load.seed_readings().acknowledged
            yield service


@pytest.fixture
def database_back(breakable):
    """Whatever a test broke, the next one starts with the cluster up."""
    yield breakable
    if not breakable.pg.is_running():
        breakable.pg.start()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: object
    seconds: float


def call(server: Gunicorn, method: str, path: str, *, headers=None, body=None) -> Answer:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=15)
    started = time.monotonic()
    try:
        data = json.dumps(body).encode() if body is not None else None
        sent = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            sent["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    content_type = response.getheader("Content-Type", "")
    parsed = json.loads(raw) if "json" in content_type else raw.decode("utf-8", "replace")
    return Answer(
        status=response.status,
        headers={name.lower(): value for name, value in response.getheaders()},
        body=parsed,
        seconds=time.monotonic() - started,
    )


def routes(fleet: Fleet) -> list[tuple[str, str, str, dict, object]]:
    """(name, method, path, headers, body) of every kind of route, each credential path too."""
    key = {"Authorization": f"Api-Key {fleet.api_key}"}
    token = {"Authorization": f"Token {fleet.token}"}
    meter = {
        "meterId": fleet.meters[0],
        "kwhConsumedAc": 0.1,
        "voltage": 230.0,
        "timestamp": "2026-01-01T00:00:00Z",
    }
    vehicle = {
        "vehicleId": fleet.vehicles[0],
        "soc": 50.0,
        "kwhDeliveredDc": 0.1,
        "batteryTemp": 30.0,
        "timestamp": "2026-01-01T00:00:00Z",
    }
    v, m = fleet.vehicles[0], fleet.meters[0]
    session = {"Cookie": "sessionid=abcdefghijklmnopqrstuvwxyz012345"}  # looked up, not found
    return [
        ("ingest", "POST", "/v1/ingest", key, meter),
        ("ingest, batch of both kinds", "POST", "/v1/ingest", key, [meter, vehicle]),
        ("ingest meter", "POST", "/v1/ingest/meter", key, meter),
        ("ingest vehicle batch", "POST", "/v1/ingest/vehicle/batch", key, [vehicle]),
        ("ingest, key lookup", "POST", "/v1/ingest", {"Authorization": "Api-Key ab.cd"}, meter),
        ("status", "GET", f"/v1/status/vehicle/{v}", token, None),
        ("status list", "GET", "/v1/status/meters", token, None),
        ("history", "GET", f"/v1/history/meter/{m}", token, None),
        ("performance", "GET", f"/v1/analytics/performance/{v}", token, None),
        ("fleet summary", "GET", "/v1/analytics/fleet/summary", token, None),
        ("fleet inefficient", "GET", "/v1/analytics/fleet/inefficient", token, None),
        ("fleet vehicles", "GET", "/v1/fleet/vehicles", token, None),
        ("read, token lookup", "GET", "/v1/status/meters", {"Authorization": "Token 0bad"}, None),
        ("read, session lookup", "GET", "/v1/status/meters", session, None),
        ("mapping", "POST", "/v1/fleet/mappings", token, {"vehicleId": v, "meterId": m}),
        ("metrics", "GET", "/metrics", token, None),
        ("admin page", "GET", "/admin/", session, None),
    ]


class TestWhileTheDatabaseIsStopped:
    def test_every_route_answers_503_json_with_retry_after_and_one_log_line(
        self, database_back, record_property
    ):
        service = database_back
        offset = service.log_offset()
        service.pg.stop()

        answers = {
            name: call(service.server, method, path, headers=headers, body=body)
            for name, method, path, headers, body in routes(service.fleet)
        }
        readyz = call(service.server, "GET", "/readyz")
        healthz = call(service.server, "GET", "/healthz")

        for name, answer in answers.items():
            assert answer.status == 503, (name, answer)
            assert answer.headers["content-type"] == "application/json", name
            assert answer.headers["retry-after"] == RETRY_AFTER, name
            if name.startswith("ingest"):
                assert set(answer.body) >= INGEST_SHAPE, name
                assert answer.body["accepted"] == 0 and answer.body["rejected"] == [], name
                assert answer.body["detail"] == UNAVAILABLE
            else:
                assert answer.body == {"detail": UNAVAILABLE}, name
            # Refused connections: an answer at once, not after a timeout.
            assert answer.seconds < 5, name
        assert readyz.status == 503 and readyz.body.startswith("database unavailable")
        assert healthz.status == 200
        log = service.log_since(offset)
        lines = [line for line in log.splitlines() if LOG_LINE in line]
        assert len(lines) == len(answers), lines
        assert "POST v1/ingest answered 503 error=OperationalError/OperationalError" in log
        assert "GET admin/ answered 503" in log
        assert "Traceback" not in log, log[log.find("Traceback") - 500 :][:3000]
        # Django's own request log line stays silent: ours is the one line (readyz has its own).
        assert log.count("Service Unavailable:") == log.count("Service Unavailable: /readyz")
        record_property("figures", f"database stopped: {len(answers)} routes answered 503 JSON")

    def test_the_service_recovers_by_itself_once_the_database_is_back(self, database_back):
        service = database_back
        service.pg.stop()
        for _, method, path, headers, body in routes(service.fleet)[:8]:
            call(service.server, method, path, headers=headers, body=body)
        service.pg.start()

        # A thread whose connection broke while it was idle fails one request, then reconnects.
        statuses = _round_robin(service, requests=WORKERS * THREADS * 6)

        assert statuses.count(503) <= WORKERS * THREADS, Counter(statuses)
        assert set(statuses[-WORKERS * THREADS :]) == {200}, Counter(statuses)


class TestTerminatedBackends:
    def test_a_terminated_connection_is_discarded_not_reused(self, database_back):
        service = database_back
        _round_robin(service, requests=WORKERS * THREADS * 4)  # every thread has a connection

        terminated = service.pg.terminate_backends(service.database)
        statuses = _round_robin(service, requests=WORKERS * THREADS * 8)

        # Each broken connection costs at most the one request that finds it broken.
        assert terminated >= 2
        assert statuses.count(503) <= terminated, Counter(statuses)
        assert set(statuses) <= {200, 503}
        assert set(statuses[-WORKERS * THREADS :]) == {200}, Counter(statuses)


def _round_robin(service: Breakable, *, requests: int) -> list[int]:
    """Status reads from as many client threads as the server has, each on a new connection."""
    path = f"/v1/status/vehicle/{service.fleet.vehicles[0]}"
    headers = {"Authorization": f"Token {service.fleet.token}"}
    with ThreadPoolExecutor(WORKERS * THREADS) as pool:
        answers = pool.map(
            lambda _: call(service.server, "GET", path, headers=headers).status, range(requests)
        )
        return list(answers)


class TestADatabaseThatNeverAnswers:
    def test_a_request_gets_its_503_after_the_connect_timeout(self, tmp_path):
        with socket.socket() as silent:  # accepts TCP connections, never says a word
            silent.bind(("127.0.0.1", 0))
            silent.listen(64)
            port = silent.getsockname()[1]
            env = {
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/energy",
                "DATABASE_CONNECT_TIMEOUT": "2",
            }
            with Gunicorn(env, workers=1, threads=2, log_dir=tmp_path) as server:
                headers = {"Authorization": "Token x"}
                answer = call(server, "GET", "/v1/status/meters", headers=headers)

        assert answer.status == 503
        assert answer.body == {"detail": UNAVAILABLE}
        assert 1.5 < answer.seconds < 10


class TestLoadThroughFaults:
    def test_acknowledged_readings_are_stored_once_and_failed_ones_never(
        self, database_back, record_property, capsys
    ):
        service = database_back
        offset = service.log_offset()
        before = baseline(service.url)
        load = Load(
            url=service.server.url,
            fleet=service.fleet,
            mix=Mix(
                {
                    "ingest-single": 3,
                    "ingest-batch": 2,
                    "status": 1,
                    "history": 1,
                    "performance": 1,
                },
                batch_size=20,
            ),
            clients=6,
            timeout=10,
        ).start()
        faults = _inject_faults(service, load)
        time.sleep(6)  # the database is back: the service must be too
        outcomes = load.stop()
        stopped_at = load.now()
        result = audit(outcomes, database_url=service.url, before=before)

        answered = [o for o in outcomes if o.status is not None]
        failed = [o for o in answered if not o.acknowledged]
        recovered = [o for o in outcomes if o.started > faults.over_at + 2]
        summary = "\n".join(
            [
                f"fault test: {faults.describe()}",
                *result.lines(),
                "non-2xx answers: "
                + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(_by_status(failed).items())),
                f"after the last fault (+2 s): {len(recovered)} requests, "
                f"{sum(1 for o in recovered if o.acknowledged)} acknowledged",
            ]
        )
        record_property("figures", summary)
        with capsys.disabled():
            print(f"\n{summary}")

        assert result.unanswered == 0, [o.error for o in outcomes if o.status is None][:5]
        assert result.server_errors == 0
        assert {o.status for o in failed} == {503}, _by_status(failed)
        for outcome in failed:
            assert outcome.content_type == "application/json"
            assert outcome.retry_after == RETRY_AFTER
            if outcome.kind in INGEST_KINDS:
                assert set(outcome.body) >= INGEST_SHAPE and outcome.body["accepted"] == 0
            else:
                assert outcome.body == {"detail": UNAVAILABLE}
        assert result.unavailable > 0, "the faults did not reach a single request"
        assert result.exact, result
        # Back by itself: at most the one request per server thread whose idle connection broke,
        # and the last two seconds all 2xx.
        assert len(recovered) >= 20
        assert sum(1 for o in recovered if not o.acknowledged) <= WORKERS * THREADS
        assert all(o.acknowledged for o in outcomes if o.started > stopped_at - 2)
        assert {o.kind for o in recovered if o.acknowledged} >= set(INGEST_KINDS) | {"status"}
        log_lines = [line for line in service.log_since(offset).splitlines() if LOG_LINE in line]
        assert len(log_lines) == result.unavailable
        assert "Traceback" not in service.log_since(offset)


@dataclass
class Faults:
    terminated: list[int]
    stopped_seconds: float
    restarts: int
    over_at: float

    def describe(self) -> str:
        return (
            f"{len(self.terminated) + 1 + self.restarts} faults injected: backends terminated "
            f"{len(self.terminated)}× ({sum(self.terminated)} connections), server stopped 1× "
            f"for {self.stopped_seconds:.1f} s, restarted {self.restarts}×"
        )


def _inject_faults(service: Breakable, load: Load) -> Faults:
    pg = service.pg
    terminated = []
    for _ in range(3):
        time.sleep(3)
        terminated.append(pg.terminate_backends(service.database))
    time.sleep(3)
    down = time.monotonic()
    pg.stop()
    time.sleep(4)
    pg.start()
    stopped = time.monotonic() - down
    time.sleep(4)
    pg.restart()
    return Faults(terminated=terminated, stopped_seconds=stopped, restarts=1, over_at=load.now())


def _by_status(outcomes) -> Counter:
    return Counter((o.kind, o.status) for o in outcomes)
