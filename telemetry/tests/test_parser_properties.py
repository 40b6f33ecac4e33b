"""Property tests of the ingest parsers: whatever the bytes or the JSON, the only outcomes are a
clean `MalformedBody` or readings and rejections (never another exception)."""

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.schemas import (
    MalformedBody,
    ReadingLimits,
    decode_json,
    readings_parse,
)

NOW = datetime(2026, 2, 10, 11, 0, tzinfo=UTC)
LIMITS = ReadingLimits(
    now=NOW, earliest=NOW - timedelta(days=400), latest=NOW + timedelta(minutes=5), max_kwh=100.0
)
FIELDS = ["meterId", "vehicleId", "kwhConsumedAc", "kwhDeliveredDc", "voltage", "soc"]
FIELDS += ["batteryTemp", "timestamp", "type", "readings"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=70)
    | st.sampled_from(["meter", "vehicle", "M-1", "V-1\n", "2026-02-10T10:00:00Z"])
    | st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=8)
    ),
    max_leaves=30,
)
# Readings close to valid: every known field, each with an arbitrary or a plausible value.
near_readings = st.fixed_dictionaries(
    {},
    optional={
        name: scalars | st.lists(scalars, max_size=2) for name in FIELDS if name != "readings"
    },
)


def parse(payload, **options):
    """The parser's contract: a result whose items are all accounted for, or MalformedBody."""
    try:
        parsed = readings_parse(payload, now=NOW, limits=LIMITS, **options)
    except MalformedBody as error:
        assert str(error)
        return None
    indexes = [i for i, _ in parsed.meters] + [i for i, _ in parsed.vehicles]
    indexes += [rejection.index for rejection in parsed.rejected]
    assert sorted(indexes) == list(range(parsed.size))
    for rejection in parsed.rejected:
        assert rejection.errors and all(
            messages and all(isinstance(m, str) and m for m in messages)
            for messages in rejection.errors.values()
        )
    for _, reading in parsed.meters + parsed.vehicles:
        assert LIMITS.earliest <= reading.timestamp <= LIMITS.latest
        reading.timestamp.astimezone(UTC)
    return parsed


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_are_malformed(body):
    try:
        payload = decode_json(body)
    except MalformedBody:
        return
    parse(payload)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=60_000), st.sampled_from(["[]", "{}", '{"a":}']))
def test_any_nesting_depth_decodes_or_is_malformed(depth, shape):
    opening, closing = (shape[0], shape[-1]) if shape != '{"a":}' else ('{"a":', "}")
    body = (opening * depth + ("1" if shape == '{"a":}' else "") + closing * depth).encode()
    try:
        decode_json(body)
    except MalformedBody as error:
        assert "not valid JSON" in str(error)


@settings(max_examples=400, deadline=None)
@given(json_values, st.sampled_from([None, "meter", "vehicle"]), st.booleans())
def test_arbitrary_json_values_parse_or_are_malformed(payload, kind, batch_only):
    parse(payload, kind=kind, batch_only=batch_only)
    parse(decode_json(json.dumps(payload).encode()), kind=kind, batch_only=batch_only)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(near_readings, min_size=1, max_size=4))
def test_near_valid_readings_are_stored_or_rejected_with_field_errors(items):
    parsed = parse(items)
    assert parsed is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_a_device_id_is_accepted_only_when_the_whole_text_fits_the_pattern(device_id):
    item = {
        "meterId": device_id,
        "kwhConsumedAc": 1.0,
        "voltage": 230.0,
        "timestamp": "2026-02-10T10:00:00Z",
    }
    parsed = parse([item])
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:")
    fits = 1 <= len(device_id) <= 64 and set(device_id) <= allowed
    assert bool(parsed.meters) == fits
    if not fits:
        assert set(parsed.rejected[0].errors) == {"meterId"}
