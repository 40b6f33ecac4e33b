from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from alarms.models import Alarm, AlarmSubject, AlarmType
from api.times import hour_floor
from fleet.models import Meter, Vehicle
from fleet.services import meter_assign
from telemetry.tests.factories import every_minute, ingest, meter_payload, vehicle_payload


@dataclass(frozen=True)
class DemoFleet:
    start: datetime  # three whole hours before the current one
    reassigned_at: datetime  # V-BAD moves from M-2 to M-3


@pytest.fixture
def demo_fleet(db) -> DemoFleet:
    """The last three whole hours, a reading a minute: V-GOOD on M-1 at 90 % (OK); V-BAD at
    60 % (FAULT_DETECTED) on M-2, then on M-3 from 1 h 30 in; an active alarm on V-BAD."""
    now = timezone.now()
    start = hour_floor(now) - timedelta(hours=3)
    reassigned_at = start + timedelta(minutes=90)
    good, bad = (
        Vehicle.objects.create(vehicle_id="V-GOOD"),
        Vehicle.objects.create(vehicle_id="V-BAD"),
    )
    m1, m2, m3 = (Meter.objects.create(meter_id=code) for code in ("M-1", "M-2", "M-3"))
    meter_assign(vehicle=good, meter=m1, valid_from=start - timedelta(days=1))
    meter_assign(vehicle=bad, meter=m2, valid_from=start - timedelta(days=1))
    meter_assign(vehicle=bad, meter=m3, valid_from=reassigned_at)
    payloads = []
    for i, moment in enumerate(every_minute(start, 180)):
        bad_meter = "M-2" if moment < reassigned_at else "M-3"
        payloads += [
            meter_payload("M-1", at=moment, kwh=0.1),
            meter_payload(bad_meter, at=moment, kwh=0.1),
            vehicle_payload("V-GOOD", at=moment, kwh=0.09, soc=20 + i / 3, temp=30 + i % 5),
            vehicle_payload("V-BAD", at=moment, kwh=0.06, soc=40 + i / 6, temp=35),
        ]
    ingest(payloads, now=now)
    Alarm.objects.create(
        type=AlarmType.LOW_EFFICIENCY, subject=AlarmSubject.VEHICLE, vehicle=bad, opened_at=now
    )
    return DemoFleet(start=start, reassigned_at=reassigned_at)
