"""The reading and rollup lists: newest first, pages that end with the data, an honest count, a
bounded date drill-down, rounded rollups, titles by device id and times with their zone."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from fleet.models import Vehicle
from telemetry.admin import VehicleReadingAdmin
from telemetry.models import VehicleHourly, VehicleReading, VehicleStatus
from telemetry.partitions import partitions_ensure
from telemetry.tests.factories import T0, every_minute, ingest, vehicle_payload

pytestmark = pytest.mark.django_db

READINGS = reverse("admin:telemetry_vehiclereading_changelist")


@pytest.fixture
def admin_site_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


def readings_of(vehicle_id: str, start: datetime, count: int) -> None:
    moments = every_minute(start, count)
    ingest([vehicle_payload(vehicle_id, at=at) for at in moments], now=moments[-1])


def html(response) -> str:
    return response.content.decode()


def cells(response) -> list[list[str]]:
    """The text of each cell of each row of the list's table."""
    body = re.search(r'id="result_list">.*?<tbody>(.*?)</tbody>', html(response), re.S)[1]
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def paginator_text(response) -> str:
    html = response.content.decode()
    block = re.search(r'<p class="paginator" id="lookahead-paginator">(.*?)</p>', html, re.S)[1]
    return " ".join(re.sub(r"<[^>]+>", " ", block).split())


def paginator_links(response) -> dict[str, str]:
    html = response.content.decode()
    block = re.search(r'<p class="paginator" id="lookahead-paginator">(.*?)</p>', html, re.S)[1]
    return {
        rel: href.replace("&amp;", "&")
        for href, rel in re.findall(r'href="([^"]+)" rel="(\w+)"', block)
    }


class TestPaging:
    @pytest.fixture
    def readings(self):
        readings_of("V-1", T0, 250)

    def test_the_first_page_offers_older_readings_and_an_exact_count(
        self, admin_site_client, readings
    ):
        response = admin_site_client.get(READINGS)

        rows = response.context["cl"].result_list
        assert len(rows) == 100
        assert rows[0].recorded_at == T0 + timedelta(minutes=249)
        assert paginator_text(response) == "page 1 older › 250 vehicle readings"
        assert paginator_links(response) == {"next": "?p=2"}

    def test_the_last_page_is_where_the_data_ends(self, admin_site_client, readings):
        response = admin_site_client.get(READINGS, {"p": "3"})

        rows = response.context["cl"].result_list
        assert len(rows) == 50
        assert rows[-1].recorded_at == T0
        assert paginator_text(response) == "‹ newer page 3 250 vehicle readings"
        assert paginator_links(response) == {"prev": "?p=2"}

    def test_a_page_past_the_data_says_so_and_links_the_first_page(
        self, admin_site_client, readings
    ):
        response = admin_site_client.get(READINGS, {"p": "999"})

        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == []
        assert paginator_text(response) == (
            "‹ newer page 999 250 vehicle readings — no rows on this page; first page"
        )

    def test_a_page_reads_its_rows_once_and_counts_with_a_bound(self, admin_site_client, readings):
        with CaptureQueriesContext(connection) as queries:
            admin_site_client.get(READINGS, {"p": "2"})

        reading_queries = [q["sql"] for q in queries if "telemetry_vehiclereading" in q["sql"]]
        assert len([sql for sql in reading_queries if "LIMIT 101 OFFSET 100" in sql]) == 1
        (count,) = [sql for sql in reading_queries if "COUNT(" in sql.upper()]
        assert "LIMIT 10001" in count

    def test_there_is_no_show_all_link(self, admin_site_client, readings):
        assert "showall" not in admin_site_client.get(READINGS).content.decode()


class TestHonestCount:
    @pytest.fixture
    def small_bound(self, monkeypatch):
        monkeypatch.setattr(admin.site._registry[VehicleReading], "count_limit", 100)

    @pytest.mark.postgresql
    def test_past_the_bound_it_is_the_planners_estimate_labelled_as_such(
        self, admin_site_client, small_bound
    ):
        readings_of("V-1", T0, 150)

        text = paginator_text(admin_site_client.get(READINGS))

        assert re.fullmatch(
            r"page 1 older › more than 100 vehicle readings \(≈ [\d,]+, planner estimate\)", text
        ), text

    @pytest.mark.sqlite
    def test_past_the_bound_on_sqlite_it_is_more_than_the_bound(
        self, admin_site_client, small_bound
    ):
        readings_of("V-1", T0, 150)

        text = paginator_text(admin_site_client.get(READINGS))

        assert text == "page 1 older › more than 100 vehicle readings"

    def test_a_search_is_counted_exactly(self, admin_site_client):
        readings_of("V-1", T0, 30)
        readings_of("V-2", T0, 20)

        response = admin_site_client.get(READINGS, {"q": "V-2"})

        assert paginator_text(response) == "page 1 20 vehicle readings"
        search_form = re.search(r'<form id="changelist-search".*?</form>', html(response), re.S)[0]
        assert "result" not in search_form


JAN_31 = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
FEB_10 = T0
FEB_11 = datetime(2026, 2, 11, 8, 0, tzinfo=UTC)


