"""The ingest rate limit per device key: in one process, on the real Redis, and across processes."""

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from energy.settings import env_rate
from telemetry.models import MeterReading
from telemetry.services import api_key_create
from telemetry.tests.factories import meter_payload
from telemetry.throttles import rate_count_hit, rate_window
from testsupport.redis import delete_prefixed, redis_client, redis_url
from testsupport.servers import free_port

pytestmark = pytest.mark.django_db


def key_with_room(*, period: int, seconds: float) -> tuple[str, str]:
    """A new device key whose current window has at least `seconds` left (so a test of a few
    seconds never straddles two windows); returns its prefix and text."""
    while True:
        api_key, text = api_key_create(name="throttled gateway")
        _, end = rate_window(key_prefix=api_key.prefix, period=period, now=time.time())
        if end - time.time() >= seconds:
            return api_key.prefix, text
        api_key.delete()


def client_of(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def readings_at(count: int) -> list[dict]:
    """`count` meter readings of one meter, a second apart, ending now."""
    now = datetime.now(UTC).replace(microsecond=0)
    return [meter_payload("M-RATE", at=now - timedelta(seconds=i)) for i in range(count)]


def assert_throttled(response, *, limit: int, period: int) -> None:
    body = response.json()
    assert response.status_code == 429
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 0, [])
    assert body["detail"].startswith(
        f"Rate limit exceeded: this key may make {limit} ingest requests per "
    ), body
    assert 1 <= int(response["Retry-After"]) <= period


class TestRateSetting:
    @pytest.mark.parametrize(
        ("text", "rate"),
        [
            ("1200/min", (1200, 60)),
            ("20/s", (20, 1)),
            ("5 / second", (5, 1)),
            ("100/h", (100, 3600)),
            ("3/hour", (3, 3600)),
            ("1/day", (1, 86400)),
            ("7/M", (7, 60)),
            ("", None),
        ],
    )
    def test_reads_requests_per_period(self, monkeypatch, text, rate):
        monkeypatch.setenv("TELEMETRY_RATE_LIMIT", text)

        assert env_rate("TELEMETRY_RATE_LIMIT") == rate

    def test_is_off_when_unset(self, monkeypatch):
        monkeypatch.delenv("TELEMETRY_RATE_LIMIT", raising=False)

        assert env_rate("TELEMETRY_RATE_LIMIT") is None

    @pytest.mark.parametrize("text", ["1200", "0/min", "-1/min", "10/month", "ten/min", "1/min\n2"])
    def test_refuses_anything_else_naming_the_variable(self, monkeypatch, text):
        monkeypatch.setenv("TELEMETRY_RATE_LIMIT", text)

        with pytest.raises(ImproperlyConfigured, match="TELEMETRY_RATE_LIMIT="):
            env_rate("TELEMETRY_RATE_LIMIT")


