"""The CI form of the soak: `bench/soak.py --seconds 60` (the 10-minute run is `bench/soak.py`)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgresql, pytest.mark.soak]


def test_a_minute_of_mixed_load_stores_every_acknowledged_reading_with_no_5xx(record_property):
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--seconds", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    record_property("figures", run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OK: readings acknowledged = readings stored" in run.stdout
    assert "503 0, other 5xx 0, unanswered 0" in run.stdout
