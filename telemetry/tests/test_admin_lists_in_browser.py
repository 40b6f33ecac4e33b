"""The vehicle list and a reading list in a real browser: live columns, links and paging work."""

from datetime import timedelta

import pytest

from fleet.tests.factories import MeterAssignmentFactory, MeterFactory, VehicleFactory
from telemetry.tests.factories import T0, every_minute, ingest, meter_payload, vehicle_payload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOTHING_WRONG = {
    "console errors": [],
    "page errors": [],
    "CSP violations": [],
    "requests to other hosts": [],
    "failed requests": [],
}


def test_an_admin_reads_the_vehicle_list_and_pages_through_its_readings(page_watch, staff_user):
    vehicle = VehicleFactory(vehicle_id="V-BROWSER-1")
    MeterAssignmentFactory(
        vehicle=vehicle,
        meter=MeterFactory(meter_id="M-BROWSER-1"),
        valid_from=T0 - timedelta(days=1),
    )
    VehicleFactory(vehicle_id="V-BROWSER-2")
    moments = every_minute(T0, 150)
    ingest(
        [vehicle_payload("V-BROWSER-1", at=at) for at in moments]
        + [meter_payload("M-BROWSER-1", at=at) for at in moments],
        now=moments[-1],
    )
    page = page_watch.page
    page.goto("/admin/login/?next=/admin/fleet/vehicle/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-123")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/fleet/vehicle/")
    page_watch.settle()

    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    first = rows.nth(0).inner_text()
    assert "V-BROWSER-1" in first and "M-BROWSER-1" in first and "UTC" in first
    assert "never seen" in rows.nth(1).inner_text()
    page_watch.screenshot("admin vehicle list")

    rows.nth(0).locator("a", has_text="readings").click()
    page.wait_for_url("**/admin/telemetry/vehiclereading/?device__id__exact=*")
    page_watch.settle()
    assert page.locator("#result_list tbody tr").count() == 100
    assert "150 vehicle readings" in page.locator("#lookahead-paginator").inner_text()
    page_watch.screenshot("admin reading list page 1")

    page.click("#lookahead-paginator a[rel=next]")
    page_watch.settle()
    assert page.locator("#result_list tbody tr").count() == 50
    assert page.locator("#lookahead-paginator a[rel=next]").count() == 0
    page_watch.screenshot("admin reading list page 2")
    assert page_watch.problems() == NOTHING_WRONG
