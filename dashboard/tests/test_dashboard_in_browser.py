"""The dashboard and the API docs in a real browser (Debian's Chromium under Playwright).

The charts must draw from the page's data (datasets with figures, pixels on the canvas), and every
page must load with no console error, no CSP violation, no failed request and no request to any
host but the test server. Screenshots: artifacts/screenshots/.
"""

import pytest
from rest_framework.authtoken.models import Token

pytestmark = [pytest.mark.browser, pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

NOTHING_WRONG = {
    "console errors": [],
    "page errors": [],
    "CSP violations": [],
    "requests to other hosts": [],
    "failed requests": [],
}

# Per chart: per dataset, how many points carry a figure (> 0); and whether the canvas has ink.
CHARTS_DRAWN = """() => Object.fromEntries(
  Object.entries(window.dashboardCharts).map(([id, chart]) => {
  const figures = chart.data.datasets.map((d) => d.data.filter((v) => v !== null && v > 0).length);
  const canvas = chart.canvas;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked++;
  return [id, {figures, inked, points: chart.data.labels.length}];
}))"""


def log_in(page, username: str, password: str) -> None:
    page.goto("/dashboard/")
    page.wait_for_url("**/dashboard/login/?next=/dashboard/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/dashboard/")


def test_an_analyst_logs_in_and_the_fleet_charts_draw_from_data(
    page_watch, analyst_user, demo_fleet
):
    page = page_watch.page

    log_in(page, "analyst", "analyst-pass-123")
    page.wait_for_function("performance.getEntriesByName('dashboard-charts-drawn').length > 0")
    page_watch.settle()

    charts = page.evaluate(CHARTS_DRAWN)
    # efficiency line, AC bars, DC bars: three hours with figures in the 24 hourly buckets
    assert charts["fleet-chart"]["points"] == 24
    assert charts["fleet-chart"]["figures"] == [3, 3, 3]
    assert charts["fleet-chart"]["inked"] > 10_000
    assert page.locator("#worst-vehicles a").all_inner_texts() == ["V-BAD"]
    assert page.locator("#fleet-efficiency").inner_text() == "75.0 %"
    page_watch.screenshot("fleet dashboard")

    page.click("#worst-vehicles a")
    page.wait_for_url("**/dashboard/vehicles/V-BAD/?window=24h")
    page.wait_for_function("performance.getEntriesByName('dashboard-charts-drawn').length > 0")
    page_watch.settle()

    charts = page.evaluate(CHARTS_DRAWN)
    assert charts["vehicle-energy-chart"]["figures"] == [3, 3, 3]
    # SoC and temperature: the three hours (and the current one, when readings reach into it)
    assert charts["vehicle-battery-chart"]["figures"][0] >= 3
    assert all(chart["inked"] > 10_000 for chart in charts.values())
    bands = page.evaluate("window.dashboardCharts['vehicle-energy-chart'].options.overlay.bands")
    assert [band["label"] for band in bands] == ["M-2", "M-3"]
    assert page.locator("#assignments tbody tr").count() == 2
    page_watch.screenshot("vehicle page")
    assert page_watch.problems() == NOTHING_WRONG


def test_the_vehicle_window_form_switches_to_from_and_to(page_watch, staff_user, demo_fleet):
    page = page_watch.page
    log_in(page, "admin", "admin-pass-123")

    page.goto("/dashboard/vehicles/V-GOOD/?window=7d")
    assert page.locator("#from").is_disabled()
    page.select_option("#window", "")
    assert page.locator("#from").is_enabled()
    page.fill("#from", demo_fleet.start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#to", demo_fleet.reassigned_at.strftime("%Y-%m-%dT%H:%M"))
    page.select_option("#bucket", "hour")
    page.click("form.filters button[type=submit]")
    page.wait_for_function("performance.getEntriesByName('dashboard-charts-drawn').length > 0")
    page_watch.settle()

    efficiency = page.evaluate(
        "window.dashboardCharts['vehicle-energy-chart'].data.datasets[0].data"
    )
    assert efficiency == [90, 90]  # 1 h 30: a whole hour and a half hour, both at 90 %
    page_watch.screenshot("vehicle from-to window")
    assert page_watch.problems() == NOTHING_WRONG


def test_the_admin_header_links_the_dashboard(page_watch, staff_user):
    page = page_watch.page

    page.goto("/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-123")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    page.click("#user-tools a[href='/dashboard/']")
    page.wait_for_url("**/dashboard/")
    page_watch.settle()

    assert page.locator("h1").inner_text() == "Fleet efficiency"
    assert page_watch.problems() == NOTHING_WRONG


def test_swagger_ui_authorizes_with_a_bare_token_and_executes_a_performance_call(
    page_watch, analyst_user, demo_fleet
):
    token = Token.objects.create(user=analyst_user).key
    page = page_watch.page

    page.goto("/api/docs/")
    page.wait_for_selector(".opblock", timeout=30_000)
    page.click(".btn.authorize")
    bearer = page.locator(".auth-container", has_text="BearerAuth")
    bearer.locator("input").fill(token)
    bearer.locator("button.authorize").click()
    page.click(".btn-done")
    operation = page.locator("#operations-analytics-analytics_vehicle_performance")
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator("input[placeholder='vehicleId']").fill("V-BAD")
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=15_000)
    page_watch.settle()

    assert status.inner_text().strip() == "200"
    curl = operation.locator(".curl-command").inner_text()
    assert f"Authorization: Bearer {token}" in curl
    assert (
        '"status": "FAULT_DETECTED"'
        in operation.locator(
            ".live-responses-table .response-col_description pre"
        ).first.inner_text()
    )
    page_watch.screenshot("swagger ui bearer call")
    assert page_watch.problems() == NOTHING_WRONG
