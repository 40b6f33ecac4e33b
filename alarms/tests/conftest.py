from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from fleet.tests.factories import MeterAssignmentFactory, MeterFactory, VehicleFactory
from telemetry.tests.factories import every_minute, ingest, meter_payload, vehicle_payload

# Half past noon: not hour-aligned, so the window's current hour is partial.
NOW = datetime(2026, 2, 10, 12, 30, tzinfo=UTC)
MAPPED_SINCE = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def clock():
    """Freeze time at NOW; `clock.move_to(...)` / `clock.shift(...)` move it."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def mapped_pair(vehicle_id: str, meter_id: str):
    """A vehicle served by a meter since MAPPED_SINCE (open assignment)."""
    vehicle = VehicleFactory(vehicle_id=vehicle_id)
    meter = MeterFactory(meter_id=meter_id)
    MeterAssignmentFactory(vehicle=vehicle, meter=meter, valid_from=MAPPED_SINCE)
    return vehicle, meter


def charge(
    vehicle_id: str,
    meter_id: str,
    *,
    start: datetime,
    minutes: int = 20,
    ac_kwh: float = 1.0,
    efficiency_pct: float = 90.0,
) -> None:
    """One reading a minute from both sides: AC `ac_kwh` each, DC at `efficiency_pct` of it."""
    moments = every_minute(start, minutes)
    dc_kwh = ac_kwh * efficiency_pct / 100
    ingest(
        [meter_payload(meter_id, at=t, kwh=ac_kwh) for t in moments]
        + [vehicle_payload(vehicle_id, at=t, kwh=dc_kwh) for t in moments],
        now=start + timedelta(minutes=minutes),
    )


def heartbeat(vehicle_id: str, meter_id: str, *, at: datetime) -> None:
    """One zero-energy reading from each side (the devices are alive, nothing is charged)."""
    ingest(
        [meter_payload(meter_id, at=at, kwh=0.0), vehicle_payload(vehicle_id, at=at, kwh=0.0)],
        now=at,
    )
