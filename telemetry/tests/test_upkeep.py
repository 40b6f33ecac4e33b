from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from telemetry.models import MeterHourly, MeterStatus, VehicleHourly, VehicleStatus
from telemetry.partitions import partition_name, partitions_ensure, partitions_list
from telemetry.streams import METER_STREAM
from telemetry.tests.factories import T0, every_minute, ingest, meter_payload, vehicle_payload


def run(command: str, *args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, *[str(arg) for arg in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def ingest_fleet(start=T0, minutes=90) -> None:
    payloads = []
    for at in every_minute(start, minutes):
        for n in (1, 2):
            payloads.append(meter_payload(f"M-{n}", at=at, kwh=0.2 * n))
            payloads.append(vehicle_payload(f"V-{n}", at=at, kwh=0.18 * n, soc=30 + at.minute))
    ingest(payloads)


@pytest.mark.django_db
class TestRebuildLiveStatus:
    def test_corrupted_and_missing_live_rows_are_restored_from_history(self, telemetry_state):
        ingest_fleet()
        expected = telemetry_state.live()
        MeterStatus.objects.filter(device__meter_id="M-1").update(
            energy_kwh=99.0, recorded_at=T0 + timedelta(days=3)
        )
        VehicleStatus.objects.filter(device__vehicle_id="V-2").delete()

        out, err = run("rebuild_live_status", "--chunk-size", 1)

        assert telemetry_state.live() == expected == telemetry_state.live_from_history()
        assert "devices 4, live rows repaired 2" in out
        assert "live status" in err

    def test_a_repaired_row_keeps_an_honest_received_at(self):
        ingest_fleet()
        received = MeterStatus.objects.get(device__meter_id="M-2").received_at
        MeterStatus.objects.filter(device__meter_id="M-2").update(voltage_v=1.0)
        VehicleStatus.objects.filter(device__vehicle_id="V-1").delete()

        run("rebuild_live_status")

        assert MeterStatus.objects.get(device__meter_id="M-2").received_at == received
        restored = VehicleStatus.objects.get(device__vehicle_id="V-1")
        assert restored.received_at == restored.recorded_at

    def test_a_second_run_repairs_nothing(self):
        ingest_fleet()
        MeterStatus.objects.all().delete()
        run("rebuild_live_status")

        out, _ = run("rebuild_live_status")

        assert "live rows repaired 0" in out


@pytest.mark.django_db
class TestRebuildRollups:
    def test_corrupted_missing_and_stray_rollup_rows_are_restored_from_history(
        self, telemetry_state
    ):
        ingest_fleet()
        expected = telemetry_state.rollups()
        MeterHourly.objects.filter(device__meter_id="M-1", hour=T0).update(energy_kwh=0.0)
        VehicleHourly.objects.filter(device__vehicle_id="V-2").delete()
        stray = MeterHourly.objects.first()
        MeterHourly.objects.create(
            device=stray.device, hour=T0 + timedelta(hours=5), energy_kwh=7.0, reading_count=7
        )

        out, _ = run("rebuild_rollups")

        assert telemetry_state.rollups() == expected == telemetry_state.rollups_from_history()
        assert "hours 6 (" in out  # 10:00 to the stray row's 15:00

    def test_only_the_hours_in_range_are_rebuilt(self):
        ingest_fleet()
        MeterHourly.objects.update(energy_kwh=0.0)

        run("rebuild_rollups", "--since", "2026-02-10T10:30:00Z", "--until", "2026-02-10T11:00Z")

        assert MeterHourly.objects.get(device__meter_id="M-1", hour=T0).energy_kwh == pytest.approx(
            0.2 * 60
        )
        later = MeterHourly.objects.get(device__meter_id="M-1", hour=T0 + timedelta(hours=1))
        assert later.energy_kwh == 0.0

    def test_running_it_twice_gives_the_same_rollups(self, telemetry_state):
        ingest_fleet()
        run("rebuild_rollups")
        once = telemetry_state.rollups()

        run("rebuild_rollups")

        assert telemetry_state.rollups() == once

    def test_a_naive_since_is_an_operator_error(self):
        with pytest.raises(CommandError, match="needs a UTC offset"):
            run("rebuild_rollups", "--since", "2026-02-10T10:00:00")

    def test_since_after_until_is_an_operator_error(self):
        with pytest.raises(CommandError, match="before --until"):
            run("rebuild_rollups", "--since", "2026-02-11T00:00Z", "--until", "2026-02-10T00:00Z")


@pytest.mark.postgresql
@pytest.mark.django_db
class TestManagePartitions:
    def test_it_creates_partitions_for_today_and_the_days_ahead(self):
        today = timezone.now().astimezone(UTC).date()

        out, _ = run("manage_partitions", "--ahead", 3)

        days = {p.day for p in partitions_list()}
        assert {today + timedelta(days=n) for n in range(4)} <= days
        assert "partitions dropped 0" in out

    def test_a_dry_run_lists_and_changes_nothing(self):
        old_day = (timezone.now() - timedelta(days=30)).astimezone(UTC).date()
        partitions_ensure(days={old_day})
        before = partitions_list()

        out, err = run("manage_partitions", "--ahead", 2, "--drop-older-than", 10, "--dry-run")

        assert partitions_list() == before
        assert f"would drop {partition_name(METER_STREAM.history, old_day)}" in err
        assert "would create partitions of" in err
        assert "(dry run)" in out

    def test_dropping_removes_only_old_partitions_and_their_rollups(self):
        now = timezone.now()
        old = datetime.combine(
            (now - timedelta(days=20)).date(), datetime.min.time(), tzinfo=UTC
        ) + timedelta(hours=10)
        recent = old + timedelta(days=15)
        ingest([meter_payload("M-1", at=old), vehicle_payload("V-1", at=old)])
        ingest([meter_payload("M-1", at=recent), vehicle_payload("V-1", at=recent)])

        cutoff = (now - timedelta(days=10)).date()

        out, err = run("manage_partitions", "--ahead", 0, "--drop-older-than", 10)

        days = {p.day for p in partitions_list()}
        assert old.date() not in days
        assert recent.date() in days
        assert min(days) >= cutoff
        dropped = [line.split()[-1] for line in err.splitlines() if line.startswith("dropped ")]
        assert partition_name(METER_STREAM.history, old.date()) in dropped
        assert all(datetime.strptime(name[-8:], "%Y%m%d").date() < cutoff for name in dropped)
        assert list(MeterHourly.objects.values_list("hour", flat=True)) == [recent]
        assert list(VehicleHourly.objects.values_list("hour", flat=True)) == [recent]
        assert "rollup rows deleted 2" in out

    def test_a_negative_ahead_is_an_operator_error(self):
        with pytest.raises(CommandError, match="--ahead"):
            run("manage_partitions", "--ahead", -1)


@pytest.mark.sqlite
@pytest.mark.django_db
class TestManagePartitionsOnSqlite:
    def test_it_says_partitions_are_a_postgresql_feature_and_succeeds(self):
        out, _ = run("manage_partitions")

        assert "partitions are a PostgreSQL feature" in out
