import os

import pytest
from django.db import connection
from rest_framework.test import APIClient

from telemetry.authentication import forget_cached_credentials
from telemetry.partitions import forget_known_partitions
from telemetry.services import api_key_create


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Each test's transaction rolls back its partitions and keys; forget them with it."""
    forget_known_partitions()
    forget_cached_credentials()
    yield
    forget_known_partitions()
    forget_cached_credentials()


@pytest.fixture(autouse=True)
def _static_urls_without_manifest(settings):
    """Tests run no `collectstatic`: resolve static URLs without the manifest it would write."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fixture_days_within_the_age_limit(settings):
    """Tests store readings of a fixed day (factories.T0) under the real clock: keep that day
    inside TELEMETRY_MAX_AGE_DAYS however far the clock has moved on (unchanged until then)."""
    from django.utils import timezone

    from telemetry.tests.factories import T0

    settings.TELEMETRY_MAX_AGE_DAYS = max(
        settings.TELEMETRY_MAX_AGE_DAYS, (timezone.now() - T0).days + 30
    )


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def device_key(db) -> str:
    """The text of a key that may write for any device."""
    _, key = api_key_create(name="test gateway")
    return key


@pytest.fixture
def device_client(device_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {device_key}")
    return client


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        username="admin", password="admin-pass-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def analyst_user(django_user_model):
    return django_user_model.objects.create_user(username="analyst", password="analyst-pass-123")


@pytest.fixture
def staff_client(staff_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff_user)
    return client


@pytest.fixture
def analyst_client(analyst_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(analyst_user)
    return client


def pytest_collection_modifyitems(config, items):
    """Tests of one backend's own behaviour are deselected on the other (never silently skipped)."""
    other = "sqlite" if connection.vendor == "postgresql" else "postgresql"
    kept = [item for item in items if other not in item.keywords]
    deselected = [item for item in items if other in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture
def served_project(transactional_db, tmp_path):
    """Start the project under gunicorn against this test's database: `served_project(env=…)`.

    Needs committed data (so the fixture asks for `transactional_db`); stopped after the test.
    """
    from testsupport.servers import Gunicorn, database_url

    servers = []

    def start(*, env: dict[str, str] | None = None, workers: int = 2) -> Gunicorn:
        server = Gunicorn(
            {"DATABASE_URL": database_url(connection.settings_dict), **(env or {})},
            workers=workers,
            log_dir=tmp_path,
        )
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def pytest_terminal_summary(terminalreporter):
    """Print the figures long tests record (`record_property("figures", …)`), under xdist too."""
    figures = [
        (report.nodeid, value)
        for status in ("passed", "failed")
        for report in terminalreporter.stats.get(status, [])
        if report.when == "call"
        for name, value in report.user_properties
        if name == "figures"
    ]
    if figures:
        terminalreporter.section("figures")
        for nodeid, value in figures:
            terminalreporter.write_line(f"{nodeid}\n{value}")


@pytest.fixture
def redis_cache(settings):
    """The default cache on the real Redis (REDIS_URL), under a key prefix of this test's own.

    Yields the Redis URL and the prefix (for a server started by the test); the keys are deleted
    afterwards.
    """
    from testsupport.redis import delete_prefixed, redis_client, redis_url, unique_prefix

    url, prefix = redis_url(), unique_prefix()
    client = redis_client(url)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
        }
    }
    yield url, prefix
    delete_prefixed(client, prefix)
    client.close()


@pytest.fixture
def local_memory_cache(settings):
    """The default cache in this process's memory (what a worker uses without REDIS_URL)."""
    from django.core.cache import cache

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"}
    }
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium under Playwright, one per test process (see testsupport/browser.py)."""
    from playwright.sync_api import sync_playwright

    from testsupport.browser import launch_chromium

    # Playwright's sync API keeps an event loop running in this thread, and Django then refuses
    # ORM calls from it ("async context"); the tests make theirs between page actions.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page_watch(browser, live_server, request):
    """A fresh browser context on the live test server; `.page`, `.problems()`, `.screenshot()`."""
    from testsupport.browser import PageWatch

    watch = PageWatch(browser=browser, base_url=live_server.url, name=request.node.name)
    watch.open()
    yield watch
    watch.close()
