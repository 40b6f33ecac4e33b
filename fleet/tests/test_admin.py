import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from fleet.models import Meter, MeterAssignment, Vehicle
from fleet.tests.factories import MeterAssignmentFactory, MeterFactory, VehicleFactory

FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
FEB_5 = datetime(2026, 2, 5, tzinfo=UTC)
FEB_10_1015 = datetime(2026, 2, 10, 10, 15, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def history(vehicle: Vehicle) -> list[tuple[str, datetime, datetime | None]]:
    rows = vehicle.assignments.select_related("meter").order_by("valid_from")
    return [(row.meter.meter_id, row.valid_from, row.valid_to) for row in rows]


def no_inline_rows(prefix: str = "assignments") -> dict:
    """The management form of the read-only history inline: no rows are posted back."""
    return {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}


def meter_serving_another_vehicle() -> tuple[Vehicle, Meter, Vehicle]:
    """M-1 serves V-1 since Feb 1; V-2 has no meter: (V-1, M-1, V-2)."""
    donor, meter = VehicleFactory(vehicle_id="V-1"), MeterFactory(meter_id="M-1")
    MeterAssignmentFactory(vehicle=donor, meter=meter, valid_from=FEB_1)
    return donor, meter, VehicleFactory(vehicle_id="V-2")


def vehicle_form(vehicle: Vehicle, *, meter: Meter | None, day: str = "", time: str = "") -> dict:
    return {
        "vehicle_id": vehicle.vehicle_id,
        "meter": str(meter.pk) if meter else "",
        "valid_from_0": day,
        "valid_from_1": time,
        **no_inline_rows(),
    }


class TestVehicleChangelist:
    def test_lists_each_vehicle_with_its_current_meter(self, admin_site_client):
        served = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(vehicle=served, meter=MeterFactory(meter_id="M-1"))
        VehicleFactory(vehicle_id="V-2")

        response = admin_site_client.get(reverse("admin:fleet_vehicle_changelist"))

        assert response.status_code == 200
        rows = [(v.vehicle_id, v.current_meter_id) for v in response.context["cl"].result_list]
        assert rows == [("V-1", "M-1"), ("V-2", None)]

    def test_runs_as_many_queries_for_50_vehicles_as_for_5(
        self, admin_site_client, django_assert_max_num_queries
    ):
        for vehicle in VehicleFactory.create_batch(5):
            MeterAssignmentFactory(vehicle=vehicle)
        url = reverse("admin:fleet_vehicle_changelist")
        with CaptureQueriesContext(connection) as five:
            assert admin_site_client.get(url).status_code == 200
        for vehicle in VehicleFactory.create_batch(45):
            MeterAssignmentFactory(vehicle=vehicle)

        with django_assert_max_num_queries(len(five)):
            response = admin_site_client.get(url)

        assert len(response.context["cl"].result_list) == 50

    def test_counts_the_search_result_once_and_not_the_whole_table_again(self, admin_site_client):
        VehicleFactory.create_batch(3)

        with CaptureQueriesContext(connection) as queries:
            admin_site_client.get(reverse("admin:fleet_vehicle_changelist"), {"q": "V-"})

        counts = [q["sql"] for q in queries if q["sql"].upper().startswith("SELECT COUNT(")]
        assert len(counts) == 1  # the paginator's count of the search result
        assert "LIKE" in counts[0].upper()

    def test_search_finds_vehicles_by_the_beginning_of_their_id(self, admin_site_client):
        for vehicle_id in ("V-100", "V-101", "V-2", "XV-100"):
            VehicleFactory(vehicle_id=vehicle_id)

        response = admin_site_client.get(reverse("admin:fleet_vehicle_changelist"), {"q": " V-10 "})

        assert [v.vehicle_id for v in response.context["cl"].result_list] == ["V-100", "V-101"]

    @pytest.mark.postgresql
    def test_search_is_case_sensitive(self, admin_site_client):
        VehicleFactory(vehicle_id="V-100")

        response = admin_site_client.get(reverse("admin:fleet_vehicle_changelist"), {"q": "v-1"})

        assert list(response.context["cl"].result_list) == []

    @pytest.mark.postgresql
    def test_the_prefix_search_can_use_the_pattern_index(self):
        from fleet.admin import VehicleAdmin

        admin_instance = VehicleAdmin(Vehicle, None)
        queryset, _ = admin_instance.get_search_results(None, Vehicle.objects.all(), "V-1")
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            plan = queryset.explain()

        assert "fleet_vehicle_vehicle_id_" in plan
        assert "_like" in plan


class TestVehicleChangePage:
    def test_shows_the_assignment_history_newest_first(self, admin_site_client):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1, valid_to=FEB_5
        )
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-2"), valid_from=FEB_5
        )

        response = admin_site_client.get(reverse("admin:fleet_vehicle_change", args=[vehicle.pk]))

        assert response.status_code == 200
        (inline,) = response.context["inline_admin_formsets"]
        assert [form.original.meter.meter_id for form in inline] == ["M-2", "M-1"]
        assert not inline.has_add_permission
        assert not inline.has_change_permission
        current_meter = Meter.objects.get(meter_id="M-2")
        assert response.context["adminform"].form["meter"].initial == current_meter.pk

    def test_offers_the_meter_with_an_autocomplete_widget(self, admin_site_client):
        vehicle = VehicleFactory()
        MeterFactory.create_batch(3)

        response = admin_site_client.get(reverse("admin:fleet_vehicle_change", args=[vehicle.pk]))

        select = re.search(r'<select name="meter".*?</select>', response.content.decode(), re.S)[0]
        assert "admin-autocomplete" in select
        assert select.count("<option") == 1  # the blank choice: meters load as one types

    def test_the_add_page_loads(self, admin_site_client):
        response = admin_site_client.get(reverse("admin:fleet_vehicle_add"))

        assert response.status_code == 200


