"""Query-parameter parsing of the read endpoints: windows, thresholds, hour counts.

Every function raises DRF's `ValidationError({"<parameter>": [message]})`, so a 400 always names
the parameter at fault. Nothing is silently replaced by a default: a parameter that is present
must parse and be in range.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError

from api.params import EARLIEST, LATEST, instant_in_range, parse_int, shown

DEFAULT_WINDOW_HOURS = 24


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end), both aware and in UTC."""

    start: datetime
    end: datetime


def _fail(parameter: str, message: str) -> ValidationError:
    return ValidationError({parameter: [message]})


def _max_window() -> timedelta:
    return timedelta(days=settings.ANALYTICS_MAX_WINDOW_DAYS)


def parse_hours(params: Mapping[str, str], *, default: int = DEFAULT_WINDOW_HOURS) -> int:
    """`?hours=N`: a whole number of hours, 1 ≤ N ≤ ANALYTICS_MAX_WINDOW_DAYS × 24."""
    return parse_int(
        params,
        "hours",
        default=default,
        minimum=1,
        maximum=settings.ANALYTICS_MAX_WINDOW_DAYS * 24,
        unit=" of hours",
        range_note=f" (ANALYTICS_MAX_WINDOW_DAYS = {settings.ANALYTICS_MAX_WINDOW_DAYS} days)",
    )


def parse_instant(params: Mapping[str, str], name: str) -> datetime | None:
    """An ISO 8601 timestamp with an offset, in UTC; None when absent. Naive is an error.

    Bounded to [EARLIEST, LATEST] in UTC (see `api.params`).
    """
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = parse_datetime(raw.strip())
    except ValueError:
        value = None
    if value is None:
        raise _fail(
            name, f"{shown(raw)!r} is not an ISO 8601 timestamp (e.g. 2026-02-10T10:15:00Z)."
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(
            name,
            f"{shown(raw)!r} has no UTC offset; add one (e.g. 2026-02-10T10:15:00Z or +01:00). "
            "A timestamp is never taken as local time.",
        )
    value = instant_in_range(value)
    if value is None:
        raise _fail(
            name,
            f"{shown(raw)!r} is out of range: give a moment between "
            f"{EARLIEST.isoformat()} and {LATEST.isoformat()}.",
        )
    return value


def parse_window(params: Mapping[str, str], *, now: datetime) -> Window:
    """`?hours=N` (ending now) or `?from=…&to=…`; default the last 24 hours ending now."""
    start = parse_instant(params, "from")
    end = parse_instant(params, "to")
    if "hours" in params and (start is not None or end is not None):
        raise _fail("hours", "Give either hours or from and to, not both.")
    if start is None and end is None:
        hours = parse_hours(params)
        return Window(start=now - timedelta(hours=hours), end=now)
    if end is None:
        raise _fail("to", "from needs to: give both ends of the window.")
    if start is None:
        raise _fail("from", "to needs from: give both ends of the window.")
    if start >= end:
        raise _fail("from", f"from ({start.isoformat()}) must be before to ({end.isoformat()}).")
    if end - start > _max_window():
        raise _fail(
            "to",
            f"The window is longer than ANALYTICS_MAX_WINDOW_DAYS "
            f"({settings.ANALYTICS_MAX_WINDOW_DAYS} days).",
        )
    return Window(start=start, end=end)


def _finite_number(params: Mapping[str, str], name: str) -> tuple[str, float] | None:
    """`?name=X` as (text, finite float); None when absent."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        raise _fail(name, f"{shown(raw)!r} is not a number.") from None
    if not math.isfinite(value):
        raise _fail(name, f"{shown(raw)!r} is not a finite number.")
    return raw, value


def parse_threshold(params: Mapping[str, str]) -> float:
    """`?threshold=P`: an efficiency percentage, 1 < P ≤ 100 (a ratio such as 0.85 is refused)."""
    given = _finite_number(params, "threshold")
    if given is None:
        return settings.ANALYTICS_FAULT_THRESHOLD_PCT
    raw, threshold = given
    if threshold <= 1:
        raise _fail(
            "threshold",
            f"The threshold is a percentage (e.g. 85 for 85 %), not a ratio; got {shown(raw)}.",
        )
    if threshold > 100:
        raise _fail("threshold", f"The threshold is a percentage of at most 100; got {shown(raw)}.")
    return threshold


MIN_CHARGE_KWH_RANGE = (0.001, 1000.0)
BUCKETS = ("hour", "day")


def parse_min_charge_kwh(params: Mapping[str, str]) -> float:
    """`?minChargeKwh=K`: AC below K kWh is IDLE; 0.001 ≤ K ≤ 1000 (default the setting)."""
    given = _finite_number(params, "minChargeKwh")
    if given is None:
        return settings.ANALYTICS_MIN_CHARGE_KWH
    raw, value = given
    low, high = MIN_CHARGE_KWH_RANGE
    if not low <= value <= high:
        raise _fail("minChargeKwh", f"Must be between {low} and {high} kWh; got {shown(raw)}.")
    return value


def parse_depot(params: Mapping[str, str]) -> str | None:
    """`?depot=NAME`: only that depot's vehicles (1–64 characters, as `Vehicle.depot`); None
    when absent. A depot no vehicle has gives an empty fleet, not an error."""
    raw = params.get("depot")
    if raw is None:
        return None
    if not raw or len(raw) > 64 or not raw.isprintable():
        raise _fail("depot", f"{shown(raw)!r} is not a depot name: 1–64 printable characters.")
    return raw


def parse_bucket(params: Mapping[str, str]) -> str:
    """`?bucket=hour|day` (default hour)."""
    raw = params.get("bucket", "hour")
    if raw not in BUCKETS:
        raise _fail("bucket", f"{shown(raw)!r} is not a bucket; use hour or day.")
    return raw


def parse_days(params: Mapping[str, str], *, default: int = 7) -> int:
    """`?days=N`: a whole number of days, 1 ≤ N ≤ ANALYTICS_MAX_WINDOW_DAYS."""
    return parse_int(
        params,
        "days",
        default=default,
        minimum=1,
        maximum=settings.ANALYTICS_MAX_WINDOW_DAYS,
        unit=" of days",
        range_note=" (ANALYTICS_MAX_WINDOW_DAYS)",
    )
