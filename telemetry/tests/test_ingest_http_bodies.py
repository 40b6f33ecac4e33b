"""Request bodies as real clients send them, through gunicorn with the production config:
chunked transfer encoding, and over-limit bodies written whole before the answer is read."""

import http.client
import json
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from telemetry.models import MeterReading, VehicleReading
from telemetry.services import api_key_create
from telemetry.tests.factories import meter_payload, vehicle_payload

# gunicorn serves the test database from another process: PostgreSQL (SQLite's is in memory).
pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def served(served_project):
    _, key = api_key_create(name="gateway")
    server = served_project(env={"TELEMETRY_MAX_BODY_BYTES": str(1024 * 1024)}, workers=1)
    return server, key


def chunked_post(url: str, key: str, pieces: list[bytes]) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest("POST", "/v1/ingest")
        conn.putheader("Authorization", f"Api-Key {key}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for piece in pieces:
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def recent_batch(count: int) -> list[dict]:
    start = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    readings = []
    for i in range(count):
        at = start + timedelta(seconds=i)
        readings += [meter_payload(f"M-{i % 3}", at=at), vehicle_payload(f"V-{i % 3}", at=at)]
    return readings


def test_a_chunked_batch_is_stored_as_if_sent_with_a_length(served):
    server, key = served
    body = json.dumps(recent_batch(50)).encode()
    pieces = [body[i : i + 700] for i in range(0, len(body), 700)]

    status, data = chunked_post(server.url, key, pieces)

    assert (status, data) == (
        201,
        {"accepted": 100, "duplicates": 0, "conflicts": 0, "rejected": []},
    )
    assert MeterReading.objects.count() == VehicleReading.objects.count() == 50


def test_a_chunked_body_over_the_limit_is_a_413_and_stores_nothing(served):
    server, key = served
    body = json.dumps(recent_batch(6000)).encode()  # about 1.3 MB, over the 1 MiB limit
    assert len(body) > 1024 * 1024

    status, data = chunked_post(
        server.url, key, [body[i : i + 65536] for i in range(0, len(body), 65536)]
    )

    assert status == 413
    assert data["accepted"] == 0 and "1048576 bytes" in data["detail"]
    assert MeterReading.objects.count() == 0


def test_a_chunked_body_that_is_not_json_is_a_400(served):
    server, key = served
    status, data = chunked_post(server.url, key, [b'{"meterId": "M-1", ', b"\xff"])
    assert status == 400
    assert set(data) == {"accepted", "duplicates", "conflicts", "rejected", "detail"}


def post_whole(url: str, key: str, body: bytes) -> urllib.request.Request:
    """A plain urllib POST: it writes the whole body before it reads the answer."""
    return urllib.request.Request(
        f"{url}/v1/ingest",
        data=body,
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        method="POST",
    )


TWELVE_MB = b"[" + b",".join([json.dumps(meter_payload()).encode()] * 125_000) + b"]"


def test_a_client_that_writes_12_mb_before_reading_gets_the_413(served):
    server, key = served
    body = TWELVE_MB
    assert len(body) > 12_000_000
    request = post_whole(server.url, key, body)

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)

    assert refused.value.code == 413
    data = json.loads(refused.value.read())
    assert data == {
        "accepted": 0,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": [],
        "detail": "The body is over 1048576 bytes; send smaller batches.",
    }
    assert MeterReading.objects.count() == 0


def test_a_client_that_writes_12_mb_with_a_bad_key_reads_the_refusal(served):
    server, _ = served

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post_whole(server.url, "not.a-key", TWELVE_MB), timeout=60)

    assert refused.value.code in (401, 403)
    assert json.loads(refused.value.read())["detail"]