class TestVehicleMeterAssignment:
    def test_reassigning_closes_the_old_assignment_and_opens_the_new_one(self, admin_site_client):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1
        )
        new_meter = MeterFactory(meter_id="M-2")

        response = admin_site_client.post(
            reverse("admin:fleet_vehicle_change", args=[vehicle.pk]),
            vehicle_form(vehicle, meter=new_meter, day="2026-02-10", time="10:15:00"),
        )

        assert response.status_code == 302, response.context["adminform"].form.errors
        assert history(vehicle) == [("M-1", FEB_1, FEB_10_1015), ("M-2", FEB_10_1015, None)]

    def test_taking_a_meter_from_another_vehicle_asks_to_confirm_naming_it(self, admin_site_client):
        donor, meter, vehicle = meter_serving_another_vehicle()

        response = admin_site_client.post(
            reverse("admin:fleet_vehicle_change", args=[vehicle.pk]),
            vehicle_form(vehicle, meter=meter, day="2026-02-10", time="10:15:00"),
        )

        assert response.status_code == 200
        assert response.context["adminform"].form.errors == {
            "confirm_move": [
                "Meter M-1 serves vehicle V-1 now: that vehicle loses it at 2026-02-10 10:15:00 "
                "UTC. Tick “confirm the move” and save again to move it."
            ]
        }
        assert history(donor) == [("M-1", FEB_1, None)]
        assert history(vehicle) == []

    def test_a_confirmed_move_ends_the_other_vehicles_assignment_and_says_so(
        self, admin_site_client
    ):
        donor, meter, vehicle = meter_serving_another_vehicle()

        response = admin_site_client.post(
            reverse("admin:fleet_vehicle_change", args=[vehicle.pk]),
            {
                **vehicle_form(vehicle, meter=meter, day="2026-02-10", time="10:15:00"),
                "confirm_move": "on",
            },
            follow=True,
        )

        assert history(donor) == [("M-1", FEB_1, FEB_10_1015)]
        assert history(vehicle) == [("M-1", FEB_10_1015, None)]
        shown = [str(message) for message in response.context["messages"]]
        assert (
            "Meter M-1 serves vehicle V-2 from 2026-02-10 10:15:00 UTC. Vehicle V-1 lost meter "
            "M-1: its assignment ended at 2026-02-10 10:15:00 UTC." in shown
        )

    def test_a_back_dated_start_cutting_into_a_past_assignment_is_a_form_error(
        self, admin_site_client
    ):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1, valid_to=FEB_5
        )
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-2"), valid_from=FEB_5
        )
        before = history(vehicle)

        response = admin_site_client.post(
            reverse("admin:fleet_vehicle_change", args=[vehicle.pk]),
            vehicle_form(
                vehicle, meter=MeterFactory(meter_id="M-3"), day="2026-02-03", time="0:00"
            ),
        )

        assert response.status_code == 200
        assert response.context["adminform"].form.errors == {
            "valid_from": [
                "Vehicle V-1 cannot be assigned to meter M-3 from 2026-02-03T00:00:00+00:00: that "
                "overlaps the assignment of vehicle V-1 to meter M-1 from 2026-02-01 "
                "00:00:00+0000 to 2026-02-05 00:00:00+0000."
            ]
        }
        assert history(vehicle) == before

    def test_saving_with_the_current_meter_changes_no_assignment(self, admin_site_client):
        vehicle = VehicleFactory(vehicle_id="V-1")
        meter = MeterFactory(meter_id="M-1")
        MeterAssignmentFactory(vehicle=vehicle, meter=meter, valid_from=FEB_1)

        response = admin_site_client.post(
            reverse("admin:fleet_vehicle_change", args=[vehicle.pk]),
            vehicle_form(vehicle, meter=meter, day="2026-02-10", time="10:15:00"),
        )

        assert response.status_code == 302
        assert history(vehicle) == [("M-1", FEB_1, None)]

    def test_a_blank_valid_from_means_now(self, admin_site_client):
        vehicle = VehicleFactory(vehicle_id="V-1")
        meter = MeterFactory(meter_id="M-1")

        with time_machine.travel(FEB_10_1015, tick=False):
            admin_site_client.post(
                reverse("admin:fleet_vehicle_change", args=[vehicle.pk]),
                vehicle_form(vehicle, meter=meter),
            )

        assert history(vehicle) == [("M-1", FEB_10_1015, None)]

    def test_a_new_vehicle_can_be_added_with_its_meter(self, admin_site_client):
        meter = MeterFactory(meter_id="M-1")

        response = admin_site_client.post(
            reverse("admin:fleet_vehicle_add"),
            {
                "vehicle_id": "V-NEW",
                "meter": str(meter.pk),
                "valid_from_0": "2026-02-10",
                "valid_from_1": "10:15:00",
                **no_inline_rows(),
            },
        )

        assert response.status_code == 302
        assert history(Vehicle.objects.get(vehicle_id="V-NEW")) == [("M-1", FEB_10_1015, None)]

    def test_a_new_vehicle_whose_first_assignment_fails_at_save_is_not_created(
        self, admin_site_client, monkeypatch
    ):
        meter = MeterFactory(meter_id="M-1")
        MeterAssignmentFactory(
            vehicle=VehicleFactory(vehicle_id="V-1"),
            meter=meter,
            valid_from=FEB_1,
            valid_to=FEB_10_1015,
        )
        # Someone else's assignment lands between the form's preview and the save: the preview
        # saw nothing, the service (under its locks) refuses.
        from fleet import forms
        from fleet.rules import AssignmentPlan

        monkeypatch.setattr(
            forms,
            "assignment_preview",
            lambda *, vehicle, meter, valid_from: AssignmentPlan().apply(
                vehicle_id=vehicle.vehicle_id, meter_id=meter.meter_id, valid_from=valid_from
            )[0],
        )

        response = admin_site_client.post(
            reverse("admin:fleet_vehicle_add"),
            {
                "vehicle_id": "V-NEW",
                "meter": str(meter.pk),
                "valid_from_0": "2026-02-05",
                "valid_from_1": "00:00:00",
                **no_inline_rows(),
            },
            follow=True,
        )

        assert not Vehicle.objects.filter(vehicle_id="V-NEW").exists()
        assert MeterAssignment.objects.count() == 1
        assert [str(message) for message in response.context["messages"]] == [
            "Vehicle V-NEW cannot be assigned to meter M-1 from 2026-02-05T00:00:00+00:00: that "
            "overlaps the assignment of vehicle V-1 to meter M-1 from 2026-02-01 00:00:00+0000 "
            "to 2026-02-10 10:15:00+0000. Nothing was saved."
        ]


