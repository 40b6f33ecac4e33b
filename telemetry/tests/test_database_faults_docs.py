"""The 503 of a database fault, as the OpenAPI schema documents it (the faults themselves are in
test_database_faults.py, against a cluster broken on purpose)."""

import pytest

pytestmark = pytest.mark.django_db

INGEST_PATHS = (
    "/v1/ingest",
    "/v1/ingest/meter",
    "/v1/ingest/vehicle",
    "/v1/ingest/meter/batch",
    "/v1/ingest/vehicle/batch",
)


@pytest.fixture
def schema(api_client) -> dict:
    return api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def test_every_ingest_route_documents_its_503_in_the_ingest_shape(schema):
    for path in INGEST_PATHS:
        unavailable = schema["paths"][path]["post"]["responses"]["503"]
        body = unavailable["content"]["application/json"]
        (example,) = body["examples"].values()
        assert body["schema"] == {"$ref": "#/components/schemas/IngestResult"}, path
        assert example["value"]["accepted"] == 0
        assert example["value"]["detail"] == "The database is unavailable; retry in 5 s."


def test_every_documented_503_declares_retry_after(schema):
    documented = [
        (path, method, operation["responses"]["503"])
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "503" in operation.get("responses", {})
    ]

    assert len(documented) >= len(INGEST_PATHS)
    for path, method, response in documented:
        if "$ref" in response:  # the shared 503 of the other routes
            response = schema["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
        assert response["headers"]["Retry-After"]["schema"]["type"] == "integer", (path, method)
