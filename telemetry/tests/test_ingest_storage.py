"""Storage guarantees of ingestion: partitions, atomicity, concurrency, query budget."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from fleet.models import Meter, Vehicle
from telemetry import models
from telemetry.partitions import (
    forget_known_partitions,
    partition_name,
    partitions_ensure,
    partitions_list,
)
from telemetry.streams import METER_STREAM, STREAMS, VEHICLE_STREAM
from telemetry.tests.factories import T0, every_minute, ingest, meter_payload, vehicle_payload


@pytest.mark.postgresql
@pytest.mark.django_db
class TestPartitions:
    def test_a_backfill_into_a_day_with_no_partition_succeeds(self):
        old_day = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
        assert not [p for p in partitions_list() if p.day == old_day.date()]

        result = ingest([meter_payload(at=old_day), vehicle_payload(at=old_day)])

        assert result.accepted == 2
        assert {(p.parent, p.day) for p in partitions_list() if p.day == old_day.date()} == {
            (METER_STREAM.history, date(2024, 1, 15)),
            (VEHICLE_STREAM.history, date(2024, 1, 15)),
        }

    def test_a_reading_lands_in_its_own_day_partition(self):
        ingest([meter_payload(at=T0)])

        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT count(*) FROM "{partition_name(METER_STREAM.history, T0.date())}"'
            )
            assert cursor.fetchone()[0] == 1

    def test_ensuring_twice_creates_nothing_the_second_time(self):
        days = {date(2025, 3, 1), date(2025, 3, 2)}

        first = partitions_ensure(days=days)
        forget_known_partitions()
        second = partitions_ensure(days=days)

        assert (first, second) == (4, 0)

    # Real transaction boundaries: the failed statement aborts its own transaction, not the test's.
    @pytest.mark.django_db(transaction=True)
    def test_a_partition_dropped_by_another_process_is_recreated_on_ingest(self):
        ingest([meter_payload(at=T0)])
        models.MeterReading.objects.all().delete()
        with connection.cursor() as cursor:  # what retention in another process does
            for parent in (stream.history for stream in STREAMS):
                cursor.execute(f'DROP TABLE "{partition_name(parent, T0.date())}"')

        result = ingest([meter_payload(at=T0 + timedelta(minutes=1))])

        assert result.accepted == 1


@pytest.mark.postgresql
@pytest.mark.django_db
class TestOneTransactionPerRequest:
    def test_a_failure_while_storing_vehicles_leaves_no_meter_row_either(self, device_client):
        with connection.cursor() as cursor:  # a real database error mid-request
            cursor.execute(
                f"""
                CREATE FUNCTION telemetry_test_fail() RETURNS trigger LANGUAGE plpgsql AS
                $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$;
                CREATE TRIGGER telemetry_test_fail BEFORE INSERT ON {VEHICLE_STREAM.status}
                FOR EACH ROW EXECUTE FUNCTION telemetry_test_fail();
                """
            )
        device_client.raise_request_exception = False

        response = device_client.post(
            "/v1/ingest", [meter_payload(), vehicle_payload()], format="json"
        )

        assert response.status_code == 500
        assert (models.MeterReading.objects.count(), models.MeterStatus.objects.count()) == (0, 0)
        assert (models.VehicleReading.objects.count(), models.MeterHourly.objects.count()) == (0, 0)

    def test_a_single_known_reading_costs_a_handful_of_queries(self, device_client):
        device_client.post("/v1/ingest", meter_payload(), format="json")

        with CaptureQueriesContext(connection) as queries:
            response = device_client.post(
                "/v1/ingest", meter_payload(at=T0 + timedelta(minutes=1)), format="json"
            )

        assert response.status_code == 201
        statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
        # the key is remembered from the first request; one statement resolves the device and
        # stores the reading, in a transaction of its own (no BEGIN, COMMIT or savepoint)
        assert statements == ["WITH"]


def _post_concurrently(batches: list[list[dict]]) -> list[int]:
    """Ingest each batch from its own thread, all released together at a barrier."""
    barrier = threading.Barrier(len(batches))
    accepted: list[int] = [0] * len(batches)
    errors: list[BaseException] = []

    def worker(slot: int, batch: list[dict]) -> None:
        try:
            barrier.wait(timeout=10)
            accepted[slot] = ingest(batch).accepted
        except BaseException as error:  # reported to the test below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, b)) for i, b in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return accepted


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
class TestConcurrentIngestion:
    def test_overlapping_batches_from_many_threads_store_each_reading_once(self):
        times = every_minute(T0, 30)
        devices = [f"V-{i}" for i in range(10)]
        readings = [
            vehicle_payload(d, at=t, soc=min(100, 10 + m), kwh=0.25)
            for m, t in enumerate(times)
            for d in devices
        ]
        # Each thread sends an overlapping slice, in a different order.
        batches = [readings[i * 50 : i * 50 + 150][:: 1 if i % 2 else -1] for i in range(4)]

        accepted = _post_concurrently(batches)

        distinct = {(r["vehicleId"], r["timestamp"]) for batch in batches for r in batch}
        assert sum(accepted) == len(distinct) == models.VehicleReading.objects.count()
        newest = max(r["timestamp"] for batch in batches for r in batch)
        assert set(models.VehicleStatus.objects.values_list("recorded_at", flat=True)) == {
            datetime.fromisoformat(newest)
        }
        hourly = models.VehicleHourly.objects.values_list("reading_count", "energy_kwh")
        assert sum(count for count, _ in hourly) == len(distinct)
        assert sum(kwh for _, kwh in hourly) == pytest.approx(0.25 * len(distinct))

    def test_first_readings_of_one_new_device_from_many_threads_all_succeed(self):
        batches = [[meter_payload("M-NEW", at=T0 + timedelta(minutes=i))] for i in range(6)]

        accepted = _post_concurrently(batches)

        assert accepted == [1] * 6
        assert Meter.objects.filter(meter_id="M-NEW").count() == 1
        assert models.MeterStatus.objects.get().recorded_at == T0 + timedelta(minutes=5)

    def test_the_same_reading_sent_by_many_threads_is_stored_once(self):
        batches = [[vehicle_payload("V-1"), meter_payload("M-1")] for _ in range(6)]

        accepted = _post_concurrently(batches)

        assert sum(accepted) == 2
        assert (models.VehicleReading.objects.count(), models.MeterReading.objects.count()) == (
            1,
            1,
        )
        assert Vehicle.objects.count() == 1
        assert list(models.MeterHourly.objects.values_list("reading_count", flat=True)) == [1]