class TestMeterAdmin:
    def test_lists_each_meter_with_the_vehicle_it_serves(self, admin_site_client):
        MeterAssignmentFactory(
            vehicle=VehicleFactory(vehicle_id="V-1"), meter=MeterFactory(meter_id="M-1")
        )
        MeterFactory(meter_id="M-2")

        response = admin_site_client.get(reverse("admin:fleet_meter_changelist"), {"q": "M-"})

        rows = [(m.meter_id, m.current_vehicle_id) for m in response.context["cl"].result_list]
        assert rows == [("M-1", "V-1"), ("M-2", None)]

    def test_the_change_page_shows_the_meters_history(self, admin_site_client):
        meter = MeterFactory(meter_id="M-1")
        MeterAssignmentFactory(
            vehicle=VehicleFactory(vehicle_id="V-1"), meter=meter, valid_from=FEB_1, valid_to=FEB_5
        )
        MeterAssignmentFactory(
            vehicle=VehicleFactory(vehicle_id="V-2"), meter=meter, valid_from=FEB_5
        )

        response = admin_site_client.get(reverse("admin:fleet_meter_change", args=[meter.pk]))

        assert response.status_code == 200
        (inline,) = response.context["inline_admin_formsets"]
        assert [form.original.vehicle.vehicle_id for form in inline] == ["V-2", "V-1"]

    def test_moving_a_meter_to_another_vehicle_goes_through_the_rules(self, admin_site_client):
        first, meter, second = meter_serving_another_vehicle()

        response = admin_site_client.post(
            reverse("admin:fleet_meter_change", args=[meter.pk]),
            {
                "meter_id": "M-1",
                "vehicle": str(second.pk),
                "confirm_move": "on",
                "valid_from_0": "2026-02-10",
                "valid_from_1": "10:15:00",
                **no_inline_rows(),
            },
        )

        assert response.status_code == 302
        assert history(first) == [("M-1", FEB_1, FEB_10_1015)]
        assert history(second) == [("M-1", FEB_10_1015, None)]

    def test_the_autocomplete_finds_meters_by_the_beginning_of_their_id(self, admin_site_client):
        for meter_id in ("M-10", "M-11", "M-2", "XM-10"):
            MeterFactory(meter_id=meter_id)

        response = admin_site_client.get(
            reverse("admin:autocomplete"),
            {
                "app_label": "fleet",
                "model_name": "meterassignment",
                "field_name": "meter",
                "term": "M-1",
            },
        )

        assert response.status_code == 200
        assert [item["text"] for item in response.json()["results"]] == ["M-10", "M-11"]


