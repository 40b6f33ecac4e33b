import pytest

from notifications.models import WebhookEndpoint

URL = "/v1/notifications/endpoints"
CREATE = {
    "url": "https://ops.example.com/hooks/energy",
    "secret": "a-shared-secret-of-some-length",
    "alarmTypes": ["LOW_EFFICIENCY", "DEVICE_OFFLINE"],
}


class TestEndpointsApi:
    def test_create_list_patch_delete_and_the_secret_is_never_returned(self, staff_client):
        created = staff_client.post(URL, CREATE, format="json")

        assert created.status_code == 201
        body = created.json()
        endpoint_id = body.pop("id")
        assert body.pop("createdAt")
        assert body == {
            "url": "https://ops.example.com/hooks/energy",
            "active": True,
            "alarmTypes": ["DEVICE_OFFLINE", "LOW_EFFICIENCY"],
        }
        assert WebhookEndpoint.objects.get().secret == CREATE["secret"]

        listed = staff_client.get(URL).json()
        assert [e["id"] for e in listed["results"]] == [endpoint_id]
        assert "secret" not in listed["results"][0]

        patched = staff_client.patch(
            f"{URL}/{endpoint_id}",
            {"active": False, "secret": "a-new-secret-of-enough-length"},
            format="json",
        )
        assert patched.status_code == 200
        assert patched.json()["active"] is False
        assert patched.json()["alarmTypes"] == ["DEVICE_OFFLINE", "LOW_EFFICIENCY"]
        assert WebhookEndpoint.objects.get().secret == "a-new-secret-of-enough-length"
        assert staff_client.get(f"{URL}/{endpoint_id}").json()["active"] is False

        assert staff_client.delete(f"{URL}/{endpoint_id}").status_code == 204
        assert not WebhookEndpoint.objects.exists()
        assert staff_client.delete(f"{URL}/{endpoint_id}").status_code == 404

    def test_bad_fields_are_each_named_and_nothing_is_stored(self, staff_client):
        response = staff_client.post(
            URL,
            {"url": "ftp://example.com/x", "secret": "short", "alarmTypes": ["LOW"]},
            format="json",
        )

        assert response.status_code == 400
        assert set(response.json()) == {"url", "secret", "alarmTypes"}
        assert not WebhookEndpoint.objects.exists()

    def test_a_missing_url_or_secret_is_a_400(self, staff_client):
        response = staff_client.post(URL, {}, format="json")

        assert response.status_code == 400
        assert set(response.json()) == {"url", "secret"}

    def test_a_bad_patch_is_a_400_and_changes_nothing(self, staff_client):
        endpoint = WebhookEndpoint.objects.create(url=CREATE["url"], secret=CREATE["secret"])

        response = staff_client.patch(
            f"{URL}/{endpoint.pk}", {"active": "maybe", "url": "nope"}, format="json"
        )

        assert response.status_code == 400
        assert set(response.json()) == {"active", "url"}
        endpoint.refresh_from_db()
        assert (endpoint.url, endpoint.active) == (CREATE["url"], True)

    @pytest.mark.parametrize("method", ["get", "post"])
    def test_only_staff_may_manage_endpoints(self, analyst_client, api_client, db, method):
        assert getattr(analyst_client, method)(URL, CREATE, format="json").status_code == 403
        assert getattr(api_client, method)(URL, CREATE, format="json").status_code == 401
        assert not WebhookEndpoint.objects.exists()

    def test_unknown_ids_and_a_bad_limit(self, staff_client):
        assert staff_client.get(f"{URL}/404").status_code == 404
        assert staff_client.patch(f"{URL}/abc", {}, format="json").status_code == 404
        assert list(staff_client.get(f"{URL}?limit=0").json()) == ["limit"]
        assert list(staff_client.get(f"{URL}?cursor=garbage").json()) == ["cursor"]
