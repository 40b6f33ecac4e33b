import itertools
import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from fleet.models import Meter, MeterAssignment, Vehicle
from fleet.rules import MappingAction, MappingOutcome
from fleet.services import (
    AssignmentConflict,
    MappingRow,
    device_retire,
    mappings_import,
    meter_assign,
)
from fleet.tests.factories import MeterAssignmentFactory, MeterFactory, VehicleFactory

FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
FEB_3 = datetime(2026, 2, 3, tzinfo=UTC)
FEB_5 = datetime(2026, 2, 5, tzinfo=UTC)
FEB_10 = datetime(2026, 2, 10, tzinfo=UTC)


def periods(**device) -> list[tuple[str, str, datetime, datetime | None]]:
    rows = (
        MeterAssignment.objects.filter(**device)
        .select_related("vehicle", "meter")
        .order_by("valid_from", "pk")
    )
    return [(a.vehicle.vehicle_id, a.meter.meter_id, a.valid_from, a.valid_to) for a in rows]


def assert_no_overlaps(rows: list[tuple[str, str, datetime, datetime | None]]) -> None:
    """Consecutive periods (sorted by start) each end no later than the next one starts."""
    for (_, _, _, end), (_, _, next_start, _) in itertools.pairwise(rows):
        assert end is not None and end <= next_start, rows


def assert_one_open_period_last(rows: list[tuple[str, str, datetime, datetime | None]]) -> None:
    """Exactly one period is open, the latest, and none overlaps the next."""
    assert [end for *_, end in rows].count(None) == 1
    assert rows[-1][3] is None
    assert_no_overlaps(rows)


@pytest.mark.django_db
class TestMeterAssign:
    def test_a_first_assignment_is_open(self):
        vehicle, meter = VehicleFactory(vehicle_id="V-1"), MeterFactory(meter_id="M-1")

        assignment = meter_assign(vehicle=vehicle, meter=meter, valid_from=FEB_1)

        assert (assignment.valid_from, assignment.valid_to) == (FEB_1, None)
        assert periods() == [("V-1", "M-1", FEB_1, None)]

    def test_reassignment_closes_the_old_window_at_the_new_start(self):
        vehicle = VehicleFactory(vehicle_id="V-1")
        meter_assign(vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1)

        meter_assign(vehicle=vehicle, meter=MeterFactory(meter_id="M-2"), valid_from=FEB_10)

        assert periods() == [("V-1", "M-1", FEB_1, FEB_10), ("V-1", "M-2", FEB_10, None)]

    def test_a_meter_moved_to_another_vehicle_closes_that_vehicles_assignment(self):
        meter = MeterFactory(meter_id="M-1")
        meter_assign(vehicle=VehicleFactory(vehicle_id="V-1"), meter=meter, valid_from=FEB_1)

        meter_assign(vehicle=VehicleFactory(vehicle_id="V-2"), meter=meter, valid_from=FEB_10)

        assert periods() == [("V-1", "M-1", FEB_1, FEB_10), ("V-2", "M-1", FEB_10, None)]

    def test_a_swap_closes_both_open_assignments(self):
        v1, v2 = VehicleFactory(vehicle_id="V-1"), VehicleFactory(vehicle_id="V-2")
        m1, m2 = MeterFactory(meter_id="M-1"), MeterFactory(meter_id="M-2")
        meter_assign(vehicle=v1, meter=m1, valid_from=FEB_1)
        meter_assign(vehicle=v2, meter=m2, valid_from=FEB_1)

        meter_assign(vehicle=v1, meter=m2, valid_from=FEB_10)

        assert periods() == [
            ("V-1", "M-1", FEB_1, FEB_10),
            ("V-2", "M-2", FEB_1, FEB_10),
            ("V-1", "M-2", FEB_10, None),
        ]

    def test_the_current_pair_again_returns_the_current_row(self):
        vehicle, meter = VehicleFactory(vehicle_id="V-1"), MeterFactory(meter_id="M-1")
        first = meter_assign(vehicle=vehicle, meter=meter, valid_from=FEB_1)

        again = meter_assign(vehicle=vehicle, meter=meter, valid_from=FEB_10)

        assert again.pk == first.pk
        assert periods() == [("V-1", "M-1", FEB_1, None)]

    def test_a_back_dated_start_cutting_into_a_closed_period_is_refused(self):
        vehicle = VehicleFactory(vehicle_id="V-1")
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1, valid_to=FEB_5
        )
        MeterAssignmentFactory(
            vehicle=vehicle, meter=MeterFactory(meter_id="M-2"), valid_from=FEB_5
        )
        before = periods()

        with pytest.raises(AssignmentConflict) as refused, transaction.atomic():
            meter_assign(vehicle=vehicle, meter=MeterFactory(meter_id="M-3"), valid_from=FEB_3)

        assert refused.value.messages == [
            "Vehicle V-1 cannot be assigned to meter M-3 from 2026-02-03T00:00:00+00:00: that "
            "overlaps the assignment of vehicle V-1 to meter M-1 from 2026-02-01 00:00:00+0000 "
            "to 2026-02-05 00:00:00+0000."
        ]
        assert periods() == before

    def test_a_start_before_the_current_one_is_refused_and_leaves_it_open(self):
        vehicle = VehicleFactory(vehicle_id="V-1")
        meter_assign(vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_5)

        with pytest.raises(AssignmentConflict), transaction.atomic():
            meter_assign(vehicle=vehicle, meter=MeterFactory(meter_id="M-2"), valid_from=FEB_1)

        assert periods() == [("V-1", "M-1", FEB_5, None)]

    def test_a_naive_start_is_refused(self):
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError), transaction.atomic():
            meter_assign(
                vehicle=VehicleFactory(),
                meter=MeterFactory(),
                valid_from=datetime(2026, 2, 1),  # naive on purpose
            )

        assert not MeterAssignment.objects.exists()


