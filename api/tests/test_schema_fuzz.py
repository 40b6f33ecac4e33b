"""Schema fuzzing: schemathesis against the project's own OpenAPI schema, every operation.

Each operation is called in-process (WSGI) with generated valid and invalid input, authenticated
as its callers are (a DRF token for reads, a staff user's token for mappings, a device key for
ingest). Every answer must be no 5xx and conform to the schema: a documented status, a body and
headers that match it. Bounded in examples so the whole run stays short in CI (FUZZ_EXAMPLES).
"""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from telemetry.services import api_key_create

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
    deterministic=True,
    database="none",
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def wsgi_keeps_the_test_transaction():
    """In-process WSGI calls would close the test's connection (and its transaction) per request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def credentials(fleet, django_user_model, wsgi_keeps_the_test_transaction) -> dict[str, str]:
    """Authorization headers by caller; `fleet` gives the documented example ids data."""
    # No password: hashing one costs more than the rest of the set-up.
    analyst = django_user_model.objects.create_user(username="fuzz-analyst")
    staff = django_user_model.objects.create_user(username="fuzz-staff", is_staff=True)
    _, key = api_key_create(name="fuzz gateway")
    return {
        "analyst": f"Token {Token.objects.create(user=analyst).key}",
        "staff": f"Token {Token.objects.create(user=staff).key}",
        "device": f"Api-Key {key}",
    }


def caller(case) -> str:
    path = case.operation.path
    if path.startswith(("/v1/fleet/mappings", "/v1/telemetry/map")):
        return "staff"
    if case.operation.method.upper() == "POST":
        return "device"
    return "analyst"


@pytest.mark.postgresql
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_operation_answers_as_documented(case, credentials):
    headers = {"Authorization": credentials[caller(case)]}
    checks = CHECKS
    if not case.operation.path.startswith(("/v1/ingest", "/v1/telemetry")) or (
        "map" in case.operation.path
    ):
        # Invalid input must be refused (4xx). Not on ingest: a batch with one bad item is a 207.
        checks = [*CHECKS, negative_data_rejection]
    case.call_and_validate(headers=headers, checks=checks)