class TestMeterAssignmentAdmin:
    def test_the_changelist_lists_assignments_newest_first(self, admin_site_client):
        old = MeterAssignmentFactory(valid_from=FEB_1, valid_to=FEB_5)
        new = MeterAssignmentFactory(valid_from=FEB_5)

        response = admin_site_client.get(reverse("admin:fleet_meterassignment_changelist"))

        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == [new, old]

    def test_the_open_filter_and_the_search_narrow_the_list(self, admin_site_client):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(vehicle=vehicle, valid_from=FEB_1, valid_to=FEB_5)
        current = MeterAssignmentFactory(vehicle=vehicle, valid_from=FEB_5)
        MeterAssignmentFactory(vehicle=VehicleFactory(vehicle_id="V-2"))

        response = admin_site_client.get(
            reverse("admin:fleet_meterassignment_changelist"), {"q": "V-1", "state": "open"}
        )

        assert list(response.context["cl"].result_list) == [current]

    def test_adding_goes_through_the_service_and_closes_the_current_assignment(
        self, admin_site_client
    ):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1
        )
        meter = MeterFactory(meter_id="M-2")

        response = admin_site_client.post(
            reverse("admin:fleet_meterassignment_add"),
            {
                "vehicle": str(vehicle.pk),
                "meter": str(meter.pk),
                "valid_from_0": "2026-02-10",
                "valid_from_1": "10:15:00",
            },
        )

        created = MeterAssignment.objects.get(meter=meter)
        assert response.status_code == 302
        assert response.url == reverse("admin:fleet_meterassignment_changelist")
        assert history(vehicle) == [("M-1", FEB_1, FEB_10_1015), ("M-2", FEB_10_1015, None)]
        assert created.valid_to is None

    def test_adding_an_overlapping_assignment_is_a_form_error(self, admin_site_client):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1, valid_to=FEB_5
        )

        response = admin_site_client.post(
            reverse("admin:fleet_meterassignment_add"),
            {
                "vehicle": str(vehicle.pk),
                "meter": str(MeterFactory(meter_id="M-2").pk),
                "valid_from_0": "2026-02-03",
                "valid_from_1": "00:00:00",
            },
        )

        assert response.status_code == 200
        assert response.context["adminform"].form.errors == {
            "valid_from": [
                "Vehicle V-1 cannot be assigned to meter M-2 from 2026-02-03T00:00:00+00:00: that "
                "overlaps the assignment of vehicle V-1 to meter M-1 from 2026-02-01 "
                "00:00:00+0000 to 2026-02-05 00:00:00+0000."
            ]
        }
        assert MeterAssignment.objects.count() == 1

    def test_the_change_page_edits_only_the_end(self, admin_site_client):
        assignment = MeterAssignmentFactory(valid_from=FEB_1)

        response = admin_site_client.get(
            reverse("admin:fleet_meterassignment_change", args=[assignment.pk])
        )

        assert response.status_code == 200
        assert list(response.context["adminform"].form.fields) == ["valid_to"]

    def test_an_end_before_the_start_is_a_form_error(self, admin_site_client):
        assignment = MeterAssignmentFactory(valid_from=FEB_5)

        response = admin_site_client.post(
            reverse("admin:fleet_meterassignment_change", args=[assignment.pk]),
            {"valid_to_0": "2026-02-01", "valid_to_1": "00:00:00"},
        )

        assert response.status_code == 200
        assert response.context["adminform"].form.errors == {
            "valid_to": ["The end must be after the start."]
        }
        assignment.refresh_from_db()
        assert assignment.valid_to is None

    def test_reopening_a_period_that_a_later_one_follows_is_a_form_error(self, admin_site_client):
        vehicle = VehicleFactory(vehicle_id="V-1")
        past = MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1, valid_to=FEB_5
        )
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-2"), valid_from=FEB_5
        )

        response = admin_site_client.post(
            reverse("admin:fleet_meterassignment_change", args=[past.pk]),
            {"valid_to_0": "", "valid_to_1": ""},
        )

        assert response.status_code == 200
        assert response.context["adminform"].form.non_field_errors() == [
            "This period overlaps the assignment of vehicle V-1 to meter M-2 from "
            "2026-02-05 00:00:00+0000 to open."
        ]

    def test_ending_an_assignment_saves_the_end(self, admin_site_client):
        assignment = MeterAssignmentFactory(valid_from=FEB_1)

        response = admin_site_client.post(
            reverse("admin:fleet_meterassignment_change", args=[assignment.pk]),
            {"valid_to_0": "2026-02-10", "valid_to_1": "10:15:00"},
        )

        assert response.status_code == 302
        assignment.refresh_from_db()
        assert assignment.valid_to == FEB_10_1015


