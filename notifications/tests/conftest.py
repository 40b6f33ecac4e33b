from datetime import UTC, datetime

import pytest
import time_machine

from testsupport.webhook import WebhookReceiver

SECRET = "a-shared-secret-of-some-length"
NOW = datetime(2026, 2, 10, 12, 30, tzinfo=UTC)


@pytest.fixture
def moving_clock():
    """Start the clock at NOW and let it run (HTTP timeouts need real time); `.shift()` jumps."""
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server