def run_at_barrier(jobs: list) -> list[BaseException | None]:
    """Run each job in its own thread (own connection), all released at once; their errors."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[BaseException | None] = [None] * len(jobs)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            jobs[index]()
        except BaseException as error:  # reported to the test
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


# The row locks (SELECT ... FOR UPDATE) that serialize writers are PostgreSQL's; the SQLite test
# database is a shared in-memory one whose table locks fail other threads at once.
@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
class TestConcurrentAssignments:
    THREADS = 8

    def test_reassigning_one_vehicle_from_many_threads_leaves_one_open_period(self):
        vehicle = VehicleFactory(vehicle_id="V-1")
        meters = [MeterFactory(meter_id=f"M-{n}") for n in range(self.THREADS)]

        outcomes = run_at_barrier(
            [lambda m=m: meter_assign(vehicle=vehicle, meter=m) for m in meters]
        )

        assert outcomes == [None] * self.THREADS
        assert len(periods(vehicle=vehicle)) == self.THREADS
        assert_one_open_period_last(periods(vehicle=vehicle))

    def test_moving_one_meter_to_many_vehicles_at_once_leaves_one_open_period(self):
        meter = MeterFactory(meter_id="M-1")
        vehicles = [VehicleFactory(vehicle_id=f"V-{n}") for n in range(self.THREADS)]

        outcomes = run_at_barrier(
            [lambda v=v: meter_assign(vehicle=v, meter=meter) for v in vehicles]
        )

        assert outcomes == [None] * self.THREADS
        assert_one_open_period_last(periods(meter=meter))
        assert Vehicle.objects.with_meter(True).count() == 1
        assert Meter.objects.with_vehicle(True).count() == 1


@pytest.mark.django_db
class TestMappingsImport:
    def test_the_preview_says_what_each_line_will_do_and_writes_nothing(self):
        donor, meter = VehicleFactory(vehicle_id="V-1"), MeterFactory(meter_id="M-1")
        MeterAssignmentFactory(vehicle=donor, meter=meter, valid_from=FEB_1)
        MeterAssignmentFactory(
            vehicle=VehicleFactory(vehicle_id="V-3"),
            meter=MeterFactory(meter_id="M-3"),
            valid_from=FEB_1,
            valid_to=FEB_5,
        )
        rows = [
            MappingRow("V-2", "M-1", FEB_10, line=2),  # takes M-1 from V-1
            MappingRow("V-2", "M-1", FEB_10, line=3),  # now in place
            MappingRow("V-3", "M-2", FEB_3, line=4),  # cuts into V-3's closed period
            MappingRow("V-1", "M-4", FEB_10, line=5),  # V-1 lost M-1 on line 2: free again
        ]

        result = mappings_import(rows=rows, atomic=False, apply=False)

        assert result.outcomes == (
            MappingOutcome(
                2, "V-2", "M-1", FEB_10, MappingAction.ASSIGN, takes_from_vehicle_id="V-1"
            ),
            MappingOutcome(3, "V-2", "M-1", FEB_10, MappingAction.UNCHANGED),
            MappingOutcome(
                4,
                "V-3",
                "M-2",
                FEB_3,
                MappingAction.REFUSED,
                reason="Vehicle V-3 cannot be assigned to meter M-2 from 2026-02-03T00:00:00+00:00:"
                " that overlaps the assignment of vehicle V-3 to meter M-3 from 2026-02-01 "
                "00:00:00+0000 to 2026-02-05 00:00:00+0000.",
            ),
            MappingOutcome(5, "V-1", "M-4", FEB_10, MappingAction.ASSIGN),
        )
        assert (result.assigned, result.unchanged, result.applied) == (2, 1, False)
        assert result.errors == ((4, result.outcomes[2].reason),)
        assert periods() == [("V-1", "M-1", FEB_1, None), ("V-3", "M-3", FEB_1, FEB_5)]
        assert not Vehicle.objects.filter(vehicle_id="V-2").exists()

    def test_applying_does_what_the_preview_said(self):
        donor, meter = VehicleFactory(vehicle_id="V-1"), MeterFactory(meter_id="M-1")
        MeterAssignmentFactory(vehicle=donor, meter=meter, valid_from=FEB_1)
        rows = [
            MappingRow("V-2", "M-1", FEB_10, line=2),
            MappingRow("V-1", "M-4", FEB_10, line=3),
            MappingRow("V-2", "M-5", datetime(2026, 2, 12, tzinfo=UTC), line=4),
        ]
        preview = mappings_import(rows=rows, atomic=False, apply=False)

        result = mappings_import(rows=rows, atomic=False)

        assert result.outcomes == preview.outcomes
        assert result.applied
        assert periods() == [
            ("V-1", "M-1", FEB_1, FEB_10),
            ("V-2", "M-1", FEB_10, datetime(2026, 2, 12, tzinfo=UTC)),
            ("V-1", "M-4", FEB_10, None),
            ("V-2", "M-5", datetime(2026, 2, 12, tzinfo=UTC), None),
        ]
        assert set(Meter.objects.values_list("meter_id", flat=True)) == {"M-1", "M-4", "M-5"}

    def test_a_refused_line_registers_no_device(self):
        MeterAssignmentFactory(
            vehicle=VehicleFactory(vehicle_id="V-1"),
            meter=MeterFactory(meter_id="M-1"),
            valid_from=FEB_1,
            valid_to=FEB_10,
        )

        result = mappings_import(rows=[MappingRow("V-9", "M-1", FEB_5, line=2)], atomic=False)

        assert result.errors[0][0] == 2
        assert not Vehicle.objects.filter(vehicle_id="V-9").exists()

    def test_a_retired_device_is_refused_with_the_reason(self):
        vehicle = VehicleFactory(vehicle_id="V-1")
        device_retire(device=vehicle, at=FEB_5)

        result = mappings_import(rows=[MappingRow("V-1", "M-1", FEB_10, line=2)], atomic=False)

        assert result.errors == ((2, "Vehicle V-1 is retired: it can no longer be assigned."),)
        assert periods() == []


@pytest.mark.django_db
class TestDeviceRetire:
    def test_retiring_ends_the_open_assignment_and_keeps_the_history(self):
        vehicle = VehicleFactory(vehicle_id="V-1")
        meter_assign(vehicle=vehicle, meter=MeterFactory(meter_id="M-1"), valid_from=FEB_1)

        retired = device_retire(device=vehicle, at=FEB_10)

        assert retired.retired_at == FEB_10
        assert periods() == [("V-1", "M-1", FEB_1, FEB_10)]
        assert list(Vehicle.objects.active()) == []
        assert list(Vehicle.objects.retired()) == [vehicle]

    def test_retiring_a_meter_frees_its_vehicle(self):
        vehicle, meter = VehicleFactory(vehicle_id="V-1"), MeterFactory(meter_id="M-1")
        meter_assign(vehicle=vehicle, meter=meter, valid_from=FEB_1)

        device_retire(device=meter, at=FEB_5)

        assert periods() == [("V-1", "M-1", FEB_1, FEB_5)]
        assert Vehicle.objects.with_meter(False).get() == vehicle

    def test_retiring_twice_keeps_the_first_moment(self):
        vehicle = VehicleFactory(vehicle_id="V-1")
        device_retire(device=vehicle, at=FEB_5)

        assert device_retire(device=vehicle, at=FEB_10).retired_at == FEB_5

    def test_a_retired_device_cannot_be_assigned(self):
        meter = MeterFactory(meter_id="M-1")
        device_retire(device=meter, at=FEB_1)

        with pytest.raises(AssignmentConflict) as refused, transaction.atomic():
            meter_assign(vehicle=VehicleFactory(), meter=meter, valid_from=FEB_5)

        assert refused.value.messages == ["Meter M-1 is retired: it can no longer be assigned."]
