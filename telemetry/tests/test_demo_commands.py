"""The demo's commands: the live reporter and the demo set-up's device key."""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from fleet.models import Meter, Vehicle
from fleet.services import meter_assign
from telemetry.models import DeviceAPIKey, MeterReading, VehicleReading

pytestmark = pytest.mark.django_db


@pytest.fixture
def mapped_fleet():
    start = timezone.now() - timedelta(days=1)
    for i in range(1, 4):
        vehicle = Vehicle.objects.create(vehicle_id=f"V-{i}")
        meter_assign(
            vehicle=vehicle, meter=Meter.objects.create(meter_id=f"M-{i}"), valid_from=start
        )
    Vehicle.objects.create(vehicle_id="V-UNMAPPED")


class TestSimulateLive:
    def test_each_mapped_vehicle_and_its_meter_report_once_now(self, mapped_fleet, capsys):
        call_command("simulate_live", vehicles=2)

        assert "2 vehicles reported: 4 readings accepted" in capsys.readouterr().out
        readings = VehicleReading.objects.select_related("device").order_by("device__vehicle_id")
        assert [r.device.vehicle_id for r in readings] == ["V-1", "V-2"]
        assert timezone.now() - readings[0].recorded_at < timedelta(seconds=5)
        meter = MeterReading.objects.get(device__meter_id="M-1")
        assert meter.energy_kwh == round(7.0 * 60 / 3600, 4)  # a minute on a 7 kW charger
        assert 0.7 < readings[0].energy_kwh / meter.energy_kwh < 0.95

    def test_a_re_run_a_minute_later_adds_the_next_minute(self, mapped_fleet):
        call_command("simulate_live", vehicles=5)
        with time_machine.travel(timezone.now() + timedelta(minutes=1)):
            call_command("simulate_live", vehicles=5)

        assert VehicleReading.objects.count() == 6
        assert MeterReading.objects.count() == 6

    def test_no_mapped_vehicle_is_said_plainly(self, db, capsys):
        call_command("simulate_live")

        assert "no vehicle has a meter assigned" in capsys.readouterr().out


class TestDemoSetupKey:
    def test_a_re_run_reuses_the_kept_key_and_piles_up_none(self, mapped_fleet, tmp_path, capsys):
        key_file = tmp_path / "demo_api_key"

        call_command("demo_setup", key_file=str(key_file))
        first = capsys.readouterr().out
        call_command("demo_setup", key_file=str(key_file))
        second = capsys.readouterr().out

        key = key_file.read_text().strip()
        assert f"DEMO_API_KEY={key}" in first and f"DEMO_API_KEY={key}" in second
        assert DeviceAPIKey.objects.count() == 1

    def test_a_lost_key_file_replaces_the_old_demo_key(self, mapped_fleet, tmp_path):
        key_file = tmp_path / "demo_api_key"
        call_command("demo_setup", key_file=str(key_file))
        old = key_file.read_text().strip()
        key_file.unlink()

        call_command("demo_setup", key_file=str(key_file))

        assert key_file.read_text().strip() != old
        assert not DeviceAPIKey.objects.is_valid(old)
        assert DeviceAPIKey.objects.count() == 1

    def test_the_example_vehicle_is_one_that_reports(self, mapped_fleet, tmp_path, capsys):
        call_command("simulate_live", vehicles=3)
        Vehicle.objects.create(vehicle_id="A-FIRST-BUT-SILENT")

        call_command("demo_setup", key_file=str(tmp_path / "key"))

        assert "DEMO_VEHICLE=V-1" in capsys.readouterr().out
