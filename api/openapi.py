"""OpenAPI pieces shared by every read, list, fleet and mapping route: the error responses.

Each error body is one of two shapes: `{"detail": "..."}` (authentication, permissions, not
found, conflict, database unavailable) or `{"<parameter or field>": ["message", ...]}` (a query
parameter or body field that does not parse or is out of range). Views declare their 400s and
404s with the helpers below; `add_common_responses`, a postprocessing hook, gives every `/v1/`
operation the 401 and the 503 that all of them share, defined once under `components/responses`.
"""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

ERROR_DETAIL_REF = {"$ref": "#/components/schemas/ErrorDetail"}
PARAMETER_ERRORS_REF = {"$ref": "#/components/schemas/ParameterErrors"}

_SCHEMAS = {
    "ErrorDetail": {
        "type": "object",
        "description": "An error about the request as a whole.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "ParameterErrors": {
        "type": "object",
        "description": "Errors by the name of the query parameter or body field at fault "
        "(`non_field_errors` when the body as a whole is wrong, `detail` when it does not "
        "parse as JSON).",
        "additionalProperties": {
            "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]
        },
        "minProperties": 1,
    },
}

_RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
    "example": 5,
}

_RESPONSES = {
    "Unauthenticated": {
        "description": "No credentials, or invalid ones (an unknown token, a bad session).",
        "content": {
            "application/json": {
                "schema": ERROR_DETAIL_REF,
                "examples": {
                    "no credentials": {
                        "value": {"detail": "Authentication credentials were not provided."}
                    },
                    "unknown token": {"value": {"detail": "Invalid token."}},
                },
            }
        },
    },
    "ServiceUnavailable": {
        "description": "The database is unavailable (restarting, failing over, overloaded); "
        "nothing was changed. Retry after the `Retry-After` seconds.",
        "headers": {"Retry-After": _RETRY_AFTER},
        "content": {
            "application/json": {
                "schema": ERROR_DETAIL_REF,
                "examples": {
                    "database down": {
                        "value": {"detail": "The database is unavailable; retry in 5 s."}
                    }
                },
            }
        },
    },
}


_DEVICE_ID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": "^[A-Za-z0-9_.:\\-]{1,64}$",
}


def device_id_parameter(name: str, kind: str, example: str) -> OpenApiParameter:
    """A device id in the path; one that cannot be an id (pattern) is a 404."""
    return OpenApiParameter(
        name,
        _DEVICE_ID_SCHEMA,
        OpenApiParameter.PATH,
        description=f"The {kind}'s id (1–64 characters of A–Z a–z 0–9 _ - . :), e.g. {example}.",
        examples=[OpenApiExample(example, value=example)],
    )


VEHICLE_ID = device_id_parameter("vehicleId", "vehicle", "V-1")
METER_ID = device_id_parameter("meterId", "meter", "M-1")


def bad_parameters(description: str, **examples: str) -> OpenApiResponse:
    """A 400 whose body names the parameters at fault; `examples` maps a parameter to a message."""
    return OpenApiResponse(
        response=PARAMETER_ERRORS_REF,
        description=description,
        examples=[
            OpenApiExample(name, value={name: [message]}, response_only=True)
            for name, message in examples.items()
        ],
    )


def error_detail(description: str, detail: str, *, name: str | None = None) -> OpenApiResponse:
    """A 4xx with a `{"detail": ...}` body, with one example."""
    return OpenApiResponse(
        response=ERROR_DETAIL_REF,
        description=description,
        examples=[
            OpenApiExample(name or description, value={"detail": detail}, response_only=True)
        ],
    )


def not_found(kind: str) -> OpenApiResponse:
    """The 404 of a route with a device id in its path."""
    return OpenApiResponse(
        response=ERROR_DETAIL_REF,
        description=f"No {kind} has this id, or the id cannot be one (1–64 characters of "
        "A–Z a–z 0–9 _ - . :).",
        examples=[
            OpenApiExample("unknown", value={"detail": f"No {kind} 'X-404'."}, response_only=True),
            OpenApiExample(
                "impossible id",
                value={
                    "detail": f"No {kind} has this id: a {kind} id is 1–64 characters of "
                    "A–Z a–z 0–9 _ - . :."
                },
                response_only=True,
            ),
        ],
    )


def add_common_responses(result, generator, request, public):
    """Postprocessing hook: the shared schemas, and a 401 and a 503 on every `/v1/` operation."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(_SCHEMAS)
    components.setdefault("responses", {}).update(_RESPONSES)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            # A route's own 401 or 503 (the ingest routes answer in their own shape) is kept.
            if operation.get("security"):
                responses.setdefault("401", {"$ref": "#/components/responses/Unauthenticated"})
            responses.setdefault("503", {"$ref": "#/components/responses/ServiceUnavailable"})
    return result


def field_errors_serializer(name: str, fields: list[str]) -> type[serializers.Serializer]:
    """A serializer documenting `{"<field>": ["<message>", ...]}` for each of `fields`."""
    declared = {
        field: serializers.ListField(child=serializers.CharField(), required=False)
        for field in fields
    }
    doc = '`{"<field>": ["<message>"]}`: each parameter or field at fault, and why.'
    return type(name, (serializers.Serializer,), {**declared, "__doc__": doc})
