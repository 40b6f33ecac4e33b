from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.services import mapping_create
from telemetry.tests.factories import ingest, meter_payload, vehicle_payload


@pytest.fixture
def fleet(db):
    """V-1 on M-1 with ten minutes of readings: bad input meets real rows, not an empty database."""
    now = timezone.now().replace(second=0, microsecond=0)
    mapping_create(vehicle_id="V-1", meter_id="M-1", valid_from=now - timedelta(days=2))
    moments = [now - timedelta(minutes=minutes) for minutes in range(1, 11)]
    ingest([meter_payload("M-1", at=moment) for moment in moments])
    ingest([vehicle_payload("V-1", at=moment) for moment in moments])
