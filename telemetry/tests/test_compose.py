"""docker-compose.yml: valid against the Compose Specification schema, and its commands work.

There is no Docker engine on the development machines or in CI, so the file is checked in two
ways: its interpolated form validates against the Compose Specification's JSON schema (vendored in
testsupport/compose-spec.schema.json, from the npm package dclint 3.1.0), and the commands its
services run — the migrate service with the first admin, the scheduled jobs, gunicorn and the web
healthcheck, `check --deploy` with the web environment — are parsed out of the file and run here
as written, against a PostgreSQL database of the test's own (the host names `db` and `redis`
replaced by this machine's servers).
"""

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import psycopg
import pytest
import yaml

from testsupport.servers import ROOT, free_port

COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "testsupport" / "compose-spec.schema.json"

# What an operator puts in .env (the compose file's required variables), for the tests.
OPERATOR_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "POSTGRES_PASSWORD": "change-me",
    "DOMAIN": "energy.example.com",
    "DJANGO_SUPERUSER_PASSWORD": "first-admin-pass-123",
    "MQTT_CONSUMER_PASSWORD": "consumer-pass",
}
REQUIRED = set(OPERATOR_ENV)
APP_SERVICES = {
    "migrate",
    "web",
    "partitions",
    "alarms",
    "notifications",
    "mqtt-credentials",
    "ingest-mqtt",
}

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_]\w*))"
)


class MissingVariable(Exception):
    pass


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of each string of the file: $$, $X, ${X}, ${X:-d}, ${X:?e}."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg, found = match["op"], match["arg"] or "", env.get(name)
        if op in (":?", "?") and (found is None or (op == ":?" and found == "")):
            raise MissingVariable(f"{name}: {arg}")
        if op == ":-" and not found:
            return arg
        if op == "-" and found is None:
            return arg
        return found or ""

    return _VARIABLE.sub(one, value)


def compose(env: dict[str, str] | None = None) -> dict:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), OPERATOR_ENV if env is None else env)


def environment_of(service: dict) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environments are written as mappings"
    return {name: "" if value is None else str(value) for name, value in environment.items()}


def postgres_setting(service: dict, name: str) -> str:
    command = service["command"]
    return next(arg.split("=", 1)[1] for arg in command if arg.startswith(f"{name}="))


def to_bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)\s*([kKmMgG])[bB]?", size).groups()
    return int(number) * 1024 ** {"k": 1, "m": 2, "g": 3}[unit.lower()]


class TestTheFile:
    def test_validates_against_the_compose_specification(self):
        schema = json.loads(SCHEMA.read_text())
        jsonschema.Draft7Validator.check_schema(schema)

        errors = list(jsonschema.Draft7Validator(schema).iter_errors(compose()))

        assert errors == [], [f"{list(e.absolute_path)}: {e.message}" for e in errors]

    def test_the_schema_refuses_what_it_should(self):
        schema = json.loads(SCHEMA.read_text())
        broken = compose()
        broken["services"]["web"]["healthcheck"]["start_period"] = ["30s"]
        broken["services"]["db"]["shm_sizes"] = "2gb"

        errors = list(jsonschema.Draft7Validator(schema).iter_errors(broken))

        assert len(errors) == 2

    @pytest.mark.parametrize("name", sorted(REQUIRED))
    def test_each_required_variable_is_refused_when_missing(self, name):
        env = {key: value for key, value in OPERATOR_ENV.items() if key != name}

        with pytest.raises(MissingVariable, match=rf"^{name}: set {name}$"):
            compose(env)

    def test_postgres_has_a_volume_a_healthcheck_and_shm_to_match_shared_buffers(self):
        services = compose()["services"]
        for name in ("db", "db-replica"):
            db = services[name]
            assert db["image"] == "postgres:15"
            assert db["healthcheck"]["test"][0] == "CMD-SHELL"
            assert any(volume.endswith(":/var/lib/postgresql/data") for volume in db["volumes"])
        db = services["db"]
        assert to_bytes(db["shm_size"]) >= to_bytes(postgres_setting(db, "shared_buffers"))
        assert "synchronous_commit=off" not in db["command"]
        assert services["db-replica"]["profiles"] == ["replica"]  # optional

    def test_app_services_share_one_image_and_start_after_migrate(self):
        services = compose()["services"]
        assert {name for name, s in services.items() if "build" in s} == APP_SERVICES
        assert {services[name]["image"] for name in APP_SERVICES} == {"energy-telemetry:latest"}
        for name in APP_SERVICES - {"migrate", "ingest-mqtt"}:
            assert services[name]["depends_on"]["migrate"] == {
                "condition": "service_completed_successfully"
            }
        assert services["migrate"]["restart"] == "no"
        assert services["migrate"]["depends_on"]["db"] == {"condition": "service_healthy"}

    def test_web_has_a_healthcheck_with_a_start_period_and_redis_counts_the_limits(self):
        services = compose()["services"]
        web = services["web"]
        assert web["healthcheck"]["start_period"] == "30s"
        assert "gunicorn energy.wsgi -c gunicorn.conf.py" in web["command"][-1]
        assert environment_of(web)["REDIS_URL"] == "redis://redis:6379/0"
        assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]

    def test_the_scheduled_jobs_are_services(self):
        services = compose()["services"]
        assert "manage.py manage_partitions" in services["partitions"]["command"][-1]
        assert services["alarms"]["command"][2:] == ["evaluate_alarms", "--loop", "60"]
        assert services["notifications"]["command"][2:] == ["deliver_notifications", "--loop", "5"]


