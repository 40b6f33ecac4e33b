from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction

from alarms.models import Alarm, AlarmSubject, AlarmType
from api.bulk import rows_insert
from fleet.models import Meter, Vehicle

AT = datetime(2026, 2, 10, 10, 0, tzinfo=UTC)


class TestRowsInsert:
    def test_new_rows_get_their_keys_and_every_field_as_saved(self, db):
        vehicle = Vehicle.objects.create(vehicle_id="V-1")
        meter = Meter.objects.create(meter_id="M-1")
        figures = {"lastReadingAt": None, "note": 'quotes " and \\ and\ttabs, ünïcode'}
        alarms = [
            Alarm(
                type=AlarmType.DEVICE_OFFLINE,
                subject=subject,
                vehicle=vehicle,
                meter=meter,
                opened_at=AT,
                updated_at=AT,
                figures=figures,
                latest={"n": n},
            )
            for n, subject in enumerate((AlarmSubject.VEHICLE, AlarmSubject.METER))
        ]

        rows_insert(model=Alarm, objects=alarms)

        assert all(alarm.pk is not None and not alarm._state.adding for alarm in alarms)
        stored = {alarm.pk: alarm for alarm in Alarm.objects.all()}
        assert sorted(stored) == sorted(alarm.pk for alarm in alarms)
        for alarm in alarms:
            row = stored[alarm.pk]
            assert (row.subject, row.vehicle_id, row.meter_id) == (
                alarm.subject,
                vehicle.pk,
                meter.pk,
            )
            assert (row.figures, row.latest, row.opened_at) == (figures, alarm.latest, AT)
            assert row.cleared_at is None

    def test_the_database_still_guards_its_constraints(self, db):
        vehicle = Vehicle.objects.create(vehicle_id="V-1")
        twice = [
            Alarm(type=AlarmType.LOW_EFFICIENCY, subject=AlarmSubject.VEHICLE, vehicle=vehicle)
            for _ in range(2)
        ]

        with pytest.raises(IntegrityError), transaction.atomic():
            rows_insert(model=Alarm, objects=twice)
        assert not Alarm.objects.exists()

    def test_nothing_to_insert_is_no_statement(self, db, django_assert_num_queries):
        with django_assert_num_queries(0):
            rows_insert(model=Alarm, objects=[])