class TestCounter:
    def test_counts_each_of_many_concurrent_hits_once_on_redis(self, redis_cache):
        """The property DRF's get-then-set history lacks: N racing requests get N distinct
        counts, so exactly `limit` of them can pass."""
        threads, barrier, counts = 16, threading.Barrier(16), []
        lock = threading.Lock()

        def hit():
            barrier.wait()
            for _ in range(25):
                count = rate_count_hit(counter="race", timeout=60)
                with lock:
                    counts.append(count)

        workers = [threading.Thread(target=hit) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

        assert sorted(counts) == list(range(1, threads * 25 + 1))

    def test_windows_of_different_keys_end_at_different_seconds(self):
        ends = {rate_window(key_prefix=f"k{i}", period=3600, now=0.0)[1] for i in range(50)}

        assert len(ends) > 40
        assert all(0 < end <= 3600 for end in ends)


@pytest.mark.usefixtures("local_memory_cache")
class TestInOneProcess:
    def test_admits_the_limit_then_answers_429_and_stores_nothing_more(self, settings):
        settings.TELEMETRY_RATE_LIMIT = (3, 60)
        _, key = key_with_room(period=60, seconds=10)
        client, readings = client_of(key), readings_at(5)

        statuses = [client.post("/v1/ingest", r, format="json") for r in readings]

        assert [r.status_code for r in statuses] == [201, 201, 201, 429, 429]
        for response in statuses[3:]:
            assert_throttled(response, limit=3, period=60)
        stored = set(MeterReading.objects.values_list("recorded_at", flat=True))
        sent = [datetime.fromisoformat(r["timestamp"]) for r in readings]
        assert stored == set(sent[:3])

    def test_a_refused_batch_stores_none_of_its_readings(self, settings):
        settings.TELEMETRY_RATE_LIMIT = (1, 60)
        _, key = key_with_room(period=60, seconds=10)
        client = client_of(key)
        client.post("/v1/ingest", readings_at(1)[0], format="json")

        response = client.post("/v1/ingest/meter/batch", readings_at(50), format="json")

        assert_throttled(response, limit=1, period=60)
        assert MeterReading.objects.count() == 1

    def test_counts_each_key_apart(self, settings):
        settings.TELEMETRY_RATE_LIMIT = (2, 60)
        one, other = (client_of(key_with_room(period=60, seconds=10)[1]) for _ in range(2))
        readings = readings_at(6)

        first = [one.post("/v1/ingest", r, format="json").status_code for r in readings[:3]]
        second = [other.post("/v1/ingest", r, format="json").status_code for r in readings[3:]]

        assert (first, second) == ([201, 201, 429], [201, 201, 429])

    def test_admits_again_in_the_next_window(self, settings):
        settings.TELEMETRY_RATE_LIMIT = (1, 60)
        prefix, key = key_with_room(period=60, seconds=10)
        client, readings = client_of(key), readings_at(3)
        _, end = rate_window(key_prefix=prefix, period=60, now=time.time())

        before = [client.post("/v1/ingest", r, format="json").status_code for r in readings[:2]]
        with time_machine.travel(end + 0.5, tick=False):
            after = client.post("/v1/ingest", readings[2], format="json").status_code

        assert (before, after) == ([201, 429], 201)

    def test_is_off_by_default(self, settings):
        settings.TELEMETRY_RATE_LIMIT = None
        client = client_of(api_key_create(name="unlimited")[1])

        statuses = {
            client.post("/v1/ingest", r, format="json").status_code for r in readings_at(30)
        }

        assert statuses == {201}

    def test_an_unauthenticated_request_is_401_not_counted(self, settings):
        settings.TELEMETRY_RATE_LIMIT = (1, 60)

        statuses = [
            APIClient().post("/v1/ingest", r, format="json").status_code for r in readings_at(3)
        ]

        assert statuses == [401, 401, 401]


class TestOnRedis:
    def test_admits_the_limit_then_answers_429(self, settings, redis_cache):
        settings.TELEMETRY_RATE_LIMIT = (4, 3600)
        _, key = key_with_room(period=3600, seconds=60)
        client, readings = client_of(key), readings_at(7)

        responses = [client.post("/v1/ingest", r, format="json") for r in readings]

        assert [r.status_code for r in responses] == [201] * 4 + [429] * 3
        for response in responses[4:]:
            assert_throttled(response, limit=4, period=3600)
        assert MeterReading.objects.count() == 4

    def test_lets_requests_through_and_says_so_when_redis_is_down(self, settings, caplog):
        settings.TELEMETRY_RATE_LIMIT = (1, 60)
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
                "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
            }
        }
        import telemetry.throttles

        telemetry.throttles._last_warning = 0.0
        client = client_of(api_key_create(name="gateway")[1])

        with caplog.at_level(logging.WARNING, logger="telemetry.throttles"):
            statuses = [
                client.post("/v1/ingest", r, format="json").status_code for r in readings_at(3)
            ]

        assert statuses == [201, 201, 201]
        warnings = [r.getMessage() for r in caplog.records if r.name == "telemetry.throttles"]
        assert len(warnings) == 1
        assert warnings[0].startswith("ingest rate limit not enforced: the cache is unavailable")


# --- across processes: the project under gunicorn, counters in the real Redis ------------------

ACCESS_FORMAT = "%(p)s %(s)s %(U)s"


