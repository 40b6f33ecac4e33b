"""The fleet admin's assignment flows in a real browser (Chromium through Playwright).

A meter reassigned through the autocomplete asks to confirm naming the vehicle that loses it, and
a mapping CSV is previewed then applied. Each test also asserts that nothing went wrong on the
page (console errors, CSP violations, failed requests).
"""

from datetime import UTC, datetime

import pytest

from fleet.models import MeterAssignment, Vehicle
from fleet.tests.factories import MeterAssignmentFactory, MeterFactory, VehicleFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
NOTHING_WRONG = {
    "console errors": [],
    "page errors": [],
    "CSP violations": [],
    "requests to other hosts": [],
    "failed requests": [],
}


def log_in(page) -> None:
    page.goto("/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-123")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def open_periods() -> list[tuple[str, str]]:
    rows = MeterAssignment.objects.open().order_by("vehicle__vehicle_id")
    return list(rows.values_list("vehicle__vehicle_id", "meter__meter_id"))


def test_reassigning_a_meter_through_the_autocomplete_asks_to_confirm(page_watch, staff_user):
    MeterAssignmentFactory(
        vehicle=VehicleFactory(vehicle_id="V-1"),
        meter=MeterFactory(meter_id="M-1"),
        valid_from=FEB_1,
    )
    vehicle = VehicleFactory(vehicle_id="V-2")
    page = page_watch.page
    log_in(page)

    page.goto(f"/admin/fleet/vehicle/{vehicle.pk}/change/")
    page.click("#id_meter + .select2")
    # Opening the widget asks for the first page of meters; typing before that answer arrives
    # makes select2 abort it (a failed request to the watcher). Wait for it, then for the search.
    page.wait_for_selector(".select2-results__option >> text=M-1")
    with page.expect_response(lambda r: "/admin/autocomplete/" in r.url and "term=M-1" in r.url):
        page.fill(".select2-search__field", "M-1")
    page.click(".select2-results__option >> text=M-1")
    page.click("input[name=_save]")
    page.wait_for_selector(".errorlist")

    assert "serves vehicle V-1 now" in page.locator(".errorlist").inner_text()
    assert open_periods() == [("V-1", "M-1")]
    page.check("#id_confirm_move")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/fleet/vehicle/")

    assert "Vehicle V-1 lost meter M-1" in page.locator(".messagelist").inner_text()
    assert open_periods() == [("V-2", "M-1")]
    page_watch.settle()
    page_watch.screenshot("reassign with confirmation")
    assert page_watch.problems() == NOTHING_WRONG


def test_a_mapping_csv_is_previewed_then_applied(page_watch, staff_user, tmp_path):
    MeterAssignmentFactory(
        vehicle=VehicleFactory(vehicle_id="V-1"),
        meter=MeterFactory(meter_id="M-1"),
        valid_from=FEB_1,
    )
    csv = tmp_path / "mappings.csv"
    csv.write_text("vehicleId,meterId,validFrom\nV-2,M-1,2026-02-10T10:15:00Z\nV-3,M-3,\n")
    page = page_watch.page
    log_in(page)

    page.goto("/admin/fleet/meterassignment/")
    page.click("text=Upload mappings CSV")
    page.set_input_files("#id_file", str(csv))
    page.click("input[name=preview]")
    page.wait_for_selector("#mapping-preview")

    preview = page.locator("#mapping-preview").inner_text()
    assert "takes meter M-1 from vehicle V-1" in preview
    assert not Vehicle.objects.filter(vehicle_id="V-2").exists()
    page.click("input[name=apply]")
    page.wait_for_url("**/admin/fleet/meterassignment/")

    assert "vehicle V-1 lost meter M-1" in page.locator(".messagelist").inner_text()
    assert open_periods() == [("V-2", "M-1"), ("V-3", "M-3")]
    page_watch.settle()
    page_watch.screenshot("mapping upload applied")
    assert page_watch.problems() == NOTHING_WRONG
