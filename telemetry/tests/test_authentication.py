"""Credentials are remembered briefly per worker; revocations take effect within that delay."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings
from rest_framework.authtoken.models import Token

from telemetry.models import DeviceAPIKey
from telemetry.services import api_key_create
from telemetry.tests.factories import T0, meter_payload

NOW = datetime(2026, 2, 10, 11, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


@pytest.fixture
def token_client(api_client, analyst_user):
    token = Token.objects.create(user=analyst_user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return api_client


class TestPeopleTokens:
    @pytest.mark.parametrize("keyword", ["Token", "Bearer", "bearer"])
    def test_a_token_is_accepted_after_either_keyword(self, api_client, analyst_user, keyword):
        token = Token.objects.create(user=analyst_user)
        api_client.credentials(HTTP_AUTHORIZATION=f"{keyword} {token.key}")

        assert api_client.get("/v1/status/vehicles").status_code == 200

    def test_an_unknown_bearer_token_is_refused(self, api_client):
        api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

        response = api_client.get("/v1/status/vehicles")

        assert (response.status_code, response.json()) == (401, {"detail": "Invalid token."})

    def test_the_schema_declares_the_bearer_scheme(self, api_client):
        schema = api_client.get("/api/schema/?format=json").json()

        assert schema["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
        assert {"BearerAuth": []} in schema["paths"]["/v1/status/vehicles"]["get"]["security"]

    def test_a_deleted_token_stops_working_within_the_cache_delay(self, token_client):
        with time_machine.travel(NOW, tick=False):
            assert token_client.get("/v1/status/vehicles").status_code == 200
            Token.objects.all().delete()
        with time_machine.travel(NOW + timedelta(seconds=6), tick=False):
            response = token_client.get("/v1/status/vehicles")

        assert response.status_code == 401

    @override_settings(API_AUTH_CACHE_SECONDS=0)
    def test_without_the_cache_a_deleted_token_stops_working_at_once(self, token_client):
        token_client.get("/v1/status/vehicles")
        Token.objects.all().delete()

        assert token_client.get("/v1/status/vehicles").status_code == 401

    def test_a_deactivated_user_is_refused_after_the_cache_delay(self, token_client, analyst_user):
        with time_machine.travel(NOW, tick=False):
            token_client.get("/v1/status/vehicles")
            analyst_user.is_active = False
            analyst_user.save()
        with time_machine.travel(NOW + timedelta(seconds=6), tick=False):
            response = token_client.get("/v1/status/vehicles")

        assert response.status_code == 401


class TestDeviceKeyRevocationInTheAdmin:
    def test_revoking_in_the_admin_stops_the_key_at_once_in_that_worker(
        self, api_client, client, staff_user
    ):
        api_key, key = api_key_create(name="gateway")
        api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        with time_machine.travel(NOW, tick=False):
            assert api_client.post("/v1/ingest", meter_payload(), format="json").status_code == 201
            client.force_login(staff_user)
            change = client.post(
                f"/admin/telemetry/deviceapikey/{api_key.pk}/change/",
                {"name": "gateway", "device_id": "", "revoked": "on"},
            )
            response = api_client.post(
                "/v1/ingest", meter_payload(at=T0 + timedelta(minutes=1)), format="json"
            )

        assert change.status_code == 302
        assert DeviceAPIKey.objects.get().revoked
        assert response.status_code == 401