class TestTheImage:
    def test_installs_the_runtime_only_and_runs_as_a_non_root_user(self):
        dockerfile = (ROOT / "Dockerfile").read_text()
        installs = re.findall(r"pip install (.*)", dockerfile)
        users = re.findall(r"^USER (\S+)$", dockerfile, re.M)

        assert installs == ["-r requirements.txt"]
        assert users and users[-1] not in ("root", "0")
        assert dockerfile.index("COPY requirements.txt") < dockerfile.index("COPY . .")

    def test_runtime_requirements_hold_no_test_or_lint_package(self):
        runtime = _packages(ROOT / "requirements.txt")
        development = (ROOT / "requirements-dev.txt").read_text().splitlines()

        assert not runtime & {"pytest", "pytest-django", "ruff", "hypothesis", "playwright"}
        assert {"django", "gunicorn", "psycopg", "redis"} <= runtime
        assert "-r requirements.txt" in development
        assert {"pytest", "ruff", "jsonschema"} <= _packages(ROOT / "requirements-dev.txt")

    def test_the_build_context_leaves_tests_and_tools_out(self):
        ignored = (ROOT / ".dockerignore").read_text().splitlines()

        assert {".venv", ".git", "**/tests", "testsupport", "bench", "requirements-dev.txt"} <= set(
            ignored
        )


def _packages(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "-")):
            names.add(re.split(r"[\[=<>]", line, maxsplit=1)[0].lower())
    return names


# --- the services' commands, run as written -----------------------------------------------------


@pytest.fixture(scope="module")
def compose_database(django_db_setup, django_db_blocker):
    """An empty database of its own beside the test database (the migrate service makes it)."""
    from django.conf import settings

    from testsupport.servers import database_url

    default = settings.DATABASES["default"]
    name = f"{default['NAME']}_compose"
    admin_url = database_url({**default, "NAME": "postgres"})
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url({**default, "NAME": name})
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def migrated(compose_database):
    """The migrate service's first run on the empty database: (database URL, its result)."""
    migrate = compose()["services"]["migrate"]
    first = run(migrate["command"], service_env(migrate, compose_database), timeout=400)
    return compose_database, first


def service_env(service: dict, database: str, **extra: str) -> dict[str, str]:
    """The service's environment from the file, its hosts (`db`, `redis`) pointed at ours."""
    env = environment_of(service)
    env["DATABASE_URL"] = database
    env["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONUNBUFFERED": "1",  # as the image's ENV: a job's line shows when it is written
        **env,
        **extra,
    }


def run(command: list[str], env: dict[str, str], *, timeout: float = 180):
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


