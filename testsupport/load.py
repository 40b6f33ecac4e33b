"""Load against the served project, with a ledger of every request: the fault tests and the soak.

Every reading sent has a timestamp no other reading of the run has (a shared clock hands them
out), so afterwards each request's own readings can be looked up in the database: a request that
was acknowledged (2xx) must have all of them stored, once; a request that failed must have none.
"""

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from testsupport.streams import streams

ROOT = Path(__file__).resolve().parent.parent

INGEST_KINDS = ("ingest-single", "ingest-batch")
READ_KINDS = ("status", "history", "performance")

_PROVISION = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token
from fleet.models import Meter, Vehicle
from fleet.services import meter_assign
from telemetry.services import api_key_create
user = get_user_model().objects.create_user(username="load", password="load-pass-123")
token = Token.objects.create(user=user)
_, key = api_key_create(name="load gateway")
since = timezone.now() - timedelta(hours=3)
for n in range(COUNT):
    vehicle = Vehicle.objects.create(vehicle_id=f"V-LOAD-{n}")
    meter = Meter.objects.create(meter_id=f"M-LOAD-{n}")
    meter_assign(vehicle=vehicle, meter=meter, valid_from=since)
print(key)
print(token.key)
"""


@dataclass(frozen=True)
class Fleet:
    """What the load needs: a device key, a user's token and the mapped devices."""

    api_key: str
    token: str
    vehicles: tuple[str, ...]
    meters: tuple[str, ...]


