"""OpenAPI pieces of the ingest routes: request schemas from the msgspec structs, examples."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from telemetry.schemas import reading_json_schemas
from telemetry.serializers import IngestResultSerializer

METER_REF = {"$ref": "#/components/schemas/MeterReadingIn"}
VEHICLE_REF = {"$ref": "#/components/schemas/VehicleReadingIn"}


def add_reading_components(result, generator, request, public):
    """drf-spectacular postprocessing hook: add the msgspec reading schemas as components."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(reading_json_schemas())
    return result


def request_schema(*, kind: str | None, batch_only: bool) -> dict:
    one = {METER_REF["$ref"]: METER_REF, VEHICLE_REF["$ref"]: VEHICLE_REF}
    item = (
        METER_REF
        if kind == "meter"
        else VEHICLE_REF
        if kind == "vehicle"
        else {"oneOf": list(one.values())}
    )
    batch = {"type": "array", "items": item, "minItems": 1}
    wrapped = {
        "type": "object",
        "properties": {"readings": batch},
        "required": ["readings"],
    }
    shapes = [batch, wrapped] if batch_only else [item, batch, wrapped]
    return {"application/json": {"oneOf": shapes}}


METER_EXAMPLE = {
    "meterId": "M-1",
    "kwhConsumedAc": 0.125,
    "voltage": 231.5,
    "timestamp": "2026-02-10T10:15:00Z",
}
VEHICLE_EXAMPLE = {
    "vehicleId": "V-1",
    "soc": 72.5,
    "kwhDeliveredDc": 0.11,
    "batteryTemp": 38.6,
    "timestamp": "2026-02-10T10:15:00Z",
}


def request_examples(*, kind: str | None, batch_only: bool) -> list[OpenApiExample]:
    examples = []
    if not batch_only and kind in (None, "meter"):
        examples.append(OpenApiExample("One meter reading", value=METER_EXAMPLE, request_only=True))
    if not batch_only and kind in (None, "vehicle"):
        examples.append(
            OpenApiExample("One vehicle reading", value=VEHICLE_EXAMPLE, request_only=True)
        )
    batch = [
        r for r, k in ((METER_EXAMPLE, "meter"), (VEHICLE_EXAMPLE, "vehicle")) if kind in (None, k)
    ]
    examples.append(OpenApiExample("A batch (JSON array)", value=batch, request_only=True))
    examples.append(
        OpenApiExample(
            'A batch ({"readings": [...]})', value={"readings": batch}, request_only=True
        )
    )
    return examples


def _result(description: str, example: dict) -> OpenApiResponse:
    return OpenApiResponse(
        IngestResultSerializer,
        description=description,
        examples=[OpenApiExample(description, value=example, response_only=True)],
    )


_BAD_ITEM = {"index": 1, "errors": {"voltage": ["Expected `float`, got `str`"]}}
INGEST_RESPONSES = {
    201: _result(
        "Stored: every new reading of the request.",
        {"accepted": 2, "duplicates": 0, "rejected": []},
    ),
    200: _result(
        "Nothing new: every reading was already stored (a retry).",
        {"accepted": 0, "duplicates": 1, "rejected": []},
    ),
    207: _result(
        "Partly stored: the valid readings; each invalid one listed by index.",
        {"accepted": 1, "duplicates": 0, "rejected": [_BAD_ITEM]},
    ),
    400: _result(
        "Nothing stored: malformed JSON, an empty batch, or no valid reading.",
        {
            "accepted": 0,
            "duplicates": 0,
            "rejected": [
                {
                    "index": 0,
                    "errors": {"timestamp": ["Expected `datetime` with a timezone component"]},
                }
            ],
        },
    ),
    401: _result(
        "Nothing stored: no key, or an unknown, revoked or expired key.",
        {"accepted": 0, "duplicates": 0, "rejected": [], "detail": "Unknown or revoked API key."},
    ),
    403: _result(
        "Nothing stored: the key is scoped to another device.",
        {
            "accepted": 0,
            "duplicates": 0,
            "rejected": [],
            "detail": (
                "This key may only write readings of device 'V-1'; "
                "the request also carries V-2. Nothing was stored."
            ),
        },
    ),
    413: _result(
        "Nothing stored: more than TELEMETRY_MAX_BATCH readings, or a body over the size limit.",
        {
            "accepted": 0,
            "duplicates": 0,
            "rejected": [],
            "detail": "A batch holds at most 5000 readings; this one has 6000.",
        },
    ),
    429: _result(
        "Nothing stored: this key is over TELEMETRY_RATE_LIMIT (requests per key and window, "
        "counted across every worker and instance). The `Retry-After` header gives the seconds "
        "until the key's next window.",
        {
            "accepted": 0,
            "duplicates": 0,
            "conflicts": 0,
            "rejected": [],
            "detail": (
                "Rate limit exceeded: this key may make 1200 ingest requests per minute. "
                "Expected available in 17 seconds."
            ),
        },
    ),
}
