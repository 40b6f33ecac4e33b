from datetime import UTC, datetime

import factory

from fleet.models import Meter, MeterAssignment, Vehicle


class VehicleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vehicle
        django_get_or_create = ("vehicle_id",)

    vehicle_id = factory.Sequence(lambda n: f"V-{n:05d}")


class MeterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Meter
        django_get_or_create = ("meter_id",)

    meter_id = factory.Sequence(lambda n: f"M-{n:05d}")


class MeterAssignmentFactory(factory.django.DjangoModelFactory):
    """An assignment row written directly (bypassing `meter_assign`'s rules): arrange data only."""

    class Meta:
        model = MeterAssignment

    vehicle = factory.SubFactory(VehicleFactory)
    meter = factory.SubFactory(MeterFactory)
    valid_from = datetime(2026, 2, 1, tzinfo=UTC)
    valid_to = None
