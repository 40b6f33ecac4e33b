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


RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying (`DATABASE_RETRY_AFTER_SECONDS` for a 503).",
    "schema": {"type": "integer", "minimum": 1},
    "example": 5,
}


def add_retry_after_headers(result, generator, request, public):
    """drf-spectacular postprocessing hook: every documented 429 and 503 carries `Retry-After`."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            for code in ("429", "503"):
                if code in responses:
                    headers = responses[code].setdefault("headers", {})
                    headers.setdefault("Retry-After", RETRY_AFTER_HEADER)
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


def _result(description: str, *examples: tuple[str, dict]) -> OpenApiResponse:
    return OpenApiResponse(
        IngestResultSerializer,
        description=description,
        examples=[
            OpenApiExample(name, value=_shape(example), response_only=True)
            for name, example in examples
        ],
    )


def _shape(example: dict) -> dict:
    return {"accepted": 0, "duplicates": 0, "conflicts": 0, "rejected": []} | example


def _refused(detail: str) -> dict:
    return {"detail": detail}


_BAD_ITEM = {"index": 1, "errors": {"voltage": ["Expected `float`, got `str`"]}}
INGEST_RESPONSES = {
    201: _result(
        "Stored: every new reading of the request (duplicates, if any, counted).",
        ("Stored", {"accepted": 2}),
        ("Stored, with a conflicting replay", {"accepted": 1, "duplicates": 1, "conflicts": 1}),
    ),
    200: _result(
        "Nothing new: every reading was already stored (a retry). `conflicts` counts the "
        "duplicates whose values differ from the stored reading, which is kept as it is.",
        ("A retry", {"duplicates": 1}),
        ("A replay with other values", {"duplicates": 1, "conflicts": 1}),
    ),
    207: _result(
        "Partly stored: the valid readings; each invalid one listed by index with every error.",
        ("Partly stored", {"accepted": 1, "rejected": [_BAD_ITEM]}),
    ),
    400: _result(
        "Nothing stored: no valid reading (every error of each item, by field), or a body that "
        "is not JSON (invalid UTF-8, nested too deeply, NaN...), or an empty batch.",
        (
            "No valid reading",
            {
                "rejected": [
                    {
                        "index": 0,
                        "errors": {
                            "kwhConsumedAc": [
                                "Over 100 kWh, the most one reading may carry "
                                "(TELEMETRY_MAX_KWH_PER_READING): an interval's energy, "
                                "not a meter register?"
                            ],
                            "timestamp": [
                                "Older than 400 days (TELEMETRY_MAX_AGE_DAYS, server time "
                                "2026-02-10T11:00:00+00:00); an operator backfills older data "
                                "with `import_telemetry --allow-older`."
                            ],
                            "meterId": [
                                "Invalid device id: 1–64 characters of A–Z a–z 0–9 _ - . : "
                                "(the whole string)."
                            ],
                        },
                    }
                ]
            },
        ),
        (
            "Malformed body",
            _refused("The body is not valid JSON: a string in it is not UTF-8."),
        ),
        ("Empty batch", _refused("The batch is empty.")),
    ),
    401: _result(
        "Nothing stored: no key, or an unknown, revoked or expired key.",
        ("No valid key", _refused("Unknown or revoked API key.")),
    ),
    403: _result(
        "Nothing stored: the key is scoped to another device.",
        (
            "Another device",
            _refused(
                "This key may only write readings of device 'V-1'; "
                "the request also carries V-2. Nothing was stored."
            ),
        ),
    ),
    413: _result(
        "Nothing stored: more than TELEMETRY_MAX_BATCH readings, or a body over "
        "TELEMETRY_MAX_BODY_BYTES (also when sent chunked). The rest of an over-limit body is "
        "read and discarded (up to 64 MiB) so a client that writes it whole can read this answer.",
        ("Too many readings", _refused("A batch holds at most 5000 readings; this one has 6000.")),
        ("Body too large", _refused("The body is over 4194304 bytes; send smaller batches.")),
    ),
    503: _result(
        "Nothing stored: the database is unavailable. Retry after the number of seconds in "
        "`Retry-After`; the request is safe to repeat (a replay is counted as duplicates).",
        ("Database unavailable", _refused("The database is unavailable; retry in 5 s.")),
    ),
    429: _result(
        "Nothing stored: this key is over TELEMETRY_RATE_LIMIT (requests per key and window, "
        "counted across every worker and instance). The `Retry-After` header gives the seconds "
        "until the key's next window.",
        (
            "Rate limited",
            _refused(
                "Rate limit exceeded: this key may make 1200 ingest requests per minute. "
                "Expected available in 17 seconds."
            ),
        ),
    ),
}
