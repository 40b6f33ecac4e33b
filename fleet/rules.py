"""The assignment rule, once: what a new period closes, what it is refused for, what it leaves.

Pure Python over periods already read from the database, so one function serves the service
(`meter_assign`, `mappings_import`, after their locks), the admin's preview before a save, and the
model's `clean()`. The database's constraints stay the final authority.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeVar


class Period(Protocol):
    valid_from: datetime
    valid_to: datetime | None


P = TypeVar("P", bound=Period)


def period_text(*, vehicle_id: str, meter_id: str, start: datetime, end: datetime | None) -> str:
    """How a message names an assignment ("of vehicle V-1 to meter M-1 from … to open")."""
    until = f"{end:%Y-%m-%d %H:%M:%S%z}" if end else "open"
    since = f"{start:%Y-%m-%d %H:%M:%S%z}"
    return f"of vehicle {vehicle_id} to meter {meter_id} from {since} to {until}"


def assignment_clash(
    periods: Iterable[P],
    *,
    valid_from: datetime,
    valid_to: datetime | None = None,
    closes_open: bool = False,
) -> P | None:
    """The earliest of `periods` (of the same vehicle or meter) that [valid_from, valid_to) meets.

    With `closes_open`, an open period that started before `valid_from` is no clash: the new
    period closes it at `valid_from` (what `meter_assign` does to the current assignment).
    """
    clashes = [
        period
        for period in periods
        if (period.valid_to is None or period.valid_to > valid_from)
        and (valid_to is None or period.valid_from < valid_to)
        and not (closes_open and period.valid_to is None and period.valid_from < valid_from)
    ]
    return min(clashes, key=lambda period: period.valid_from, default=None)


class MappingAction(StrEnum):
    ASSIGN = "assign"
    UNCHANGED = "unchanged"
    REFUSED = "refused"


@dataclass(frozen=True)
class MappingOutcome:
    """What one line does: its action, why it is refused, and whom it takes a meter from."""

    line: int
    vehicle_id: str
    meter_id: str
    valid_from: datetime
    action: MappingAction
    reason: str = ""
    # The vehicle's own meter whose period ends at `valid_from` (the vehicle changes meter).
    ends_meter_id: str | None = None
    # The other vehicle that loses this meter at `valid_from`.
    takes_from_vehicle_id: str | None = None


@dataclass(eq=False)
class PlannedPeriod:
    """An assignment in the plan: a row read from the database (`pk`) or one to create."""

    vehicle_id: str
    meter_id: str
    valid_from: datetime
    valid_to: datetime | None = None
    pk: int | None = None
    closed: bool = False  # an existing row whose `valid_to` the plan sets

    def describe(self) -> str:
        return period_text(
            vehicle_id=self.vehicle_id,
            meter_id=self.meter_id,
            start=self.valid_from,
            end=self.valid_to,
        )


@dataclass
class AssignmentPlan:
    """Apply lines one after the other to the periods of the devices they name, in memory.

    Each line sees what the lines before it did, exactly as if they had been applied one by one.
    """

    by_vehicle: dict[str, list[PlannedPeriod]] = field(default_factory=lambda: defaultdict(list))
    by_meter: dict[str, list[PlannedPeriod]] = field(default_factory=lambda: defaultdict(list))
    open_of_vehicle: dict[str, PlannedPeriod] = field(default_factory=dict)
    open_of_meter: dict[str, PlannedPeriod] = field(default_factory=dict)
    created: list[PlannedPeriod] = field(default_factory=list)
    retired_vehicle_ids: set[str] = field(default_factory=set)
    retired_meter_ids: set[str] = field(default_factory=set)

    def add_existing(self, period: PlannedPeriod) -> None:
        self.by_vehicle[period.vehicle_id].append(period)
        self.by_meter[period.meter_id].append(period)
        if period.valid_to is None:
            self.open_of_vehicle[period.vehicle_id] = period
            self.open_of_meter[period.meter_id] = period

    def current(self, vehicle_id: str) -> PlannedPeriod | None:
        return self.open_of_vehicle.get(vehicle_id)

    def apply(
        self, *, vehicle_id: str, meter_id: str, valid_from: datetime, line: int = 0
    ) -> tuple[MappingOutcome, PlannedPeriod | None]:
        """The outcome of one line, and the period that now serves the pair (None if refused)."""
        current = self.open_of_vehicle.get(vehicle_id)
        same = current is not None and current.meter_id == meter_id
        if same and current.valid_from <= valid_from:
            unchanged = MappingAction.UNCHANGED
            return MappingOutcome(line, vehicle_id, meter_id, valid_from, unchanged), current
        if vehicle_id in self.retired_vehicle_ids or meter_id in self.retired_meter_ids:
            kind, device = (
                ("Vehicle", vehicle_id)
                if vehicle_id in self.retired_vehicle_ids
                else ("Meter", meter_id)
            )
            reason = f"{kind} {device} is retired: it can no longer be assigned."
            outcome = MappingOutcome(
                line, vehicle_id, meter_id, valid_from, MappingAction.REFUSED, reason=reason
            )
            return outcome, None
        candidates = self.by_vehicle.get(vehicle_id, []) + self.by_meter.get(meter_id, [])
        clash = assignment_clash(candidates, valid_from=valid_from, closes_open=True)
        if clash is not None:
            reason = (
                f"Vehicle {vehicle_id} cannot be assigned to meter {meter_id} from "
                f"{valid_from.isoformat()}: that overlaps the assignment {clash.describe()}."
            )
            outcome = MappingOutcome(
                line, vehicle_id, meter_id, valid_from, MappingAction.REFUSED, reason=reason
            )
            return outcome, None
        ends_meter_id = takes_from_vehicle_id = None
        if current is not None:
            self._close(current, valid_from)
            ends_meter_id = current.meter_id
        served = self.open_of_meter.get(meter_id)
        if served is not None:
            self._close(served, valid_from)
            takes_from_vehicle_id = served.vehicle_id
        period = PlannedPeriod(vehicle_id, meter_id, valid_from)
        self.created.append(period)
        self.add_existing(period)
        outcome = MappingOutcome(
            line,
            vehicle_id,
            meter_id,
            valid_from,
            MappingAction.ASSIGN,
            ends_meter_id=ends_meter_id,
            takes_from_vehicle_id=takes_from_vehicle_id,
        )
        return outcome, period

    def closed_existing(self) -> list[PlannedPeriod]:
        """Rows read from the database that the plan closes (each once)."""
        seen = {id(p): p for periods in self.by_vehicle.values() for p in periods if p.closed}
        return list(seen.values())

    def _close(self, period: PlannedPeriod, at: datetime) -> None:
        period.valid_to = at
        period.closed = period.pk is not None
        self.open_of_vehicle.pop(period.vehicle_id, None)
        self.open_of_meter.pop(period.meter_id, None)
