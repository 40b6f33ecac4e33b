"""Strict parsing of query and path values shared by every read and list route.

Each parser raises DRF's `ValidationError({"<parameter>": [message]})`, so a 400 always names the
parameter at fault; a present value never falls back to a default. Path ids that cannot exist
are a 404 before any query runs (PostgreSQL refuses a NUL byte in text, for one).
"""

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from django.core.validators import RegexValidator
from rest_framework.exceptions import NotFound, ValidationError

from fleet.models import DEVICE_ID_PATTERN, DEVICE_ID_RULE

# `fullmatch`, not `match`: Python's `$` also matches before a trailing newline.
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
# Instants a client may give (in UTC): an offset can move a valid-looking `0001-01-01` or
# `9999-12-31` outside what a datetime holds, and window arithmetic needs room at both ends.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)

# For forms and serializers: the whole value must be an id (`\Z`: no trailing newline either).
device_id_prefix_validator = RegexValidator(
    r"\A[A-Za-z0-9_.:\-]{1,64}\Z",
    f"A device id prefix is {DEVICE_ID_RULE}.",
    code="invalid_device_id_prefix",
)


def device_id_valid(value: str) -> bool:
    """Whether `value` is a device id as the contract defines it, the whole string."""
    return _DEVICE_ID.fullmatch(value) is not None


def device_id_or_404(value: str, *, kind: str) -> str:
    """`value` if it can be a `kind` ("vehicle", "meter") id; otherwise a 404 that says why."""
    if not device_id_valid(value):
        raise NotFound(f"No {kind} has this id: a {kind} id is {DEVICE_ID_RULE}.")
    return value


def instant_in_range(value: datetime) -> datetime | None:
    """An aware `value` in UTC if it lies in [EARLIEST, LATEST]; otherwise None."""
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        return None
    return value if EARLIEST <= value <= LATEST else None


def parse_int(
    params: Mapping[str, str],
    name: str,
    *,
    default: int,
    minimum: int,
    maximum: int,
    unit: str = "",
    range_note: str = "",
) -> int:
    """`?<name>=N`: a whole number (ASCII digits) in [minimum, maximum]; `default` when absent."""
    raw = params.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not _WHOLE_NUMBER.fullmatch(text):
        raise ValidationError({name: [f"{shown(raw)!r} is not a whole number{unit}."]})
    # Past 30 digits it is out of range whatever the bounds; int() of thousands is slow.
    value = int(text) if len(text) <= 30 else None
    if value is None or not minimum <= value <= maximum:
        raise ValidationError(
            {name: [f"Must be between {minimum} and {maximum}{range_note}; got {shown(text)}."]}
        )
    return value


def shown(raw: str) -> str:
    """A query value as quoted in an error message: at most 40 characters."""
    return raw if len(raw) <= 40 else raw[:40] + "…"
