"""The pages the project serves work in a real browser under their Content-Security-Policy.

Each test opens pages in Chromium and asserts what a person would see, then that nothing went
wrong on the way: no console error, no uncaught error, no CSP violation, no failed request and no
request to any host but the test server. Screenshots: artifacts/screenshots/.
"""

import pytest

from fleet.models import Vehicle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOTHING_WRONG = {
    "console errors": [],
    "page errors": [],
    "CSP violations": [],
    "requests to other hosts": [],
    "failed requests": [],
}


def test_the_home_page_links_the_docs_and_the_admin(page_watch):
    page = page_watch.page

    page.goto("/")

    assert page.locator("h1").inner_text() == "Energy telemetry engine"
    links = page.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert {"/api/docs/", "/api/redoc/", "/admin/"} <= set(links)
    page_watch.settle()
    page_watch.screenshot("home")
    assert page_watch.problems() == NOTHING_WRONG


def test_an_admin_logs_in_and_opens_the_vehicle_list(page_watch, staff_user):
    Vehicle.objects.create(vehicle_id="V-BROWSER-1")
    page = page_watch.page

    page.goto("/admin/")
    page_watch.screenshot("login")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-123")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    page.click("a[href='/admin/fleet/vehicle/']")
    page.wait_for_url("**/admin/fleet/vehicle/")

    page_watch.settle()
    assert page.locator("#result_list").inner_text().count("V-BROWSER-1") == 1
    page_watch.screenshot("vehicle changelist")
    assert page_watch.problems() == NOTHING_WRONG


def test_swagger_ui_renders_every_operation_of_the_schema(page_watch, client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = sum(
        1
        for item in schema["paths"].values()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )
    page = page_watch.page

    page.goto("/api/docs/")
    page.wait_for_selector(".opblock", timeout=30_000)
    page.locator(".opblock-summary").first.click()
    page.wait_for_selector(".opblock-body")
    page_watch.settle()

    assert page.locator(".opblock").count() == operations
    assert "Energy telemetry engine" in page.locator(".info .title").inner_text()
    page_watch.screenshot("swagger ui")
    assert page_watch.problems() == NOTHING_WRONG


def test_redoc_renders_the_reference(page_watch):
    page = page_watch.page

    page.goto("/api/redoc/")
    page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
    page_watch.settle()

    assert page.locator("h1").first.inner_text().startswith("Energy telemetry engine")
    assert page.locator("[data-section-id^='operation/']").count() > 10
    page_watch.screenshot("redoc")
    assert page_watch.problems() == NOTHING_WRONG


def test_a_locked_out_admin_is_told_why_and_for_how_long(page_watch, staff_user, settings):
    page = page_watch.page
    page.goto("/admin/login/")

    for attempt in range(settings.AXES_FAILURE_LIMIT):
        page.fill("#id_username", "admin")
        page.fill("#id_password", f"wrong-{attempt}")
        page.click("input[type=submit]")
        page.wait_for_load_state()

    message = page.locator("#lockout-message").inner_text()
    assert message.startswith(f"Too many failed logins for “admin”: {settings.AXES_FAILURE_LIMIT}")
    assert "locked for 15 minutes" in message
    page_watch.settle()
    page_watch.screenshot("lockout")
    # The lockout page is a 429, which the browser logs as a console error: the only one allowed.
    problems = page_watch.problems()
    console_errors = problems.pop("console errors")
    assert console_errors and all("status of 429" in error for error in console_errors)
    assert problems == {k: v for k, v in NOTHING_WRONG.items() if k != "console errors"}
