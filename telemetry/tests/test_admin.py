from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework_api_key.models import APIKey

from telemetry.models import DeviceAPIKey, MeterHourly, MeterStatus, VehicleHourly, VehicleStatus
from telemetry.services import api_key_create
from telemetry.tests.factories import T0, every_minute, ingest, meter_payload, vehicle_payload

pytestmark = pytest.mark.django_db

READ_ONLY_MODELS = [
    "meterreading",
    "vehiclereading",
    "meterstatus",
    "vehiclestatus",
    "meterhourly",
    "vehiclehourly",
]


@pytest.fixture
def admin_site_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def readings():
    """Two meters and two vehicles, an hour of readings each (history, status and rollups)."""
    for device in ("1", "10"):
        ingest(
            [meter_payload(f"M-{device}", at=at) for at in every_minute(T0, 60)]
            + [vehicle_payload(f"V-{device}", at=at) for at in every_minute(T0, 60)],
            now=T0 + timedelta(hours=1),
        )


class TestReadOnlyLists:
    @pytest.mark.parametrize("model_name", READ_ONLY_MODELS)
    def test_each_list_loads_with_data(self, admin_site_client, readings, model_name):
        response = admin_site_client.get(reverse(f"admin:telemetry_{model_name}_changelist"))

        assert response.status_code == 200
        assert len(response.context["cl"].result_list) > 0

    @pytest.mark.parametrize("model_name", READ_ONLY_MODELS)
    def test_nothing_can_be_added_changed_or_deleted_even_by_a_superuser(
        self, admin_site_client, staff_user, rf, model_name
    ):
        model_admin = next(
            a for m, a in admin.site._registry.items() if m._meta.model_name == model_name
        )
        request = rf.get("/")
        request.user = staff_user

        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
        add_page = admin_site_client.get(reverse(f"admin:telemetry_{model_name}_add"))
        assert add_page.status_code == 403

    @pytest.mark.parametrize(
        ("model", "key"),
        [(MeterStatus, "pk"), (VehicleStatus, "pk"), (MeterHourly, "pk"), (VehicleHourly, "pk")],
    )
    def test_a_row_can_be_viewed(self, admin_site_client, readings, model, key):
        row = model.objects.first()
        name = model._meta.model_name

        response = admin_site_client.get(reverse(f"admin:telemetry_{name}_change", args=[row.pk]))

        assert response.status_code == 200
        assert response.context["has_change_permission"] is False


class TestHistoryList:
    @pytest.mark.parametrize("model_name", ["meterreading", "vehiclereading"])
    def test_never_counts_the_table_only_up_to_a_bound(
        self, admin_site_client, readings, model_name
    ):
        with CaptureQueriesContext(connection) as queries:
            response = admin_site_client.get(reverse(f"admin:telemetry_{model_name}_changelist"))

        assert response.status_code == 200
        counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
        assert len(counts) == 1
        assert "LIMIT 10001" in counts[0]

    def test_lists_newest_first_without_links(self, admin_site_client, readings):
        response = admin_site_client.get(reverse("admin:telemetry_meterreading_changelist"))

        rows = [(r.device.meter_id, r.recorded_at) for r in response.context["cl"].result_list]
        assert rows[:3] == [
            ("M-10", T0 + timedelta(minutes=59)),
            ("M-1", T0 + timedelta(minutes=59)),
            ("M-10", T0 + timedelta(minutes=58)),
        ]
        assert (
            "/admin/telemetry/meterreading/"
            not in response.content.decode().split('id="result_list"')[1]
        )

    def test_runs_as_many_queries_for_100_rows_as_for_2(
        self, admin_site_client, django_assert_max_num_queries
    ):
        url = reverse("admin:telemetry_vehiclereading_changelist")
        ingest([vehicle_payload("V-1", at=at) for at in every_minute(T0, 2)], now=T0)
        with CaptureQueriesContext(connection) as two:
            admin_site_client.get(url)
        for n in range(50):
            ingest([vehicle_payload(f"V-{n}", at=at) for at in every_minute(T0, 2)], now=T0)

        with django_assert_max_num_queries(len(two)):
            response = admin_site_client.get(url)

        assert len(response.context["cl"].result_list) == 100

    def test_searches_one_device_by_its_exact_id(self, admin_site_client, readings):
        response = admin_site_client.get(
            reverse("admin:telemetry_meterreading_changelist"), {"q": "M-1"}
        )

        devices = {r.device.meter_id for r in response.context["cl"].result_list}
        assert devices == {"M-1"}
        assert len(response.context["cl"].result_list) == 60

    def test_orders_newest_first_by_the_primary_key_columns(self, admin_site_client):
        from telemetry.admin import MeterReadingAdmin

        assert MeterReadingAdmin.ordering == ("-recorded_at", "-device_id")
        assert MeterReadingAdmin.list_display_links is None


class TestDeviceAPIKeyAdmin:
    def test_the_list_shows_name_prefix_scope_and_use(self, admin_site_client):
        key, _ = api_key_create(name="gateway 7", device_id="V-7")

        response = admin_site_client.get(reverse("admin:telemetry_deviceapikey_changelist"))

        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == [key]
        for text in ("gateway 7", key.prefix, "V-7"):
            assert text in response.content.decode()

    def test_a_new_key_is_shown_once_and_works(self, admin_site_client):
        response = admin_site_client.post(
            reverse("admin:telemetry_deviceapikey_add"),
            {"name": "gateway 8", "device_id": "M-8", "expiry_date_0": "", "expiry_date_1": ""},
            follow=True,
        )

        (message,) = [
            m.message for m in response.context["messages"] if "The API key for" in m.message
        ]
        key = message.split("The API key for gateway 8 is: ")[1].split(". ")[0]
        stored = DeviceAPIKey.objects.get_from_key(key)
        assert stored.device_id == "M-8"
        assert (
            key
            not in admin_site_client.get(
                reverse("admin:telemetry_deviceapikey_change", args=[stored.pk])
            ).content.decode()
        )

    def test_the_scope_of_an_issued_key_cannot_be_changed(self, admin_site_client):
        key, _ = api_key_create(name="gateway", device_id="V-1")

        response = admin_site_client.get(
            reverse("admin:telemetry_deviceapikey_change", args=[key.pk])
        )

        assert response.status_code == 200
        assert "device_id" not in response.context["adminform"].form.fields

    def test_the_librarys_unused_key_model_is_not_offered(self):
        assert not admin.site.is_registered(APIKey)
