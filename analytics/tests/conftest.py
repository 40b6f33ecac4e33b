from datetime import UTC, datetime

import pytest
import time_machine

# Half past noon: not hour-aligned, so every window has partial hours at its ends.
NOW = datetime(2026, 2, 10, 12, 30, tzinfo=UTC)


@pytest.fixture
def clock():
    """Freeze time at NOW; `clock.move_to(...)` / `clock.shift(...)` move it."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller
