"""The dashboard pages: who may see them, what they show, and bad input named by its field."""

import json
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

pytestmark = pytest.mark.django_db


def chart_data(response, element_id: str) -> dict:
    html = response.content.decode()
    start = html.index(f'<script id="{element_id}" type="application/json">')
    start = html.index(">", start) + 1
    return json.loads(html[start : html.index("</script>", start)])


class TestAccess:
    def test_an_anonymous_visitor_is_sent_to_the_login_page(self, client):
        response = client.get("/dashboard/vehicles/V-1/")

        assert response.status_code == 302
        assert response["Location"] == "/dashboard/login/?next=/dashboard/vehicles/V-1/"

    def test_an_analyst_without_the_staff_flag_logs_in_and_lands_on_the_dashboard(
        self, client, analyst_user
    ):
        response = client.post(
            "/dashboard/login/", {"username": "analyst", "password": "analyst-pass-123"}
        )

        assert (response.status_code, response["Location"]) == (302, "/dashboard/")
        assert client.get("/dashboard/").status_code == 200

    def test_the_admin_header_and_the_home_page_link_the_dashboard(self, client, staff_user):
        client.force_login(staff_user)

        assert '<a href="/dashboard/">Dashboard</a>' in client.get("/admin/").content.decode()
        assert 'href="/dashboard/"' in client.get("/").content.decode()


class TestFleetPage:
    def test_it_charts_the_last_24_hours_per_hour_with_the_threshold(
        self, client, analyst_user, demo_fleet
    ):
        client.force_login(analyst_user)

        response = client.get("/dashboard/")

        assert response.status_code == 200
        data = chart_data(response, "fleet-data")
        assert len(data["labels"]) == len(data["acKwh"]) == 24
        # The three hours of readings: AC 2 × 6 kWh, DC 5.4 + 3.6 kWh, 75 %.
        assert data["acKwh"][-4:-1] == [12.0, 12.0, 12.0]
        assert data["dcKwh"][-4:-1] == [9.0, 9.0, 9.0]
        assert data["efficiencyPct"][-4:-1] == [75.0, 75.0, 75.0]
        assert data["threshold"] == 85.0

    def test_it_counts_statuses_lists_the_worst_vehicle_and_the_active_alarm(
        self, client, analyst_user, demo_fleet
    ):
        client.force_login(analyst_user)

        html = client.get("/dashboard/?window=7d").content.decode()

        assert 'badge-OK">OK</span></td><td class="num">1</td>' in html
        assert 'badge-FAULT_DETECTED">FAULT_DETECTED</span></td><td class="num">1</td>' in html
        assert '<a href="/dashboard/vehicles/V-BAD/?window=7d">V-BAD</a>' in html
        assert "V-GOOD</a>" not in html.split('id="worst-vehicles"')[1].split("</table>")[0]
        assert "LOW_EFFICIENCY" in html.split('id="active-alarms"')[1]

    @pytest.mark.parametrize("window, buckets", [("7d", 7), ("30d", 30)])
    def test_the_day_windows_have_a_bar_per_day(
        self, client, analyst_user, demo_fleet, window, buckets
    ):
        client.force_login(analyst_user)

        data = chart_data(client.get(f"/dashboard/?window={window}"), "fleet-data")

        assert len(data["labels"]) in (buckets, buckets + 1)  # the first day may be clipped
        assert round(sum(data["acKwh"]), 3) == 36.0

    @pytest.mark.django_db(transaction=True)
    def test_outside_a_transaction_the_fleet_statements_run_on_connections_of_their_own(
        self, client, analyst_user, demo_fleet
    ):
        client.force_login(analyst_user)
        with transaction.atomic(), CaptureQueriesContext(connection) as one_by_one:
            in_turn = client.get("/dashboard/")
        with CaptureQueriesContext(connection) as alongside:
            side_by_side = client.get("/dashboard/")

        def rollup_statements(queries):
            return [q for q in queries if "telemetry_vehiclehourly" in q["sql"]]

        assert len(rollup_statements(one_by_one.captured_queries)) == 3
        assert rollup_statements(alongside.captured_queries) == []
        figures, expected = (
            chart_data(side_by_side, "fleet-data"),
            chart_data(in_turn, "fleet-data"),
        )
        # the last bucket ends at each request's now
        assert figures.pop("edges")[:-1] == expected.pop("edges")[:-1]
        assert figures == expected
        tables = ("status-counts", "worst-vehicles")
        for table in tables:
            html, expected = side_by_side.content.decode(), in_turn.content.decode()
            assert (
                html.split(f'id="{table}"')[1].split("</table>")[0]
                == (expected.split(f'id="{table}"')[1].split("</table>")[0])
            )

    def test_an_unknown_window_is_refused_naming_the_field(self, client, analyst_user):
        client.force_login(analyst_user)

        response = client.get("/dashboard/?window=1y")

        assert response.status_code == 400
        assert "<code>window</code>: &#x27;1y&#x27; is not a window" in response.content.decode()

    def test_an_unknown_depot_is_refused_naming_the_field(self, client, analyst_user):
        client.force_login(analyst_user)

        response = client.get("/dashboard/?depot=Nowhere")

        assert response.status_code == 400
        assert "<code>depot</code>" in response.content.decode()


