"""The vehicle and meter lists as a working tool: live state, 24 h figures, alarms, links."""

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alarms.models import Alarm, AlarmSubject, AlarmType
from analytics.selectors import fleet_vehicle_figures
from fleet.admin_columns import day_window
from fleet.models import Meter, Vehicle
from fleet.tests.factories import MeterAssignmentFactory, MeterFactory, VehicleFactory
from telemetry.models import VehicleHourly, VehicleStatus
from telemetry.tests.factories import every_minute, ingest, meter_payload, vehicle_payload

pytestmark = pytest.mark.django_db

# Half past noon: the 24 h window is 2026-02-09 13:00 .. now.
NOW = datetime(2026, 2, 10, 12, 30, tzinfo=UTC)
MAPPED_SINCE = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


class _Rows(HTMLParser):
    """The cells' text of each row of the changelist table, and the links of each row."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[list[str]] = []
        self._in_table = self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "result_list":
            self._in_table = True
        elif self._in_table and tag == "tbody":
            self._body = True
        elif self._in_table and tag == "tr" and self._body:
            self.rows.append([])
            self.links.append([])
        elif self._in_table and tag in ("td", "th") and self.rows:
            self._in_cell = True
            self.rows[-1].append("")
        elif self._in_cell and tag == "a":
            self.links[-1].append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell and self.rows:
            self.rows[-1][-1] += data.strip()

    _body = False


def table(response) -> _Rows:
    parser = _Rows()
    parser.feed(response.content.decode())
    return parser


def mapped(vehicle_id: str, meter_id: str) -> tuple[Vehicle, Meter]:
    vehicle = VehicleFactory(vehicle_id=vehicle_id)
    meter = MeterFactory(meter_id=meter_id)
    MeterAssignmentFactory(vehicle=vehicle, meter=meter, valid_from=MAPPED_SINCE)
    return vehicle, meter


def charge(
    vehicle_id: str, meter_id: str, *, ac_kwh: float, efficiency_pct: float, soc: float = 50.0
) -> None:
    """20 readings a side, from 11:00 (whole hours inside the window and the assignment)."""
    moments = every_minute(NOW.replace(hour=11, minute=0), 20)
    dc_kwh = ac_kwh * efficiency_pct / 100
    ingest(
        [meter_payload(meter_id, at=at, kwh=ac_kwh) for at in moments]
        + [vehicle_payload(vehicle_id, at=at, kwh=dc_kwh, soc=soc) for at in moments],
        now=NOW,
    )


def open_alarm(*, vehicle=None, meter=None, type=AlarmType.LOW_EFFICIENCY) -> Alarm:
    subject = AlarmSubject.VEHICLE if vehicle is not None else AlarmSubject.METER
    return Alarm.objects.create(
        type=type, subject=subject, vehicle=vehicle, meter=meter, opened_at=NOW
    )


VEHICLES = reverse("admin:fleet_vehicle_changelist")
METERS = reverse("admin:fleet_meter_changelist")


class TestVehicleListColumns:
    def test_each_row_shows_live_state_24h_figures_alarms_and_links(self, clock, admin_site_client):
        ok, _ = mapped("V-OK", "M-OK")
        charge("V-OK", "M-OK", ac_kwh=1.0, efficiency_pct=90.0, soc=62.4)
        open_alarm(vehicle=ok, type=AlarmType.ANOMALY)
        Alarm.objects.create(
            type=AlarmType.LOW_EFFICIENCY,
            subject=AlarmSubject.VEHICLE,
            vehicle=ok,
            opened_at=NOW - timedelta(days=2),
            cleared_at=NOW - timedelta(days=1),
        )
        mapped("V-SLOW", "M-SLOW")
        charge("V-SLOW", "M-SLOW", ac_kwh=1.0, efficiency_pct=50.0)
        clock.move_to(NOW - timedelta(hours=1))
        ingest(
            [vehicle_payload("V-STALE", at=NOW - timedelta(hours=1))], now=NOW - timedelta(hours=1)
        )
        clock.move_to(NOW)
        VehicleFactory(vehicle_id="V-NEW")

        response = admin_site_client.get(VEHICLES)

        assert response.status_code == 200
        rows = table(response)
        assert rows.rows == [
            # checkbox, id, meter, last seen, state, SoC, efficiency, status, alarms, links
            ["", "V-NEW", "-", "never", "never seen", "—", "—", "INSUFFICIENT_DATA", "0",
             "readings·dashboard·alarms"],
            ["", "V-OK", "M-OK", "2026-02-10 12:30:00 UTC", "live", "62", "90.0 %", "OK", "1",
             "readings·dashboard·alarms"],
            ["", "V-SLOW", "M-SLOW", "2026-02-10 12:30:00 UTC", "live", "50", "50.0 %",
             "FAULT_DETECTED", "0", "readings·dashboard·alarms"],
            ["", "V-STALE", "-", "2026-02-10 11:30:00 UTC", "stale", "50", "—",
             "INSUFFICIENT_DATA", "0", "readings·dashboard·alarms"],
        ]  # fmt: skip
        pk = ok.pk
        assert rows.links[1] == [
            f"/admin/fleet/vehicle/{pk}/change/",
            f"/admin/alarms/alarm/?vehicle__id__exact={pk}&state=active",
            f"/admin/telemetry/vehiclereading/?device__id__exact={pk}",
            "/dashboard/vehicles/V-OK/",
            f"/admin/alarms/alarm/?vehicle__id__exact={pk}",
        ]

    def test_the_links_open_the_vehicles_readings_and_alarms(self, clock, admin_site_client):
        vehicle, _ = mapped("V-1", "M-1")
        charge("V-1", "M-1", ac_kwh=1.0, efficiency_pct=90.0)
        charge("V-2", "M-2", ac_kwh=1.0, efficiency_pct=90.0)
        alarm = open_alarm(vehicle=vehicle)
        links = table(admin_site_client.get(VEHICLES)).links[0]

        readings = admin_site_client.get(links[2])
        alarms = admin_site_client.get(links[1])

        assert (readings.status_code, alarms.status_code) == (200, 200), links
        assert {r.device.vehicle_id for r in readings.context["cl"].result_list} == {"V-1"}
        assert readings.context["subtitle"] == "of vehicle V-1"
        assert "20 vehicle readings" in readings.content.decode()
        assert list(alarms.context["cl"].result_list) == [alarm]

    def test_runs_the_same_queries_for_50_vehicles_as_for_5(self, clock, admin_site_client):
        def fleet(first: int, count: int) -> None:
            for n in range(first, first + count):
                vehicle, meter = mapped(f"V-{n:03}", f"M-{n:03}")
                VehicleStatus.objects.create(
                    device=vehicle,
                    recorded_at=NOW,
                    received_at=NOW,
                    energy_kwh=0.5,
                    soc_pct=50,
                    battery_temp_c=30,
                )
                VehicleHourly.objects.create(
                    device=vehicle,
                    hour=NOW.replace(minute=0),
                    energy_kwh=0.5,
                    battery_temp_sum_c=30,
                    reading_count=1,
                )
                open_alarm(vehicle=vehicle)
                open_alarm(meter=meter, type=AlarmType.DEVICE_OFFLINE)

        fleet(0, 5)
        with CaptureQueriesContext(connection) as five:
            assert len(admin_site_client.get(VEHICLES).context["cl"].result_list) == 5
        fleet(5, 45)

        with CaptureQueriesContext(connection) as fifty:
            response = admin_site_client.get(VEHICLES)

        assert len(response.context["cl"].result_list) == 50
        assert len(fifty) == len(five)
        assert [row[8] for row in table(response).rows] == ["1"] * 50


class TestTheStatusRule:
    def test_the_list_agrees_with_the_fleet_figures_on_whole_hours(self, clock, admin_site_client):
        for code, ac, efficiency in [
            ("OK", 1.0, 92.0),
            ("FAULT", 1.0, 60.0),
            ("ANOMALY", 1.0, 120.0),
            ("IDLE", 0.01, 90.0),
        ]:
            mapped(f"V-{code}", f"M-{code}")
            charge(f"V-{code}", f"M-{code}", ac_kwh=ac, efficiency_pct=efficiency)

        rows = table(admin_site_client.get(VEHICLES)).rows
        exact = fleet_vehicle_figures(
            start=day_window(NOW),
            end=NOW,
            threshold=settings.ANALYTICS_FAULT_THRESHOLD_PCT,
            min_charge_kwh=settings.ANALYTICS_MIN_CHARGE_KWH,
        )

        assert {row[1]: row[7] for row in rows} == {f.vehicle_id: f.status for f in exact}
        assert {row[1]: row[7] for row in rows} == {
            "V-ANOMALY": "ANOMALY",
            "V-FAULT": "FAULT_DETECTED",
            "V-IDLE": "IDLE",
            "V-OK": "OK",
        }


class TestVehicleListFilters:
    @pytest.fixture
    def fleet(self, clock):
        served, _ = mapped("V-SERVED", "M-1")
        charge("V-SERVED", "M-1", ac_kwh=1.0, efficiency_pct=50.0)
        open_alarm(vehicle=served)
        clock.move_to(NOW - timedelta(hours=1))
        ingest(
            [vehicle_payload("V-STALE", at=NOW - timedelta(hours=1))], now=NOW - timedelta(hours=1)
        )
        clock.move_to(NOW)
        VehicleFactory(vehicle_id="V-NEW")

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ({}, ["V-NEW", "V-SERVED", "V-STALE"]),
            ({"has_meter": "yes"}, ["V-SERVED"]),
            ({"has_meter": "no"}, ["V-NEW", "V-STALE"]),
            ({"seen": "live"}, ["V-SERVED"]),
            ({"seen": "stale"}, ["V-STALE"]),
            ({"seen": "never"}, ["V-NEW"]),
            ({"open_alarm": "any"}, ["V-SERVED"]),
            ({"open_alarm": "LOW_EFFICIENCY"}, ["V-SERVED"]),
            ({"open_alarm": "ANOMALY"}, []),
            ({"open_alarm": "none"}, ["V-NEW", "V-STALE"]),
            ({"has_meter": "no", "seen": "stale"}, ["V-STALE"]),
        ],
    )
    def test_filters_narrow_the_list(self, fleet, admin_site_client, query, expected):
        response = admin_site_client.get(VEHICLES, query)

        assert [v.vehicle_id for v in response.context["cl"].result_list] == expected

    def test_the_filters_are_offered(self, admin_site_client):
        response = admin_site_client.get(VEHICLES)

        titles = [spec.title for spec in response.context["cl"].filter_specs]
        assert titles[:3] == ["has a meter", "last seen", "status (open alarm)"]


class TestMeterList:
    def test_each_row_shows_live_state_24h_energy_alarms_and_links(self, clock, admin_site_client):
        _, meter = mapped("V-1", "M-1")
        charge("V-1", "M-1", ac_kwh=0.123456, efficiency_pct=90.0)
        open_alarm(meter=meter, type=AlarmType.DEVICE_OFFLINE)
        MeterFactory(meter_id="M-SPARE")

        response = admin_site_client.get(METERS)

        rows = table(response)
        assert rows.rows == [
            ["", "M-1", "V-1", "2026-02-10 12:30:00 UTC", "live", "2.4691", "1",
             "readings·vehicle's dashboard·alarms"],
            ["", "M-SPARE", "-", "never", "never seen", "—", "0", "readings·alarms"],
        ]  # fmt: skip
        assert rows.links[0][2:] == [
            f"/admin/telemetry/meterreading/?device__id__exact={meter.pk}",
            "/dashboard/vehicles/V-1/",
            f"/admin/alarms/alarm/?meter__id__exact={meter.pk}",
        ]

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ({"has_vehicle": "yes"}, ["M-1"]),
            ({"has_vehicle": "no"}, ["M-SPARE"]),
            ({"seen": "never"}, ["M-SPARE"]),
            ({"open_alarm": "DEVICE_OFFLINE"}, ["M-1"]),
        ],
    )
    def test_filters_narrow_the_list(self, clock, admin_site_client, query, expected):
        _, meter = mapped("V-1", "M-1")
        charge("V-1", "M-1", ac_kwh=1.0, efficiency_pct=90.0)
        open_alarm(meter=meter, type=AlarmType.DEVICE_OFFLINE)
        MeterFactory(meter_id="M-SPARE")

        response = admin_site_client.get(METERS, query)

        assert [m.meter_id for m in response.context["cl"].result_list] == expected
