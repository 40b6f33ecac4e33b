import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
STATIC_PREFIX = "/static/"


def assets_of(html: str) -> list[str]:
    """The URLs a page loads or links (src and href attributes, and JS string literals)."""
    quoted = re.findall(r"""["'](https?://[^"']+|/static/[^"']+)["']""", html)
    return sorted(set(ASSET.findall(html)) | set(quoted))


class TestSchema:
    def test_validates_without_warnings(self, tmp_path):
        out = tmp_path / "schema.yaml"

        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

        assert out.read_text().startswith("openapi: 3.1.0")

    def test_is_served_as_openapi_31_json_with_the_v1_paths(self, api_client):
        response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

        schema = response.json()
        assert response.status_code == 200
        assert schema["openapi"] == "3.1.0"
        for path in (
            "/v1/ingest",
            "/v1/fleet/vehicles",
            "/v1/fleet/vehicles/{vehicleId}",
            "/v1/fleet/meters",
            "/v1/fleet/mappings",
            "/v1/telemetry/map",
        ):
            assert path in schema["paths"], path

    def test_documents_every_fleet_error(self, api_client):
        schema = api_client.get(
            "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
        ).json()

        responses = {
            (path, method): sorted(operation["responses"])
            for path, item in schema["paths"].items()
            if path.startswith(("/v1/fleet", "/v1/telemetry/map"))
            for method, operation in item.items()
        }
        assert responses == {
            ("/v1/fleet/vehicles", "get"): ["200", "400", "401", "503"],
            ("/v1/fleet/meters", "get"): ["200", "400", "401", "503"],
            ("/v1/fleet/vehicles/{vehicleId}", "get"): ["200", "401", "404", "503"],
            ("/v1/fleet/mappings", "post"): ["200", "201", "400", "401", "403", "409", "503"],
            ("/v1/telemetry/map", "post"): ["200", "201", "400", "401", "403", "409", "503"],
        }


class TestDocs:
    @pytest.mark.parametrize(
        "url",
        ["/api/docs/", "/api/redoc/"],
    )
    def test_load_only_local_assets_that_exist(self, client, url):
        response = client.get(url)

        html = response.content.decode()
        assets = assets_of(html)
        local = [a for a in assets if a.startswith(STATIC_PREFIX)]
        assert response.status_code == 200
        assert [a for a in assets if a.startswith(("http://", "https://", "//"))] == []
        assert local, html
        for asset in local:
            path = asset.removeprefix(STATIC_PREFIX)
            assert path.startswith("drf_spectacular_sidecar/"), asset
            assert finders.find(path) is not None, asset

    def test_the_home_page_links_the_docs_and_the_admin(self, client):
        response = client.get("/")

        links = ASSET.findall(response.content.decode())
        assert response.status_code == 200
        for link in ("/api/docs/", "/api/redoc/", "/admin/"):
            assert link in links


class TestHealth:
    def test_healthz_answers_without_the_database(self, client, django_assert_num_queries):
        with django_assert_num_queries(0):
            response = client.get("/healthz")

        assert response.status_code == 200
        assert response.content == b"ok\n"

    def test_readyz_answers_when_the_database_does(self, client):
        response = client.get("/readyz")

        assert response.status_code == 200
        assert response.content == b"ready\n"

    @pytest.mark.postgresql
    @pytest.mark.django_db(transaction=True)
    def test_readyz_is_503_when_the_database_is_unreachable(self, client):
        settings_dict = connection.settings_dict
        real_port = settings_dict["PORT"]
        connection.close()
        settings_dict["PORT"] = closed_port()
        try:
            response = client.get("/readyz")
        finally:
            connection.close()
            settings_dict["PORT"] = real_port

        assert response.status_code == 503
        assert response.content == b"database unavailable: OperationalError\n"
        assert client.get("/readyz").status_code == 200


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
