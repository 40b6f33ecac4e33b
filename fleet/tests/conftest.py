import pytest
from django.test import Client


@pytest.fixture
def admin_site_client(staff_user) -> Client:
    """A browser session of a logged-in superuser (the admin is HTML, not the API)."""
    client = Client()
    client.force_login(staff_user)
    return client