def post_reading(url: str, key: str, reading: dict) -> tuple[int, dict, str | None]:
    request = urllib.request.Request(
        f"{url}/v1/ingest",
        data=json.dumps(reading).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers.get("Retry-After")


def served_with_limit(served_project, tmp_path, *, rate: str, workers: int, name: str):
    access_log = tmp_path / f"access-{name}.log"
    server = served_project(
        env={
            "REDIS_URL": redis_url(),
            "TELEMETRY_RATE_LIMIT": rate,
            "GUNICORN_ACCESS_LOG": str(access_log),
            "GUNICORN_CMD_ARGS": f"--access-logformat='{ACCESS_FORMAT}'",
        },
        workers=workers,
    )
    return server, access_log


def statuses_by_pid(access_log) -> dict[str, Counter]:
    by_pid: dict[str, Counter] = {}
    for line in access_log.read_text().splitlines():
        match = re.fullmatch(r"<(\d+)> (\d{3}) /v1/ingest", line.strip())
        if match:
            by_pid.setdefault(match[1], Counter())[int(match[2])] += 1
    return by_pid


def send_concurrently(urls: list[str], key: str, readings: list[dict]) -> list[tuple]:
    """Each reading on a new connection from 16 client threads, round-robin over `urls`."""
    with ThreadPoolExecutor(16) as pool:
        return list(
            pool.map(
                lambda item: (item[1], *post_reading(urls[item[0] % len(urls)], key, item[1])),
                enumerate(readings),
            )
        )


def check_limit_held(results: list[tuple], *, limit: int) -> None:
    """Exactly `limit` stored, every other request a 429 with Retry-After that stored nothing."""
    statuses = Counter(status for _, status, _, _ in results)
    assert statuses == {201: limit, 429: len(results) - limit}, statuses
    for _, status, body, retry_after in results:
        if status == 429:
            assert (body["accepted"], body["rejected"]) == (0, [])
            assert retry_after is not None and int(retry_after) >= 1
    accepted = {
        datetime.fromisoformat(reading["timestamp"])
        for reading, status, _, _ in results
        if status == 201
    }
    assert set(MeterReading.objects.values_list("recorded_at", flat=True)) == accepted


@pytest.fixture
def served_key():
    """A device key with at least 5 minutes left in its hourly window; its counters in the real
    Redis (as the served project names them) are deleted afterwards."""
    prefix, key = key_with_room(period=3600, seconds=300)
    yield key
    delete_prefixed(redis_client(redis_url()), f"energy:1:ratelimit:ingest:{prefix}")


@pytest.mark.postgresql
class TestAcrossProcesses:
    def test_the_limit_holds_across_two_gunicorn_workers(
        self, served_project, tmp_path, served_key
    ):
        limit, sent, key = 25, 100, served_key
        server, access_log = served_with_limit(
            served_project, tmp_path, rate=f"{limit}/h", workers=2, name="workers"
        )

        results = send_concurrently([server.url], key, readings_at(sent))

        check_limit_held(results, limit=limit)
        by_pid = statuses_by_pid(access_log)
        print(
            f"\nrate limit {limit}/h across 2 gunicorn workers (Redis {redis_url()}): sent {sent},"
            f" 201: {sum(c[201] for c in by_pid.values())}, 429: "
            f"{sum(c[429] for c in by_pid.values())}; per worker pid: "
            + ", ".join(f"{pid}: {dict(c)}" for pid, c in sorted(by_pid.items()))
        )
        assert len(by_pid) == 2, by_pid  # both workers served requests
        assert sum(c[201] for c in by_pid.values()) == limit

    def test_the_limit_holds_across_two_instances(self, served_project, tmp_path, served_key):
        limit, sent, key = 15, 60, served_key
        servers = [
            served_with_limit(
                served_project, tmp_path, rate=f"{limit}/h", workers=1, name=f"instance{i}"
            )
            for i in range(2)
        ]

        results = send_concurrently([server.url for server, _ in servers], key, readings_at(sent))

        check_limit_held(results, limit=limit)
        per_instance = [sum(statuses_by_pid(log).values(), Counter()) for _, log in servers]
        print(
            f"\nrate limit {limit}/h across 2 instances sharing Redis: sent {sent}, "
            + "; ".join(f"instance {i}: {dict(c)}" for i, c in enumerate(per_instance))
        )
        assert all(c.total() == sent // 2 for c in per_instance), per_instance
