"""Admin login lockout, the production (TLS proxy) settings and the Content-Security-Policy."""

import http.client
import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from testsupport.redis import redis_url
from testsupport.servers import ROOT
from testsupport.static import collect_static_once

LOGIN = "/admin/login/"
LOCKED = "Too many failed logins"


def log_in(client: Client, username: str, password: str):
    return client.post(f"{LOGIN}?next=/admin/", {"username": username, "password": password})


@pytest.mark.django_db
class TestAdminLoginLockout:
    def test_locks_the_username_out_after_the_failure_limit_even_for_the_right_password(
        self, client, staff_user, settings
    ):
        limit = settings.AXES_FAILURE_LIMIT

        before = [log_in(client, "admin", f"wrong-{i}") for i in range(limit - 1)]
        locking = log_in(client, "admin", "wrong-again")
        right = log_in(client, "admin", "admin-pass-123")

        assert [r.status_code for r in before] == [200] * (limit - 1)
        assert all("Please enter the correct username" in r.content.decode() for r in before)
        for response in (locking, right):
            page = response.content.decode()
            assert response.status_code == 429
            assert f"{LOCKED} for “admin”: {limit} in a row." in page
            assert "locked for\n15 minutes" in page
        assert "_auth_user_id" not in client.session

    def test_the_limit_is_a_setting(self, client, staff_user, settings):
        settings.AXES_FAILURE_LIMIT = 2

        statuses = [log_in(client, "admin", "wrong").status_code for _ in range(2)]

        assert statuses == [200, 429]

    def test_other_usernames_are_not_locked(self, client, staff_user, analyst_user, settings):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            log_in(client, "admin", "wrong")

        response = log_in(client, "analyst", "analyst-pass-123")

        # Not locked: the analyst's right password is checked (not staff: the admin says so).
        assert response.status_code == 200
        assert LOCKED not in response.content.decode()

    def test_the_right_password_works_again_after_the_cool_off(self, client, staff_user, settings):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            log_in(client, "admin", "wrong")

        with time_machine.travel(timezone.now() + timedelta(minutes=16)):
            response = log_in(client, "admin", "admin-pass-123")

        assert (response.status_code, response["Location"]) == (302, "/admin/")

    def test_a_successful_login_resets_the_count(self, client, staff_user, settings):
        limit = settings.AXES_FAILURE_LIMIT
        for _ in range(limit - 1):
            log_in(client, "admin", "wrong")
        assert log_in(client, "admin", "admin-pass-123").status_code == 302
        client.logout()

        statuses = [log_in(client, "admin", "wrong").status_code for _ in range(limit - 1)]

        assert statuses == [200] * (limit - 1)


# --- production settings ------------------------------------------------------------------------


def documented_production_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n# production environment\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md has no ```sh block starting with '# production environment'"
    return block[1].splitlines()


