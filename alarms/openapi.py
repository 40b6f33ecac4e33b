"""OpenAPI pieces shared by the alarms and notifications views: error bodies with examples."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


def field_errors_serializer(name: str, fields: list[str]) -> type[serializers.Serializer]:
    """A serializer documenting `{"<field>": ["<message>", ...]}` for each of `fields`."""
    declared = {
        field: serializers.ListField(child=serializers.CharField(), required=False)
        for field in fields
    }
    doc = '`{"<field>": ["<message>"]}`: each parameter or field at fault, and why.'
    return type(name, (serializers.Serializer,), {**declared, "__doc__": doc})


def error_response(description: str, detail: str) -> OpenApiResponse:
    """A `{"detail": ...}` response with one example."""
    return OpenApiResponse(
        ErrorDetailSerializer,
        description=description,
        examples=[OpenApiExample(description, value={"detail": detail}, response_only=True)],
    )


UNAUTHENTICATED = error_response(
    "No credentials (a session cookie or `Authorization: Token <token>`).",
    "Authentication credentials were not provided.",
)
INVALID_CURSOR = error_response("The `cursor` is not one this API issued.", "Invalid cursor")