def manage(database_url: str, *args: str) -> str:
    """Run `manage.py` against `database_url`; its stdout."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY", "test-only-secret-key"),
        "DEBUG": "false",
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def provision(database_url: str, *, vehicles: int = 20) -> Fleet:
    """Migrate an empty database; add a key, a token and `vehicles` mapped vehicle-meter pairs."""
    manage(database_url, "migrate", "--no-input", "-v", "0")
    script = _PROVISION.replace("COUNT", str(vehicles))
    key, token = manage(database_url, "shell", "-c", script).split()[-2:]
    return Fleet(
        api_key=key,
        token=token,
        vehicles=tuple(f"V-LOAD-{n}" for n in range(vehicles)),
        meters=tuple(f"M-LOAD-{n}" for n in range(vehicles)),
    )


class ReadingClock:
    """Hands out timestamps one millisecond apart: no two readings of this process share one.

    One clock per process (`CLOCK`), shared by every `Load`: two loads against one database (a
    fixture's seed, then a test's load a moment later) never send the same (device, timestamp).
    """

    def __init__(self) -> None:
        self._start: datetime | None = None
        self._next = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> list[datetime]:
        with self._lock:
            if self._start is None:
                self._start = (datetime.now(UTC) - timedelta(minutes=90)).replace(microsecond=0)
            first, self._next = self._next, self._next + count
        return [self._start + timedelta(milliseconds=first + n) for n in range(count)]


CLOCK = ReadingClock()


# (stream, device external id, recorded_at)
Reading = tuple[str, str, datetime]


@dataclass
class Outcome:
    """One request and what came of it."""

    kind: str
    started: float  # seconds since the load began
    seconds: float
    status: int | None  # None: no answer (connection error, timeout)
    error: str = ""
    body: object = None
    content_type: str = ""
    retry_after: str | None = None
    readings: list[Reading] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Mix:
    """Weights of the request kinds, and the size of an ingest batch."""

    weights: dict[str, float]
    batch_size: int = 50

    def pick(self, rng: random.Random) -> str:
        kinds = list(self.weights)
        return rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]


class Load:
    """`clients` threads sending requests until `stop()`; each outcome lands in `outcomes`.

    `rate` (requests per second, all clients together) paces the clients; None: as fast as the
    server answers. Connections are kept alive, and reopened after an error.
    """

    def __init__(
        self,
        *,
        url: str,
        fleet: Fleet,
        mix: Mix,
        clients: int,
        rate: float | None = None,
        timeout: float = 10.0,
        seed: int = 1,
    ):
        self.host, self.port = url.removeprefix("http://").split(":")
        self.fleet = fleet
        self.mix = mix
        self.clients = clients
        self.interval = clients / rate if rate else 0.0
        self.timeout = timeout
        self.seed = seed
        self.clock = CLOCK
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.began = time.monotonic()

    def start(self) -> "Load":
        self.began = time.monotonic()
        for n in range(self.clients):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        return self.outcomes

    def now(self) -> float:
        return time.monotonic() - self.began

    def seed_readings(self) -> Outcome:
        """One batch with a reading of every device, so that status reads find a live row."""
        readings = self._readings_of([("meter", m) for m in self.fleet.meters])
        readings += self._readings_of([("vehicle", v) for v in self.fleet.vehicles])
        connection = http.client.HTTPConnection(self.host, int(self.port), timeout=self.timeout)
        try:
            outcome = self._ingest(connection, "seed", readings, batch=True)
        finally:
            connection.close()
        with self._lock:
            self.outcomes.append(outcome)
        return outcome

    def _client(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        connection = None
        due = time.monotonic()
        while not self._stop.is_set():
            if self.interval:
                due += self.interval
                delay = due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -1:
                    due = time.monotonic()  # far behind: do not burst to catch up
                if self._stop.is_set():
                    break
            if connection is None:
                connection = http.client.HTTPConnection(
                    self.host, int(self.port), timeout=self.timeout
                )
            outcome = self._one(connection, self.mix.pick(rng), rng)
            if outcome.status is None:
                connection.close()
                connection = None
            with self._lock:
                self.outcomes.append(outcome)
        if connection is not None:
            connection.close()

    def _one(self, connection, kind: str, rng: random.Random) -> Outcome:
        if kind == "ingest-single":
            stream = rng.choice(("meter", "vehicle"))
            devices = self.fleet.meters if stream == "meter" else self.fleet.vehicles
            return self._ingest(
                connection, kind, self._readings_of([(stream, rng.choice(devices))]), batch=False
            )
        if kind == "ingest-batch":
            devices = {"meter": self.fleet.meters, "vehicle": self.fleet.vehicles}
            pairs = [
                (stream, rng.choice(devices[stream]))
                for stream in rng.choices(("meter", "vehicle"), k=self.mix.batch_size)
            ]
            return self._ingest(connection, kind, self._readings_of(pairs), batch=True)
        vehicle = rng.choice(self.fleet.vehicles)
        path = {
            "status": f"/v1/status/vehicle/{vehicle}",
            "history": f"/v1/history/vehicle/{vehicle}?hours=3&limit=100",
            "performance": f"/v1/analytics/performance/{vehicle}?hours=3",
        }[kind]
        return self._send(connection, kind, "GET", path, None, f"Token {self.fleet.token}", [])

    def _readings_of(self, pairs: list[tuple[str, str]]) -> list[Reading]:
        return [
            (stream, device, at)
            for (stream, device), at in zip(pairs, self.clock.take(len(pairs)), strict=True)
        ]

    def _ingest(self, connection, kind: str, readings: list[Reading], *, batch: bool) -> Outcome:
        items = [_wire(reading) for reading in readings]
        body = json.dumps(items if batch else items[0]).encode()
        authorization = f"Api-Key {self.fleet.api_key}"
        return self._send(connection, kind, "POST", "/v1/ingest", body, authorization, readings)

    def _send(self, connection, kind, method, path, body, authorization, readings) -> Outcome:
        headers = {"Authorization": authorization, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            return Outcome(
                kind=kind,
                started=started - self.began,
                seconds=time.monotonic() - started,
                status=None,
                error=f"{type(error).__name__}: {error}",
                readings=readings,
            )
        content_type = response.getheader("Content-Type", "")
        try:
            parsed = json.loads(raw) if "json" in content_type else raw[:200].decode("replace")
        except ValueError:
            parsed = raw[:200].decode("utf-8", "replace")
        return Outcome(
            kind=kind,
            started=started - self.began,
            seconds=time.monotonic() - started,
            status=response.status,
            body=parsed,
            content_type=content_type,
            retry_after=response.getheader("Retry-After"),
            readings=readings,
        )


def _wire(reading: Reading) -> dict:
    stream, device, at = reading
    timestamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if stream == "meter":
        return {"meterId": device, "kwhConsumedAc": 0.25, "voltage": 230.0, "timestamp": timestamp}
    return {
        "vehicleId": device,
        "soc": 50.0,
        "kwhDeliveredDc": 0.2,
        "batteryTemp": 30.0,
        "timestamp": timestamp,
    }


def stored_readings(database_url: str) -> list[Reading]:
    """Every history row of the database, as (stream, device external id, recorded_at)."""
    rows = []
    with psycopg.connect(database_url) as connection:
        for stream in streams():
            pk = stream.device_model._meta.pk.column
            rows += connection.execute(
                f"SELECT %s::text, d.{stream.registry_id}, r.recorded_at FROM {stream.history} r "
                f"JOIN {stream.registry} d ON d.{pk} = r.{stream.device_column}",
                [stream.kind],
            ).fetchall()
    return [tuple(row) for row in rows]


def rollup_reading_count(database_url: str) -> int:
    """Readings the hourly rollups count: equal to the history rows when none was counted twice."""
    counts = " + ".join(
        f"(SELECT coalesce(sum({stream.rollup_of(None)}), 0) FROM {stream.hourly})"
        for stream in streams()
    )
    with psycopg.connect(database_url) as connection:
        return connection.execute(f"SELECT {counts}").fetchone()[0]


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def latency_table(outcomes: list[Outcome], *, interval: float, kinds: tuple[str, ...]) -> str:
    """p50 / p99 in ms per `interval` seconds and kind, with counts and non-2xx answers."""
    buckets: dict[tuple[int, str], list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.kind in kinds:
            buckets[(int(outcome.started // interval), outcome.kind)].append(outcome)
    header = f"{'interval':>13} " + " ".join(f"{kind:>26}" for kind in kinds)
    lines = [header, f"{'':>13} " + " ".join(f"{'n   p50   p99 ms  !2xx':>26}" for _ in kinds)]
    for slot in sorted({slot for slot, _ in buckets}):
        cells = []
        for kind in kinds:
            done = buckets.get((slot, kind), [])
            if not done:
                cells.append(f"{'-':>26}")
                continue
            ms = [outcome.seconds * 1000 for outcome in done]
            failed = sum(1 for outcome in done if not outcome.acknowledged)
            cells.append(
                f"{len(done):>6} {percentile(ms, 0.5):>6.1f} {percentile(ms, 0.99):>7.1f}"
                f" {failed:>5}"
            )
        start, end = slot * interval, (slot + 1) * interval
        lines.append(f"{f'{start:.0f}-{end:.0f} s':>13} " + " ".join(cells))
    return "\n".join(lines)


def overall(outcomes: list[Outcome], kind: str) -> str:
    ms = [outcome.seconds * 1000 for outcome in outcomes if outcome.kind == kind]
    if not ms:
        return f"{kind}: none"
    return (
        f"{kind}: {len(ms)} requests, p50 {statistics.median(ms):.1f} ms, "
        f"p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms"
    )


@dataclass(frozen=True)
class Audit:
    """What the database holds against what the clients were told."""

    requests: int
    acknowledged: int
    unavailable: int  # 503 answers
    server_errors: int  # other 5xx answers
    unanswered: int  # no answer at all (connection error, client timeout)
    readings_acknowledged: int
    readings_stored: int
    acknowledged_missing: int  # acknowledged readings not stored
    failed_stored: int  # readings of failed requests that were stored anyway
    stored_twice: int
    reported_duplicates: int  # acknowledged readings the service called duplicates: none expected
    rollup_count: int

    @property
    def exact(self) -> bool:
        return (
            self.acknowledged_missing == 0
            and self.failed_stored == 0
            and self.stored_twice == 0
            and self.reported_duplicates == 0
            and self.readings_acknowledged == self.readings_stored == self.rollup_count
        )

    def lines(self) -> list[str]:
        return [
            f"requests sent {self.requests}: acknowledged (2xx) {self.acknowledged}, "
            f"503 {self.unavailable}, other 5xx {self.server_errors}, "
            f"unanswered {self.unanswered}",
            f"readings acknowledged {self.readings_acknowledged}, stored {self.readings_stored} "
            f"(counted by the hourly rollups {self.rollup_count}); acknowledged but missing "
            f"{self.acknowledged_missing}, of failed requests but stored {self.failed_stored}, "
            f"stored twice {self.stored_twice}, answered as duplicates {self.reported_duplicates}",
        ]


@dataclass(frozen=True)
class Baseline:
    """What the database held before the load: the audit counts only what came after."""

    readings: frozenset
    rollup_count: int


def baseline(database_url: str) -> Baseline:
    return Baseline(frozenset(stored_readings(database_url)), rollup_reading_count(database_url))


def audit(outcomes: list[Outcome], *, database_url: str, before: Baseline) -> Audit:
    """Compare every request's readings with the history rows added since `before`."""
    stored = [r for r in stored_readings(database_url) if r not in before.readings]
    stored_set = set(stored)
    acknowledged = [r for o in outcomes if o.acknowledged for r in o.readings]
    # A request that got no answer may or may not have been stored: it is neither.
    failed = [r for o in outcomes if o.status and not o.acknowledged for r in o.readings]
    return Audit(
        requests=len(outcomes),
        acknowledged=sum(1 for o in outcomes if o.acknowledged),
        unavailable=sum(1 for o in outcomes if o.status == 503),
        server_errors=sum(1 for o in outcomes if o.status and o.status >= 500 and o.status != 503),
        unanswered=sum(1 for o in outcomes if o.status is None),
        readings_acknowledged=len(acknowledged),
        readings_stored=len(stored),
        acknowledged_missing=len(set(acknowledged) - stored_set),
        failed_stored=len(set(failed) & stored_set),
        stored_twice=len(stored) - len(stored_set),
        reported_duplicates=sum(
            len(o.readings) - o.body.get("accepted", 0)
            for o in outcomes
            if o.acknowledged and o.readings and isinstance(o.body, dict)
        ),
        rollup_count=rollup_reading_count(database_url) - before.rollup_count,
    )