def production_environment() -> dict[str, str]:
    """The README's production environment; a `<...>` placeholder (the secret key) is filled in."""
    env = {}
    for line in documented_production_lines():
        name, _, value = line.partition("=")
        env[name] = secrets.token_urlsafe(50) if value.startswith("<") else value
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestDeployCheck:
    def test_passes_with_exactly_the_documented_production_environment(self):
        env = production_environment()

        result = check_deploy(env)

        print(f"\ncheck --deploy --fail-level WARNING with {sorted(env)}:\n{result.stdout}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == "System check identified no issues (0 silenced)."

    def test_env_example_lists_the_same_production_environment(self):
        example = (ROOT / ".env.example").read_text()
        tail = example.split("# --- Production environment behind a TLS proxy", 1)[1]
        commented = [line.removeprefix("# ") for line in tail.splitlines()[2:] if line]

        assert commented == documented_production_lines()

    def test_fails_without_the_tls_proxy_settings(self):
        """The check is a real one: the development defaults fail it, naming what is missing."""
        env = production_environment()
        for name in ("BEHIND_TLS_PROXY", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD"):
            del env[name]

        result = check_deploy(env)

        assert result.returncode == 1
        for warning in ("W004", "W008", "W012", "W016"):
            assert f"security.{warning}" in result.stderr, result.stderr


HOST = "energy.example.com"


def fetch(server, method: str, path: str, *, https: bool, headers=None, body: str | None = None):
    """One request to `server` as the TLS proxy forwards it (`https`) or plain http."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = {"Host": HOST, **({"X-Forwarded-Proto": "https"} if https else {}), **(headers or {})}
    connection.request(method, path, body=body, headers=sent)
    response = connection.getresponse()
    response.text = response.read().decode()
    connection.close()
    return response


def cookies_of(response) -> SimpleCookie:
    cookies = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        cookies.load(header)
    return cookies


@pytest.mark.postgresql
class TestBehindTheTlsProxy:
    def test_redirects_http_sends_hsts_and_secure_cookies_and_lets_probes_in(
        self, served_project, django_user_model
    ):
        collect_static_once()
        django_user_model.objects.create_user(
            username="ops", password="ops-pass-123", is_staff=True, is_superuser=True
        )
        env = production_environment()
        del env["DATABASE_URL"]  # the test database, from served_project
        server = served_project(env={**env, "REDIS_URL": redis_url()})

        probes = [fetch(server, "GET", path, https=False) for path in ("/healthz", "/readyz")]
        plain = fetch(server, "GET", LOGIN, https=False)
        plain_ingest = fetch(server, "POST", "/v1/ingest", https=False, body="{}")
        page = fetch(server, "GET", LOGIN, https=True)
        csrf = cookies_of(page)["csrftoken"]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        login = fetch(
            server,
            "POST",
            f"{LOGIN}?next=/admin/",
            https=True,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={csrf.value}",
                "Origin": f"https://{HOST}",
                "Referer": f"https://{HOST}{LOGIN}",
            },
            body=urlencode(
                {"username": "ops", "password": "ops-pass-123", "csrfmiddlewaretoken": token}
            ),
        )

        assert [(p.status, p.text) for p in probes] == [(200, "ok\n"), (200, "ready\n")]
        assert (plain.status, plain.headers["Location"]) == (301, f"https://{HOST}{LOGIN}")
        assert (plain_ingest.status, plain_ingest.headers["Location"]) == (
            301,
            f"https://{HOST}/v1/ingest",
        )
        assert page.status == 200
        assert page.headers["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains; preload"
        )
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert csrf["secure"] is True
        assert (login.status, login.headers["Location"]) == (302, "/admin/")
        session = cookies_of(login)["sessionid"]
        assert (session["secure"], session["httponly"]) == (True, True)


# --- Content-Security-Policy (headers; the browser tests check the pages work under it) ---------

PAGES = ["/", "/api/docs/", "/api/redoc/", LOGIN]
INLINE = re.compile(r"<(script|style)\b([^>]*)>", re.IGNORECASE)


def policy_of(response) -> dict[str, list[str]]:
    directives = [d.split() for d in response["Content-Security-Policy"].split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


@pytest.mark.django_db
class TestContentSecurityPolicy:
    @pytest.mark.parametrize("url", PAGES)
    def test_every_page_allows_only_its_own_origin(self, client, url):
        policy = policy_of(client.get(url))

        assert policy["default-src"] == ["'self'"]
        assert policy["script-src"][0] == "'self'"
        assert policy["style-src"][0] == "'self'"
        assert policy["object-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["form-action"] == ["'self'"]
        assert not any("unsafe" in value for values in policy.values() for value in values)

    @pytest.mark.parametrize("url", PAGES)
    def test_each_inline_script_and_style_carries_the_nonce_of_its_response(self, client, url):
        response = client.get(url)

        policy = policy_of(response)
        inline = [
            attributes
            for _, attributes in INLINE.findall(response.content.decode())
            if "src=" not in attributes
        ]
        nonces = {re.search(r'nonce="([^"]+)"', a)[1] for a in inline if "nonce=" in a}
        assert all("nonce=" in attributes for attributes in inline), inline
        if nonces:
            (nonce,) = nonces
            assert f"'nonce-{nonce}'" in policy["script-src"]
            assert f"'nonce-{nonce}'" in policy["style-src"]

    def test_a_nonce_is_new_on_every_response(self, client):
        first, second = (policy_of(client.get("/api/docs/"))["script-src"] for _ in range(2))

        assert first != second
