from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from fleet.models import MeterAssignment, device_id_validator
from fleet.tests.factories import MeterAssignmentFactory, MeterFactory, VehicleFactory

FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
FEB_3 = datetime(2026, 2, 3, tzinfo=UTC)
FEB_5 = datetime(2026, 2, 5, tzinfo=UTC)
FEB_10 = datetime(2026, 2, 10, tzinfo=UTC)

pytestmark = pytest.mark.django_db


class TestMeterAssignmentConstraints:
    @pytest.mark.postgresql
    def test_the_database_refuses_overlapping_periods_of_one_vehicle(self):
        vehicle = VehicleFactory()
        MeterAssignmentFactory(vehicle=vehicle, valid_from=FEB_1, valid_to=FEB_5)

        other_meter = MeterFactory()

        with (
            pytest.raises(IntegrityError, match="fleet_meterassignment_vehicle_no_overlap"),
            transaction.atomic(),
        ):
            MeterAssignment.objects.create(
                vehicle=vehicle, meter=other_meter, valid_from=FEB_3, valid_to=FEB_10
            )

    @pytest.mark.postgresql
    def test_the_database_refuses_overlapping_periods_of_one_meter(self):
        meter = MeterFactory()
        MeterAssignmentFactory(meter=meter, valid_from=FEB_1, valid_to=FEB_5)

        other_vehicle = VehicleFactory()

        with (
            pytest.raises(IntegrityError, match="fleet_meterassignment_meter_no_overlap"),
            transaction.atomic(),
        ):
            MeterAssignment.objects.create(
                vehicle=other_vehicle, meter=meter, valid_from=FEB_3, valid_to=FEB_10
            )

    def test_the_database_refuses_two_open_periods_of_one_vehicle(self):
        vehicle = VehicleFactory()
        MeterAssignmentFactory(vehicle=vehicle, valid_from=FEB_1)

        other_meter = MeterFactory()

        with pytest.raises(IntegrityError), transaction.atomic():
            MeterAssignment.objects.create(vehicle=vehicle, meter=other_meter, valid_from=FEB_5)

    def test_the_database_refuses_an_end_before_the_start(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            MeterAssignmentFactory(valid_from=FEB_5, valid_to=FEB_1)

    def test_back_to_back_periods_are_allowed(self):
        vehicle = VehicleFactory()
        MeterAssignmentFactory(vehicle=vehicle, valid_from=FEB_1, valid_to=FEB_5)

        MeterAssignmentFactory(vehicle=vehicle, valid_from=FEB_5)

        assert vehicle.assignments.count() == 2

    def test_clean_explains_an_overlap(self):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1, valid_to=FEB_5
        )
        candidate = MeterAssignment(vehicle=vehicle, meter=MeterFactory(), valid_from=FEB_3)

        with pytest.raises(ValidationError) as refused:
            candidate.clean()

        assert refused.value.messages == [
            "This period overlaps the assignment of vehicle V-1 to meter M-1 from "
            "2026-02-01 00:00:00+0000 to 2026-02-05 00:00:00+0000."
        ]


class TestDeviceIdValidator:
    @pytest.mark.parametrize("value", ["V-1", "a" * 64, "M_1.2:3-x"])
    def test_accepts_an_id_of_the_contract(self, value):
        device_id_validator(value)

    @pytest.mark.parametrize("value", ["V-1\n", "V-1 ", " V-1", "", "a" * 65, "V/1", "V-\x001"])
    def test_refuses_anything_else_even_a_trailing_newline(self, value):
        with pytest.raises(ValidationError):
            device_id_validator(value)
