from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fleet.tests.factories import VehicleFactory
from telemetry.selectors import (
    DeviceNotFound,
    meter_readings,
    meter_status_get,
    meter_status_list,
    vehicle_readings,
    vehicle_status_get,
    vehicle_status_list,
)
from telemetry.tests.factories import ingest, meter_payload, vehicle_payload

NOW = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def live(clock):
    """V-LOW (soc 10) and M-1 received at NOW − 10 min; V-HIGH (soc 90) received at NOW."""
    clock.move_to(NOW - timedelta(minutes=10))
    ingest([vehicle_payload("V-LOW", at=NOW - timedelta(minutes=11), soc=10.0)], now=NOW)
    ingest([meter_payload("M-1", at=NOW - timedelta(minutes=11))], now=NOW)
    clock.move_to(NOW)
    ingest([vehicle_payload("V-HIGH", at=NOW - timedelta(minutes=1), soc=90.0)], now=NOW)


class TestVehicleStatusList:
    def test_each_row_carries_its_vehicle_id_and_staleness(self, live):
        rows = vehicle_status_list(now=NOW).order_by("vehicle_code")

        assert [(row.vehicle_code, row.soc_pct, row.stale) for row in rows] == [
            ("V-HIGH", 90.0, False),
            ("V-LOW", 10.0, True),
        ]

    def test_stale_is_received_more_than_the_setting_ago(self, live, settings):
        settings.TELEMETRY_STALE_AFTER_SECONDS = 601

        rows = vehicle_status_list(now=NOW).stale(now=NOW)

        assert list(rows) == []

    def test_filters_chain(self, live):
        low = vehicle_status_list(now=NOW).soc_below(50).stale(now=NOW, is_stale=True)
        high = vehicle_status_list(now=NOW).soc_above(50).stale(now=NOW, is_stale=False)

        assert [row.vehicle_code for row in low] == ["V-LOW"]
        assert [row.vehicle_code for row in high] == ["V-HIGH"]

    def test_filtering_by_vehicle_ids(self, live):
        rows = vehicle_status_list(now=NOW).for_vehicle_codes(["V-HIGH", "V-NONE"])

        assert [row.vehicle_code for row in rows] == ["V-HIGH"]


class TestStatusGet:
    def test_a_vehicle_status_is_one_query(self, live):
        with CaptureQueriesContext(connection) as queries:
            status = vehicle_status_get(vehicle_id="V-LOW", now=NOW)

        assert (status.vehicle_code, status.stale, len(queries)) == ("V-LOW", True, 1)

    def test_a_meter_status_reports_staleness(self, live):
        status = meter_status_get(meter_id="M-1", now=NOW - timedelta(minutes=6))

        assert (status.meter_code, status.stale) == ("M-1", False)

    def test_no_row_for_a_vehicle_without_readings(self, live):
        VehicleFactory(vehicle_id="V-QUIET")

        assert vehicle_status_get(vehicle_id="V-QUIET", now=NOW) is None

    def test_the_meter_list_has_its_ids(self, live):
        assert [row.meter_code for row in meter_status_list(now=NOW)] == ["M-1"]


class TestReadings:
    @pytest.fixture
    def history(self, clock):
        ingest(
            [vehicle_payload("V-1", at=NOW - timedelta(minutes=m)) for m in (1, 30, 61, 90)]
            + [meter_payload("M-1", at=NOW - timedelta(minutes=m)) for m in (5, 65)],
            now=NOW,
        )

    def test_vehicle_readings_are_those_of_the_half_open_window(self, history):
        rows = vehicle_readings(
            vehicle_id="V-1", start=NOW - timedelta(minutes=61), end=NOW - timedelta(minutes=1)
        ).order_by("recorded_at")

        assert [(row.vehicle_code, row.recorded_at) for row in rows] == [
            ("V-1", NOW - timedelta(minutes=61)),
            ("V-1", NOW - timedelta(minutes=30)),
        ]

    def test_meter_readings_are_those_of_the_window(self, history):
        rows = meter_readings(meter_id="M-1", start=NOW - timedelta(hours=1), end=NOW)

        assert [(row.meter_code, row.recorded_at) for row in rows] == [
            ("M-1", NOW - timedelta(minutes=5))
        ]

    @pytest.mark.parametrize("selector", [vehicle_readings, meter_readings])
    def test_an_unknown_device_raises(self, history, selector):
        key = "vehicle_id" if selector is vehicle_readings else "meter_id"

        with pytest.raises(DeviceNotFound):
            selector(**{key: "X-404"}, start=NOW - timedelta(hours=1), end=NOW)
