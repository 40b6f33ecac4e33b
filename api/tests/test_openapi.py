"""The schema documents every error case of the read, list, fleet and mapping routes."""

import pytest

pytestmark = pytest.mark.django_db

READ_AND_FLEET = ("/v1/status", "/v1/history", "/v1/analytics", "/v1/fleet", "/v1/telemetry/map")


@pytest.fixture
def schema(api_client) -> dict:
    return api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def operations(schema: dict, prefixes=("/v1/",)):
    for path, item in schema["paths"].items():
        if path.startswith(prefixes):
            for method, operation in item.items():
                yield path, method, operation


def resolve(schema: dict, response: dict) -> dict:
    ref = response.get("$ref")
    return schema["components"]["responses"][ref.rsplit("/", 1)[1]] if ref else response


class TestErrorResponses:
    def test_every_operation_has_a_503_with_retry_after_defined_once(self, schema):
        refs = {
            operation["responses"]["503"].get("$ref")
            for _, _, operation in operations(schema, READ_AND_FLEET)
        }

        assert refs == {"#/components/responses/ServiceUnavailable"}
        shared = schema["components"]["responses"]["ServiceUnavailable"]
        assert "Retry-After" in shared["headers"]
        assert shared["content"]["application/json"]["examples"]

    def test_every_operation_lists_401_and_its_4xx_with_examples(self, schema):
        for path, method, operation in operations(schema, READ_AND_FLEET):
            codes = set(operation["responses"])
            assert "401" in codes, (path, method)
            expected = set()
            if "{" in path:
                expected.add("404")
            if operation.get("parameters") and any(
                parameter["in"] == "query" for parameter in operation["parameters"]
            ):
                expected.add("400")
            if method == "post":
                expected |= {"400", "403", "409"}
            assert expected <= codes, (path, method, codes)
            for code in codes - {"200", "201"}:
                response = resolve(schema, operation["responses"][code])
                examples = response["content"]["application/json"].get("examples")
                assert examples, (path, method, code)

    def test_lists_share_one_vocabulary(self, schema):
        for path, _, operation in operations(schema, READ_AND_FLEET):
            names = {parameter["name"] for parameter in operation.get("parameters", [])}
            assert "pageSize" not in names, path
            if "cursor" in names:
                limit = next(p for p in operation["parameters"] if p["name"] == "limit")
                assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"], path
            if "page" in names:
                assert path == "/v1/analytics/fleet/inefficient"