def upload(client, text: str, **extra):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        reverse("admin:fleet_meterassignment_upload"),
        {"file": SimpleUploadedFile("map.csv", text.encode(), "text/csv"), **extra},
    )


class TestMappingUpload:
    CSV = (
        "vehicleId,meterId,validFrom\n"
        "V-2,M-1,2026-02-10T10:15:00Z\n"  # 2: takes M-1 from V-1
        "V-2,M-1,2026-02-10T10:15:00Z\n"  # 3: unchanged by then
        "V-3,M-3,2026-02-03T00:00:00Z\n"  # 4: cuts into V-3's closed period
        "V 4,M-4,\n"  # 5: not a device id
    )

    @pytest.fixture
    def fleet(self):
        MeterAssignmentFactory(
            vehicle=VehicleFactory(vehicle_id="V-1"),
            meter=MeterFactory(meter_id="M-1"),
            valid_from=FEB_1,
        )
        MeterAssignmentFactory(
            vehicle=VehicleFactory(vehicle_id="V-3"),
            meter=MeterFactory(meter_id="M-9"),
            valid_from=FEB_1,
            valid_to=FEB_5,
        )

    def test_the_assignment_changelist_links_to_the_upload(self, admin_site_client):
        response = admin_site_client.get(reverse("admin:fleet_meterassignment_changelist"))

        assert reverse("admin:fleet_meterassignment_upload") in response.content.decode()
        assert "Upload mappings CSV" in response.content.decode()

    def test_the_preview_says_what_each_line_will_do_and_writes_nothing(
        self, admin_site_client, fleet
    ):
        before = MeterAssignment.objects.count()

        response = upload(admin_site_client, self.CSV)

        assert response.status_code == 200
        lines = [(row["line"], row["action"], row["detail"]) for row in response.context["lines"]]
        assert lines == [
            (2, "assign", "takes meter M-1 from vehicle V-1, whose assignment ends then"),
            (3, "unchanged", ""),
            (
                4,
                "refused",
                "Vehicle V-3 cannot be assigned to meter M-3 from 2026-02-03T00:00:00+00:00: "
                "that overlaps the assignment of vehicle V-3 to meter M-9 from 2026-02-01 "
                "00:00:00+0000 to 2026-02-05 00:00:00+0000.",
            ),
            (
                5,
                "refused",
                "vehicleId 'V 4' is not a device id (1–64 characters of A–Z a–z 0–9 _ - . :).",
            ),
        ]
        assert response.context["counts"] == {
            "assign": 1,
            "unchanged": 1,
            "refused": 2,
            "taken": 1,
        }
        assert 'name="apply"' in response.content.decode()
        assert MeterAssignment.objects.count() == before

    def test_apply_does_it_and_says_which_vehicle_lost_its_meter(self, admin_site_client, fleet):
        response = admin_site_client.post(
            reverse("admin:fleet_meterassignment_upload"),
            {"csv_text": self.CSV, "apply": "Apply"},
            follow=True,
        )

        assert history(Vehicle.objects.get(vehicle_id="V-1")) == [("M-1", FEB_1, FEB_10_1015)]
        assert history(Vehicle.objects.get(vehicle_id="V-2")) == [("M-1", FEB_10_1015, None)]
        assert [str(message) for message in response.context["messages"]] == [
            "Mappings applied: 1 assigned, 1 unchanged, 2 refused. Taken from other vehicles: "
            "vehicle V-1 lost meter M-1 to vehicle V-2 at 2026-02-10 10:15:00 UTC (line 2); "
            "their assignments ended then."
        ]

    def test_a_file_without_the_header_is_a_form_error(self, admin_site_client):
        response = upload(admin_site_client, "V-1,M-1,\n")

        assert response.context["form"].errors == {
            "file": [
                "The first line must be the header vehicleId,meterId,validFrom, found V-1,M-1,."
            ]
        }


