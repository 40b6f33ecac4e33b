"""Fixtures of the import, simulation and upkeep tests: a snapshot of the telemetry tables."""

from collections import defaultdict

import pytest

from telemetry.models import (
    MeterHourly,
    MeterReading,
    MeterStatus,
    VehicleHourly,
    VehicleReading,
    VehicleStatus,
)
from telemetry.upkeep import hour_floor

# Rollup sums are float additions whose grouping depends on how rows were chunked; compare them at
# a precision far finer than any meter resolves.
DIGITS = 9


def _history() -> dict:
    return {
        "meters": sorted(
            MeterReading.objects.values_list(
                "device__meter_id", "recorded_at", "energy_kwh", "voltage_v"
            )
        ),
        "vehicles": sorted(
            VehicleReading.objects.values_list(
                "device__vehicle_id", "recorded_at", "energy_kwh", "soc_pct", "battery_temp_c"
            )
        ),
    }


def _live() -> dict:
    return {
        "meters": sorted(
            MeterStatus.objects.values_list(
                "device__meter_id", "recorded_at", "energy_kwh", "voltage_v"
            )
        ),
        "vehicles": sorted(
            VehicleStatus.objects.values_list(
                "device__vehicle_id", "recorded_at", "energy_kwh", "soc_pct", "battery_temp_c"
            )
        ),
    }


def _rollups() -> dict:
    meters = [
        (device, hour, round(energy, DIGITS), count)
        for device, hour, energy, count in MeterHourly.objects.values_list(
            "device__meter_id", "hour", "energy_kwh", "reading_count"
        )
    ]
    vehicles = [
        (device, hour, round(energy, DIGITS), round(temp, DIGITS), count)
        for device, hour, energy, temp, count in VehicleHourly.objects.values_list(
            "device__vehicle_id", "hour", "energy_kwh", "battery_temp_sum_c", "reading_count"
        )
    ]
    return {"meters": sorted(meters), "vehicles": sorted(vehicles)}


def _rollups_from_history(history: dict) -> dict:
    meters: dict = defaultdict(lambda: [0.0, 0])
    for device, at, energy, _ in history["meters"]:
        bucket = meters[(device, hour_floor(at))]
        bucket[0] += energy
        bucket[1] += 1
    vehicles: dict = defaultdict(lambda: [0.0, 0.0, 0])
    for device, at, energy, _, temp in history["vehicles"]:
        bucket = vehicles[(device, hour_floor(at))]
        bucket[0] += energy
        bucket[1] += temp
        bucket[2] += 1
    return {
        "meters": sorted((d, h, round(e, DIGITS), c) for (d, h), (e, c) in meters.items()),
        "vehicles": sorted(
            (d, h, round(e, DIGITS), round(t, DIGITS), c) for (d, h), (e, t, c) in vehicles.items()
        ),
    }


def _live_from_history(history: dict) -> dict:
    newest: dict = {"meters": {}, "vehicles": {}}
    for kind in ("meters", "vehicles"):
        for row in history[kind]:  # sorted by (device, time): the last one per device wins
            newest[kind][row[0]] = row
    return {kind: sorted(rows.values()) for kind, rows in newest.items()}


class TelemetryState:
    """Read the telemetry tables as plain, comparable data (external ids, no received_at)."""

    history = staticmethod(_history)
    live = staticmethod(_live)
    rollups = staticmethod(_rollups)

    def snapshot(self) -> dict:
        return {"history": _history(), "live": _live(), "rollups": _rollups()}

    def rollups_from_history(self) -> dict:
        return _rollups_from_history(_history())

    def live_from_history(self) -> dict:
        return _live_from_history(_history())


@pytest.fixture
def telemetry_state() -> TelemetryState:
    return TelemetryState()
