"""`import_telemetry` applies the API's bounds, reports conflicts, and backfills older history
only when an operator says `--allow-older`."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management.base import CommandError

from telemetry.models import MeterReading, VehicleReading
from telemetry.partitions import partitioning_enabled, partitions_list
from telemetry.tests.factories import T0, meter_payload, vehicle_payload
from telemetry.tests.test_imports import run_import, write_csv, write_ndjson

pytestmark = pytest.mark.django_db
OLD = datetime(1950, 3, 1, 12, 0, tzinfo=UTC)


def old_payloads(days: int = 3) -> list[dict]:
    payloads = []
    for day in range(days):
        at = OLD + timedelta(days=day)
        payloads += [meter_payload(at=at), vehicle_payload(at=at)]
    return payloads


@pytest.mark.parametrize("writer", [write_ndjson, write_csv], ids=["ndjson", "csv"])
def test_readings_older_than_the_max_age_are_rejected_without_allow_older(tmp_path, writer):
    path = writer(tmp_path / f"old.{'ndjson' if writer is write_ndjson else 'csv'}", old_payloads())
    partitions = partitions_list()

    with pytest.raises(CommandError, match="Every row was rejected"):
        run_import(path)

    assert MeterReading.objects.count() == VehicleReading.objects.count() == 0
    assert partitions_list() == partitions


@pytest.mark.parametrize("writer", [write_ndjson, write_csv], ids=["ndjson", "csv"])
def test_allow_older_backfills_them(tmp_path, writer):
    path = writer(tmp_path / f"old.{'ndjson' if writer is write_ndjson else 'csv'}", old_payloads())

    out, _ = run_import(path, "--allow-older")

    assert "stored 6, duplicates 0, rejected 0" in out
    assert MeterReading.objects.count() == VehicleReading.objects.count() == 3
    if partitioning_enabled():
        assert {p.day for p in partitions_list() if p.day.year == 1950} == {
            (OLD + timedelta(days=d)).date() for d in range(3)
        }


def test_allow_older_keeps_every_other_bound(tmp_path):
    payloads = [
        meter_payload(at=OLD),
        meter_payload("M-2", at=OLD, kwh=150.0),
        meter_payload("M-3", at=OLD) | {"timestamp": "0001-01-01T00:00:00+01:00"},
        vehicle_payload(at=OLD, soc=120.0),
    ]
    path = write_ndjson(tmp_path / "old.ndjson", payloads)

    out, err = run_import(path, "--allow-older")

    assert "stored 1, duplicates 0, rejected 3" in out
    assert "kwhConsumedAc: Over 100 kWh" in err
    assert "timestamp: Out of range" in err
    assert "soc: Expected `float` <= 100.0" in err


@pytest.mark.parametrize("writer", [write_ndjson, write_csv], ids=["ndjson", "csv"])
def test_the_kwh_bound_applies_to_imports(tmp_path, writer):
    payloads = [meter_payload(kwh=100.0), meter_payload("M-2", kwh=1e300)]
    path = writer(tmp_path / f"kwh.{'ndjson' if writer is write_ndjson else 'csv'}", payloads)

    out, err = run_import(path)

    assert "stored 1, duplicates 0, rejected 1" in out
    assert "TELEMETRY_MAX_KWH_PER_READING" in err


def test_an_import_reports_conflicts_and_keeps_the_stored_readings(tmp_path):
    first = [meter_payload(at=T0), vehicle_payload(at=T0)]
    run_import(write_ndjson(tmp_path / "first.ndjson", first))
    replay = [
        meter_payload(at=T0, kwh=7.0),
        vehicle_payload(at=T0),
        meter_payload(at=T0 + timedelta(minutes=1)),
        meter_payload(at=T0 + timedelta(minutes=1), kwh=3.0),
    ]

    out, _ = run_import(write_ndjson(tmp_path / "replay.ndjson", replay))

    assert "stored 1, duplicates 3, rejected 0, conflicts 2" in out
    assert MeterReading.objects.get(recorded_at=T0).energy_kwh == 1.0
    # Two rows of one key in one file: one is stored (which one, within a chunk, is unspecified).
    assert MeterReading.objects.filter(recorded_at=T0 + timedelta(minutes=1)).count() == 1