class TestRetirement:
    def test_the_retire_action_retires_the_selected_vehicles(self, admin_site_client):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(vehicle=vehicle, meter=MeterFactory(meter_id="M-1"))
        VehicleFactory(vehicle_id="V-2")

        response = admin_site_client.post(
            reverse("admin:fleet_vehicle_changelist"),
            {"action": "retire_selected", "_selected_action": [str(vehicle.pk)]},
            follow=True,
        )

        vehicle.refresh_from_db()
        assert vehicle.retired_at is not None
        assert history(vehicle)[0][2] == vehicle.retired_at
        assert not Vehicle.objects.get(vehicle_id="V-2").retired
        assert "Retired 1 vehicles" in str(next(iter(response.context["messages"])))

    def test_deleting_a_device_with_history_points_to_retire(self, admin_site_client):
        meter = MeterFactory(meter_id="M-1")
        MeterAssignmentFactory(meter=meter)

        response = admin_site_client.get(
            reverse("admin:fleet_meter_delete", args=[meter.pk]), follow=True
        )

        assert Meter.objects.filter(pk=meter.pk).exists()
        assert [str(message) for message in response.context["messages"]] == [
            "Meter M-1 has meter assignments, which are kept: it cannot be deleted. Retire it "
            "instead (action “Retire selected” on the list): it keeps its history and leaves the "
            "fleet lists and alarms."
        ]

    def test_a_device_without_history_can_still_be_deleted(self, admin_site_client):
        meter = MeterFactory(meter_id="M-1")

        response = admin_site_client.post(
            reverse("admin:fleet_meter_delete", args=[meter.pk]), {"post": "yes"}
        )

        assert response.status_code == 302
        assert not Meter.objects.filter(pk=meter.pk).exists()

    def test_the_bulk_delete_action_is_replaced_by_retire(self, admin_site_client):
        response = admin_site_client.get(reverse("admin:fleet_vehicle_changelist"))

        actions = [name for name, _ in response.context["action_form"].fields["action"].choices]
        assert actions == ["", "retire_selected"]