class TestDateDrillDown:
    @pytest.fixture
    def three_days(self):
        for start in (JAN_31, FEB_10, FEB_11):
            readings_of("V-1", start, 3)

    def choices(self, response) -> list[str]:
        return [choice["title"] for choice in response.context["drilldown"].choices]

    def test_starts_at_the_months_of_the_year_the_data_spans(self, admin_site_client, three_days):
        response = admin_site_client.get(READINGS)

        assert self.choices(response) == ["January 2026", "February 2026"]
        assert 'href="?recorded_at__month=2&amp;recorded_at__year=2026"' in (
            response.content.decode()
        )

    def test_a_month_offers_the_days_with_readings(self, admin_site_client, three_days):
        if connection.vendor == "postgresql":
            partitions_ensure(days={datetime(2026, 2, 12).date()})  # empty: not offered

        response = admin_site_client.get(
            READINGS, {"recorded_at__year": "2026", "recorded_at__month": "2"}
        )

        assert self.choices(response) == ["2026-02-10", "2026-02-11"]
        assert len(response.context["cl"].result_list) == 6

    def test_a_day_lists_that_days_readings(self, admin_site_client, three_days):
        response = admin_site_client.get(
            READINGS,
            {"recorded_at__year": "2026", "recorded_at__month": "2", "recorded_at__day": "11"},
        )

        assert [r.recorded_at for r in response.context["cl"].result_list] == [
            FEB_11 + timedelta(minutes=2),
            FEB_11 + timedelta(minutes=1),
            FEB_11,
        ]
        assert self.choices(response) == ["2026-02-11"]
        assert response.context["drilldown"].back["title"] == "February 2026"

    @pytest.mark.postgresql
    def test_never_runs_a_query_over_every_row(self, admin_site_client, three_days):
        with CaptureQueriesContext(connection) as queries:
            admin_site_client.get(READINGS)

        reading_queries = [q["sql"] for q in queries if "telemetry_vehiclereading" in q["sql"]]
        assert not [sql for sql in reading_queries if "MIN(" in sql.upper()]
        assert not [sql for sql in reading_queries if "DISTINCT" in sql.upper()]
        assert all("LIMIT" in sql.upper() for sql in reading_queries if "pg_inherits" not in sql), (
            reading_queries
        )

    @pytest.mark.postgresql
    def test_a_day_reads_only_that_days_partition(self, admin_site_client, three_days):
        response = admin_site_client.get(
            READINGS,
            {"recorded_at__year": "2026", "recorded_at__month": "2", "recorded_at__day": "11"},
        )

        plan = response.context["cl"].queryset.explain()
        assert "telemetry_vehiclereading_p20260211" in plan
        assert "telemetry_vehiclereading_p20260210" not in plan


class TestRollupList:
    def test_energy_is_rounded_and_the_temperature_is_the_average(self, admin_site_client):
        vehicle = Vehicle.objects.create(vehicle_id="V-1")
        VehicleHourly.objects.create(
            device=vehicle,
            hour=T0,
            energy_kwh=5.945240000000002,
            battery_temp_sum_c=182.0,
            reading_count=6,
        )

        response = admin_site_client.get(reverse("admin:telemetry_vehiclehourly_changelist"))

        assert cells(response) == [["V-1", "2026-02-10 10:00:00 UTC", "5.9452", "30.3", "6"]]
        assert "average battery temperature (°c)" in html(response).lower()
        assert "sum of battery temperatures" not in html(response).lower()

    def test_the_rollup_page_shows_the_same_figures(self, admin_site_client):
        vehicle = Vehicle.objects.create(vehicle_id="V-1")
        rollup = VehicleHourly.objects.create(
            device=vehicle,
            hour=T0,
            energy_kwh=5.945240000000002,
            battery_temp_sum_c=182.0,
            reading_count=6,
        )

        response = admin_site_client.get(
            reverse("admin:telemetry_vehiclehourly_change", args=[rollup.pk])
        )

        html = response.content.decode()
        assert response.context["subtitle"] == "V-1, hour from 2026-02-10 10:00:00 UTC"
        assert "5.9452" in html and "30.3" in html
        assert "5.945240000000002" not in html


class TestTitlesAndTimes:
    def test_a_status_page_is_titled_by_the_device_id(self, admin_site_client):
        readings_of("V-7", T0, 2)
        status = VehicleStatus.objects.get()

        response = admin_site_client.get(
            reverse("admin:telemetry_vehiclestatus_change", args=[status.pk])
        )

        assert response.context["subtitle"] == "V-7 at 2026-02-10 10:01:00 UTC"
        assert f"vehicle {status.pk} at" not in response.content.decode()

    def test_every_time_in_a_list_carries_its_zone(self, admin_site_client):
        readings_of("V-7", T0, 2)

        response = admin_site_client.get(reverse("admin:telemetry_vehiclestatus_changelist"))

        ((device, recorded_at, *_, received_at),) = cells(response)
        assert (device, recorded_at) == ("V-7", "2026-02-10 10:01:00 UTC")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", received_at)

    def test_the_reading_list_orders_newest_first_with_a_total_order(self):
        assert VehicleReadingAdmin.ordering == ("-recorded_at", "-device_id")
