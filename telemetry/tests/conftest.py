"""Fixtures of the import, simulation and upkeep tests: a snapshot of the telemetry tables."""

from collections import defaultdict

import pytest

from api.times import hour_floor
from telemetry.streams import STREAMS

# Rollup sums are float additions whose grouping depends on how rows were chunked; compare them at
# a precision far finer than any meter resolves.
DIGITS = 9


def _per_stream(rows_of) -> dict:
    """{"meters": sorted rows, "vehicles": sorted rows}."""
    return {f"{stream.kind}s": sorted(rows_of(stream)) for stream in STREAMS}


def _readings(model, stream) -> list[tuple]:
    """(device external id, recorded_at, *value columns) of every row of `model`."""
    return list(
        model.objects.values_list(f"device__{stream.registry_id}", "recorded_at", *stream.columns)
    )


def _history() -> dict:
    return _per_stream(lambda stream: _readings(stream.history_model, stream))


def _live() -> dict:
    return _per_stream(lambda stream: _readings(stream.status_model, stream))


def _rollups() -> dict:
    def rows(stream):
        for device, hour, *sums in stream.hourly_model.objects.values_list(
            f"device__{stream.registry_id}", "hour", *stream.rollup_columns
        ):
            yield (device, hour, *(round(value, DIGITS) for value in sums))

    return _per_stream(rows)


def _rollups_from_history(history: dict) -> dict:
    def rows(stream):
        sources = [None if s is None else stream.columns.index(s) for _, s in stream.rollup_sums]
        sums: dict = defaultdict(lambda: [0] * len(sources))
        for device, at, *values in history[f"{stream.kind}s"]:
            bucket = sums[(device, hour_floor(at))]
            for position, source in enumerate(sources):
                bucket[position] += 1 if source is None else values[source]
        for (device, hour), bucket in sums.items():
            yield (device, hour, *(round(value, DIGITS) for value in bucket))

    return _per_stream(rows)


def _live_from_history(history: dict) -> dict:
    newest: dict = {kind: {} for kind in history}
    for kind, rows in history.items():
        for row in rows:  # sorted by (device, time): the last one per device wins
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