class TestVehiclePage:
    def test_it_charts_energy_soc_and_temperature_with_the_assignments_as_bands(
        self, client, analyst_user, demo_fleet
    ):
        client.force_login(analyst_user)

        response = client.get("/dashboard/vehicles/V-BAD/")

        assert response.status_code == 200
        data = chart_data(response, "vehicle-data")
        assert data["dcKwh"][-4:-1] == [3.6, 3.6, 3.6]
        assert data["efficiencyPct"][-4:-1] == [60.0, 60.0, 60.0]
        assert data["avgBatteryTempC"][-4:-1] == [35.0, 35.0, 35.0]
        assert data["avgSocPct"][-4] == round(40 + 29.5 / 6, 2)  # minutes 0–59
        assert [band["label"] for band in data["bands"]] == ["M-2", "M-3"]
        assert (
            data["bands"][0]["to"]
            == data["bands"][1]["from"]
            == (demo_fleet.reassigned_at.isoformat().replace("+00:00", "Z"))
        )

    def test_the_csv_link_downloads_the_same_window_from_the_series_endpoint(
        self, client, analyst_user, demo_fleet
    ):
        client.force_login(analyst_user)
        html = client.get("/dashboard/vehicles/V-BAD/?window=7d").content.decode()
        href = html.split('id="csv-download" href="')[1].split('"')[0].replace("&amp;", "&")

        response = client.get(href)

        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert "bucket=day" in href
        assert len(response.content.decode().strip().splitlines()) in (8, 9)  # header + days

    def test_a_from_to_window_of_the_form_is_taken_as_utc(self, client, analyst_user, demo_fleet):
        client.force_login(analyst_user)
        start = demo_fleet.start

        response = client.get(
            "/dashboard/vehicles/V-GOOD/",
            {
                "from": start.strftime("%Y-%m-%dT%H:%M"),
                "to": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
            },
        )

        data = chart_data(response, "vehicle-data")
        assert data["efficiencyPct"] == [90.0, 90.0]
        assert data["edges"][0][0] == start.isoformat().replace("+00:00", "Z")

    def test_the_vehicle_alarms_are_listed(self, client, analyst_user, demo_fleet):
        client.force_login(analyst_user)

        html = client.get("/dashboard/vehicles/V-BAD/").content.decode()

        assert "LOW_EFFICIENCY" in html.split('id="vehicle-alarms"')[1]

    def test_an_unknown_vehicle_is_a_404(self, client, analyst_user):
        client.force_login(analyst_user)

        assert client.get("/dashboard/vehicles/V-NONE/").status_code == 404

    def test_a_window_longer_than_the_limit_is_refused_naming_the_field(
        self, client, analyst_user, demo_fleet
    ):
        client.force_login(analyst_user)
        now = timezone.now()

        response = client.get(
            "/dashboard/vehicles/V-BAD/",
            {"from": (now - timedelta(days=90)).isoformat(), "to": now.isoformat()},
        )

        assert response.status_code == 400
        assert "<code>to</code>: The window is longer" in response.content.decode()
