"""Two web instances behind HAProxy: load spread, one instance killed mid-load, nothing lost.

Two gunicorn instances of the project (its production config) serve one throwaway PostgreSQL
cluster behind a HAProxy of the test's own (testsupport.haproxy), all on loopback. Clients that
retry a request on a connection error, a 502 or a 503 — with the same readings — must end with
every reading acknowledged and stored exactly once, whichever instance died under them. Sessions,
revoked device keys and the Prometheus counters must behave as the README says across instances.
"""

import http.client
import json
import os
import random
import re
import signal
import threading
import time
from dataclasses import dataclass, field

import psycopg
import pytest

from testsupport.haproxy import HAProxy, server_name
from testsupport.load import (
    CLOCK,
    Fleet,
    Outcome,
    Reading,
    _wire,
    audit,
    baseline,
    manage,
    provision,
)
from testsupport.postgres import ThrowawayPostgres
from testsupport.servers import Gunicorn
from testsupport.static import collect_static_once

pytestmark = [pytest.mark.postgresql, pytest.mark.instances]

RETRY_STATUSES = {502, 503}
RETRY_FOR_SECONDS = 20.0

# A staff user (sessions, /metrics) and a second device key (the revocation test), in one start.
_STAFF = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from telemetry.services import api_key_create
user = get_user_model().objects.create_superuser("ops", "ops@example.com", "ops-pass-123")
print(Token.objects.create(user=user).key)
print(api_key_create(name="revoke me")[1])
"""


@dataclass
class Service:
    database_url: str
    fleet: Fleet
    staff_token: str
    revocable_key: str
    a: Gunicorn
    b: Gunicorn
    proxy: HAProxy

    def revive(self) -> None:
        """Whatever a test killed, the next one starts with both instances up and balanced."""
        for instance in (self.a, self.b):
            if instance.process is None or instance.process.poll() is not None:
                instance.start()
        deadline = time.monotonic() + 10
        while served_by_both(self.proxy) is False:
            assert time.monotonic() < deadline, "HAProxy did not put both instances back"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def two_instances(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("instances")
    collect_static_once()  # the admin's pages (the session test) need WhiteNoise's manifest
    with ThrowawayPostgres() as pg:
        pg.create_database("energy")
        url = pg.url("energy")
        fleet = provision(url, vehicles=10)
        staff_token, revocable_key = manage(url, "shell", "-c", _STAFF).split()[-2:]

        def instance(name: str) -> Gunicorn:
            # Each instance is its own host: its own Prometheus directory (gunicorn.conf.py).
            metrics = log_dir / f"metrics-{name}"
            metrics.mkdir()
            env = {
                "DATABASE_URL": url,
                "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                "API_AUTH_CACHE_SECONDS": "1",
            }
            return Gunicorn(env, workers=1, threads=4, log_dir=log_dir)

        with (
            instance("a") as a,
            instance("b") as b,
            HAProxy([a.port, b.port], log_dir=log_dir) as proxy,
        ):
            service = Service(url, fleet, staff_token, revocable_key, a, b, proxy)
            service.revive()
            yield service


@pytest.fixture
def service(two_instances):
    two_instances.revive()
    yield two_instances


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def cookies(self) -> dict[str, str]:
        found = {}
        for name, value in self.headers:
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                found[key] = rest.split(";", 1)[0]
        return found


def call(url: str, method: str, path: str, *, headers=None, body: bytes | None = None) -> Answer:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def served_by_both(proxy: HAProxy) -> bool:
    names = {call(proxy.url, "GET", "/healthz").header("X-Served-By") for _ in range(6)}
    return len(names) == 2


@dataclass
class Sent:
    """One logical request: the same readings sent until an answer that is not worth retrying."""

    readings: list[Reading]
    started: float
    attempts: list[tuple[float, int | None, str]] = field(default_factory=list)  # when, status, by
    status: int | None = None
    body: object = None
    finished: float = 0.0

    @property
    def served_by(self) -> str:
        return self.attempts[-1][2] if self.attempts else ""

    def outcome(self) -> Outcome:
        return Outcome(
            kind="ingest-batch",
            started=self.started,
            seconds=self.finished - self.started,
            status=self.status,
            body=self.body,
            readings=self.readings,
        )


class RetryingClients:
    """`clients` threads POSTing batches through the proxy; each retries its batch as it is."""

    def __init__(self, *, url: str, fleet: Fleet, clients: int, seed: int = 7):
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.fleet = fleet
        self.clients = clients
        self.seed = seed
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.began = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.began

    def start(self) -> "RetryingClients":
        for n in range(self.clients):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Sent]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=RETRY_FOR_SECONDS + 20)
        return self.sent

    def _client(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        connection = None
        while not self._stop.is_set():
            size = rng.choice((1, 1, 20))
            pairs = [
                rng.choice(
                    [
                        ("meter", rng.choice(self.fleet.meters)),
                        ("vehicle", rng.choice(self.fleet.vehicles)),
                    ]
                )
                for _ in range(size)
            ]
            readings = [(s, d, at) for (s, d), at in zip(pairs, CLOCK.take(size), strict=True)]
            items = [_wire(r) for r in readings]
            body = json.dumps(items if size > 1 else items[0]).encode()
            sent = Sent(readings=readings, started=self.now())
            connection = self._send_until_answered(connection, sent, body)
            with self._lock:
                self.sent.append(sent)
        if connection is not None:
            connection.close()

    def _send_until_answered(self, connection, sent: Sent, body: bytes):
        headers = {
            "Authorization": f"Api-Key {self.fleet.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        give_up = time.monotonic() + RETRY_FOR_SECONDS
        while True:
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                connection.request("POST", "/v1/ingest", body=body, headers=headers)
                response = connection.getresponse()
                raw = response.read()
                status, by = response.status, response.getheader("X-Served-By", "")
            except (OSError, http.client.HTTPException):
                connection.close()
                connection, status, by, raw = None, None, "", b""
            sent.attempts.append((self.now(), status, by))
            if status is not None and status not in RETRY_STATUSES:
                sent.status = status
                sent.body = json.loads(raw) if raw else None
                sent.finished = self.now()
                return connection
            if time.monotonic() > give_up:
                sent.finished = self.now()
                return connection
            time.sleep(0.1)


def accepted_counter(url: str, token: str) -> float:
    answer = call(url, "GET", "/metrics", headers={"Authorization": f"Token {token}"})
    assert answer.status == 200, answer
    match = re.search(rb'^telemetry_readings_total\{outcome="accepted"\} (\S+)$', answer.body, re.M)
    return float(match.group(1)) if match else 0.0


class TestTwoInstances:
    def test_load_is_spread_and_a_killed_instance_loses_nothing(
        self, service, record_property, capsys
    ):
        before = baseline(service.database_url)
        a_name, b_name = server_name(service.a.port), server_name(service.b.port)
        clients = RetryingClients(url=service.proxy.url, fleet=service.fleet, clients=6).start()
        time.sleep(3)
        killed_at = clients.now()
        os.killpg(service.a.process.pid, signal.SIGKILL)  # the master and its workers, no goodbye
        service.a.process.wait(timeout=10)
        time.sleep(5)
        sent = clients.stop()
        result = audit(
            [s.outcome() for s in sent], database_url=service.database_url, before=before
        )

        attempts = [attempt for s in sent for attempt in s.attempts]
        failed_attempts = [a for a in attempts if a[1] is None or a[1] in RETRY_STATUSES]
        retried = [s for s in sent if len(s.attempts) > 1]
        before_kill = {s.served_by for s in sent if s.finished < killed_at}
        after_kill = [s for s in sent if s.started > killed_at + 1.5]
        duplicates_on_retry = sum(
            len(s.readings) - s.body["accepted"] for s in retried if isinstance(s.body, dict)
        )
        summary = "\n".join(
            [
                f"two instances, {a_name} SIGKILLed at {killed_at:.1f} s of {clients.now():.1f} s",
                f"requests sent {len(sent)} ({sum(len(s.readings) for s in sent)} readings), "
                f"acknowledged {result.acknowledged}; attempts {len(attempts)}, failed attempts "
                f"(502/503/connection) {len(failed_attempts)}, requests retried {len(retried)}",
                f"readings acknowledged {result.readings_acknowledged}, stored "
                f"{result.readings_stored}, counted by the rollups {result.rollup_count}; "
                f"acknowledged but missing {result.acknowledged_missing}, stored twice "
                f"{result.stored_twice}; retries answered as duplicates {duplicates_on_retry}",
                f"served before the kill by {sorted(before_kill)}; after it "
                f"{len(after_kill)} requests, by {sorted({s.served_by for s in after_kill})}",
            ]
        )
        record_property("figures", summary)
        with capsys.disabled():
            print(f"\n{summary}")

        assert before_kill == {a_name, b_name}
        assert failed_attempts, "the kill did not catch a single request in flight"
        assert all(s.status is not None and 200 <= s.status < 300 for s in sent), [
            (s.status, s.attempts) for s in sent if not s.status or s.status >= 300
        ][:5]
        assert result.acknowledged == len(sent)
        assert result.acknowledged_missing == 0
        assert result.stored_twice == 0
        assert result.readings_acknowledged == result.readings_stored == result.rollup_count
        # Only a retried request can meet its own readings already stored (the instance committed,
        # then died before answering); a request answered at the first try accepted them all.
        assert all(s.body["accepted"] == len(s.readings) for s in sent if len(s.attempts) == 1)
        assert len(after_kill) >= 20
        assert {s.served_by for s in after_kill} == {b_name}

    def test_a_session_opened_on_one_instance_is_valid_on_the_other(self, service):
        login = call(service.a.url, "GET", "/admin/login/")
        csrf = login.cookies()["csrftoken"]
        form = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', login.body).group(1)
        posted = call(
            service.a.url,
            "POST",
            "/admin/login/?next=/admin/",
            headers={
                "Cookie": f"csrftoken={csrf}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body=b"csrfmiddlewaretoken=" + form + b"&username=ops&password=ops-pass-123",
        )
        assert posted.status == 302, posted.body[:500]
        session = posted.cookies()["sessionid"]

        on_b = call(service.b.url, "GET", "/admin/", headers={"Cookie": f"sessionid={session}"})
        assert on_b.status == 200
        assert b"Site administration" in on_b.body

        # Logging out on B ends the session on A too: sessions live in the database.
        token = on_b.cookies().get("csrftoken", csrf)
        logout = call(
            service.b.url,
            "POST",
            "/admin/logout/",
            headers={
                "Cookie": f"sessionid={session}; csrftoken={token}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body=f"csrfmiddlewaretoken={token}".encode(),
        )
        assert logout.status == 200
        on_a = call(service.a.url, "GET", "/admin/", headers={"Cookie": f"sessionid={session}"})
        assert on_a.status == 302
        assert on_a.header("Location").startswith("/admin/login/")

    def test_a_revoked_key_stops_working_on_every_instance_within_the_cache_time(self, service):
        key = service.revocable_key
        headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}

        def post(instance: Gunicorn) -> int:
            reading = _wire(("meter", service.fleet.meters[0], CLOCK.take(1)[0]))
            return call(
                instance.url,
                "POST",
                "/v1/ingest",
                headers=headers,
                body=json.dumps(reading).encode(),
            ).status

        assert post(service.a) == 201 and post(service.b) == 201  # both remember it now
        with psycopg.connect(service.database_url, autocommit=True) as connection:
            connection.execute(
                "UPDATE telemetry_deviceapikey SET revoked = true WHERE name = 'revoke me'"
            )
        time.sleep(1.5)  # API_AUTH_CACHE_SECONDS=1 on both
        assert post(service.a) == 401
        assert post(service.b) == 401

    def test_each_instance_counts_what_it_served_and_the_sum_is_the_service(self, service):
        counters = {
            i.url: accepted_counter(i.url, service.staff_token) for i in (service.a, service.b)
        }
        headers = {
            "Authorization": f"Api-Key {service.fleet.api_key}",
            "Content-Type": "application/json",
        }
        served = set()
        for _ in range(20):
            batch = [_wire(("vehicle", service.fleet.vehicles[1], at)) for at in CLOCK.take(5)]
            answer = call(
                service.proxy.url,
                "POST",
                "/v1/ingest",
                headers=headers,
                body=json.dumps(batch).encode(),
            )
            assert answer.status == 201
            served.add(answer.header("X-Served-By"))
        grown = {
            url: accepted_counter(url, service.staff_token) - count
            for url, count in counters.items()
        }
        assert served == {server_name(service.a.port), server_name(service.b.port)}
        assert all(delta > 0 for delta in grown.values()), grown
        assert sum(grown.values()) == 100