class Running:
    """A long-running service command, started in a session of its own."""

    def __init__(self, command: list[str], env: dict[str, str]):
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []

    def wait_for_lines(self, pattern: str, count: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        os.set_blocking(self.process.stdout.fileno(), False)
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line:
                self.lines.append(line.rstrip("\n"))
                matching = [x for x in self.lines if re.search(pattern, x)]
                if len(matching) >= count:
                    return matching
            elif self.process.poll() is not None:
                break
            else:
                time.sleep(0.05)
        raise AssertionError(
            f"no {count}× {pattern!r} within {timeout} s:\n" + "\n".join(self.lines)
        )

    def stop(self, sig: int) -> int:
        """Send `sig` to the service's main process (as Docker's stop_signal does); its status."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # a leftover `sleep`, if any
            self.lines += (self.process.stdout.read() or "").splitlines()


STOP_SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


@pytest.mark.postgresql
class TestTheCommands:
    def test_migrate_makes_the_schema_and_the_first_admin_once(self, migrated):
        compose_database, first = migrated
        migrate = compose()["services"]["migrate"]

        second = run(migrate["command"], service_env(migrate, compose_database))

        assert first.returncode == 0, first.stdout + first.stderr
        assert "Superuser created successfully." in first.stdout
        assert second.returncode == 0, second.stdout + second.stderr
        assert "Superuser created" not in second.stdout
        assert "No migrations to apply." in second.stdout
        with psycopg.connect(compose_database) as connection:
            admins = connection.execute(
                "SELECT username, email, is_superuser, is_staff, password FROM auth_user"
            ).fetchall()
            partitions = connection.execute(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
                "WHERE p.relname = 'telemetry_meterreading'"
            ).fetchone()[0]
        assert [row[:4] for row in admins] == [("admin", "admin@example.com", True, True)]
        assert admins[0][4].startswith("pbkdf2_sha256$")
        assert partitions >= 8  # today and the 7 days ahead

    def test_the_scheduled_jobs_run_their_rounds_and_stop_on_their_stop_signal(self, migrated):
        compose_database, _ = migrated
        services = compose()["services"]
        expected = {
            "partitions": r"^manage_partitions: days created \d+, partitions dropped 0",
            "alarms": r"mapped vehicles evaluated; opened none; cleared none",
            "notifications": r"^0 deliveries attempted",
        }
        for name, pattern in expected.items():
            service = services[name]
            # Rounds every second instead of every 6 hours / minute / 5 s: the loop is the same.
            command = [part for part in service["command"]]
            if "--loop" in command:
                command[command.index("--loop") + 1] = "1"
            env = service_env(service, compose_database, PARTITIONS_EVERY_SECONDS="1")
            job = Running(command, env)
            try:
                job.wait_for_lines(pattern, count=2, timeout=90)
            finally:
                status = job.stop(STOP_SIGNALS[service.get("stop_signal", "SIGTERM")])
            assert status == 0, (name, job.lines)
            assert not any("Traceback" in line for line in job.lines), job.lines

    def test_web_starts_under_gunicorn_and_its_healthcheck_passes(self, migrated, tmp_path):
        compose_database, _ = migrated
        web = compose()["services"]["web"]
        env = service_env(
            web,
            compose_database,
            GUNICORN_BIND=f"127.0.0.1:{free_port()}",
            GUNICORN_WORKERS="1",
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        )
        healthcheck = web["healthcheck"]["test"][1:]  # after "CMD"
        server = Running(web["command"], env)
        try:
            deadline = time.monotonic() + 60  # well within start_period + retries × interval
            while True:
                check = run(healthcheck, env, timeout=30)
                if check.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        finally:
            status = server.stop(signal.SIGTERM)
        assert check.returncode == 0, check.stderr + "\n".join(server.lines)
        assert status == 0, server.lines

    def test_check_deploy_is_clean_with_the_web_environment(self, compose_database, tmp_path):
        # Item 6 of the deployment: the production environment of the compose file passes (the
        # metrics directory is the one the web command creates before gunicorn starts).
        web = compose()["services"]["web"]
        metrics = tmp_path / "prometheus"
        metrics.mkdir()

        result = run(
            ["python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            service_env(web, compose_database, PROMETHEUS_MULTIPROC_DIR=str(metrics)),
        )

        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == "System check identified no issues (0 silenced)."
