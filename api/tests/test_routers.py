"""The read-replica router's decisions, and the settings that configure replicas and pooling.

Which server really answers is proven against real replicas in telemetry/tests/test_replicas.py;
here: what is routed at all, and what the environment turns into.
"""

import json
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import DEFAULT_DB_ALIAS, transaction
from rest_framework.authtoken.models import Token

from alarms.models import Alarm
from api.routers import READ_MODELS, ReadReplicaRouter, replica_lag_seconds
from fleet.models import Meter, MeterAssignment, Vehicle
from notifications.models import Delivery
from telemetry.models import (
    DeviceAPIKey,
    MeterHourly,
    MeterReading,
    MeterStatus,
    VehicleHourly,
    VehicleReading,
    VehicleStatus,
)
from testsupport.servers import ROOT

ROUTED = (MeterReading, VehicleReading, MeterStatus, VehicleStatus, MeterHourly, VehicleHourly)
PRIMARY = (
    DeviceAPIKey,
    Token,
    get_user_model(),
    Session,
    Alarm,
    Delivery,
    Vehicle,
    Meter,
    MeterAssignment,
)


class TestReadReplicaRouter:
    def test_routes_exactly_the_history_status_and_rollup_models(self):
        assert {model._meta.label_lower for model in ROUTED} == READ_MODELS

    def test_leaves_keys_tokens_users_sessions_alarms_and_the_registry_to_the_primary(self):
        router = ReadReplicaRouter()
        for model in PRIMARY:
            assert router.db_for_read(model) is None, model
            assert router.db_for_write(model) == DEFAULT_DB_ALIAS

    def test_without_replicas_a_read_model_is_read_from_the_primary(self):
        for model in ROUTED:
            assert ReadReplicaRouter().db_for_read(model) == DEFAULT_DB_ALIAS

    @pytest.mark.django_db(transaction=True)
    def test_a_read_inside_a_primary_transaction_stays_on_the_primary(self):
        with transaction.atomic():
            assert ReadReplicaRouter().db_for_read(VehicleStatus) == DEFAULT_DB_ALIAS

    def test_migrates_the_primary_only(self):
        router = ReadReplicaRouter()
        assert router.allow_migrate(DEFAULT_DB_ALIAS, "telemetry") is True
        assert router.allow_migrate("replica_1", "telemetry") is False


@pytest.mark.postgresql
@pytest.mark.django_db
def test_a_server_that_is_no_replica_has_no_lag():
    assert replica_lag_seconds(DEFAULT_DB_ALIAS) == 0.0


_SHOW = (
    "import django; django.setup(); from django.conf import settings as s; import json; "
    "print(json.dumps({a: {'host': d['HOST'], 'port': d['PORT'], 'mirror': d.get('TEST', {})"
    ".get('MIRROR'), 'prepare': d['OPTIONS'].get('prepare_threshold', 'unset'), 'ssc': "
    "d.get('DISABLE_SERVER_SIDE_CURSORS', False)} for a, d in s.DATABASES.items()}))"
)


def settings_of(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {
        "DJANGO_SETTINGS_MODULE": "energy.settings",
        "SECRET_KEY": "test",
        "DEBUG": "false",
        "DATABASE_URL": "postgres://postgres@primary.internal:5432/energy",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-c", _SHOW], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )


class TestReplicaSettings:
    def test_a_list_of_replicas_becomes_replica_1_and_so_on_mirrored_in_tests(self):
        urls = "postgres://u@r1.internal:5432/energy, postgres://u@r2.internal:6432/energy"
        result = settings_of({"DATABASE_REPLICA_URLS": urls})
        databases = json.loads(result.stdout)
        assert list(databases) == ["default", "replica_1", "replica_2"]
        assert databases["replica_1"]["host"] == "r1.internal"
        assert databases["replica_2"]["port"] == 6432
        assert databases["replica_2"]["mirror"] == "default"
        assert databases["default"]["prepare"] == "unset" and not databases["default"]["ssc"]

    def test_the_one_replica_spelling_is_a_list_of_one(self):
        result = settings_of({"DATABASE_REPLICA_URL": "postgres://u@r1.internal/energy"})
        assert list(json.loads(result.stdout)) == ["default", "replica_1"]

    def test_transaction_pooling_disables_prepared_statements_and_server_side_cursors(self):
        result = settings_of(
            {
                "DATABASE_REPLICA_URLS": "postgres://u@r1.internal/energy",
                "DATABASE_TRANSACTION_POOLING": "true",
            }
        )
        for database in json.loads(result.stdout).values():
            assert database["prepare"] is None and database["ssc"] is True

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            (
                {
                    "DATABASE_REPLICA_URL": "postgres://a/b",
                    "DATABASE_REPLICA_URLS": "postgres://c/d",
                },
                "Set DATABASE_REPLICA_URLS or DATABASE_REPLICA_URL (one replica), not both.",
            ),
            (
                {"DATABASE_REPLICA_URLS": "postgres://a/b,mysql://c/d"},
                "DATABASE_REPLICA_URLS item 2 is not PostgreSQL.",
            ),
            (
                {"DATABASE_REPLICA_MAX_LAG_SECONDS": "soon"},
                "DATABASE_REPLICA_MAX_LAG_SECONDS='soon' is not a number.",
            ),
            (
                {"DATABASE_TRANSACTION_POOLING": "maybe"},
                "DATABASE_TRANSACTION_POOLING='maybe' is not a boolean",
            ),
            (
                {"DATABASE_URL": "", "DATABASE_REPLICA_URLS": "postgres://a/b"},
                "DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL.",
            ),
        ],
    )
    def test_a_bad_value_stops_the_start_naming_the_variable(self, env, message):
        result = settings_of(env)
        assert result.returncode == 1
        assert message in result.stderr, result.stderr
