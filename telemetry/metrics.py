"""Counters of ingested readings, exposed at /metrics for Prometheus (staff only).

Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR to an empty directory so every
worker's counts are summed (`gunicorn.conf.py` at the top of the project does).
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)

READINGS = Counter(
    "telemetry_readings_total",
    "Readings received by the ingest API, by outcome.",
    ["outcome"],
)
_ACCEPTED = READINGS.labels(outcome="accepted")
_DUPLICATE = READINGS.labels(outcome="duplicate")
_REJECTED = READINGS.labels(outcome="rejected")
# A subset of the duplicates, so a counter of its own: the outcomes above still add up to the
# readings received.
CONFLICTS = Counter(
    "telemetry_reading_conflicts_total",
    "Duplicate readings whose values differed from the reading already stored (kept as stored).",
)


def record_ingest(accepted: int, duplicates: int, rejected: int, *, conflicts: int = 0) -> None:
    _ACCEPTED.inc(accepted)
    _DUPLICATE.inc(duplicates)
    _REJECTED.inc(rejected)
    CONFLICTS.inc(conflicts)


def exposition() -> tuple[bytes, str]:
    """The metrics text of this process, or of all workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
