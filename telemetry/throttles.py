"""The ingest routes' rate limit per device key (`TELEMETRY_RATE_LIMIT`, e.g. 1200/min).

A DRF throttle whose counter is Django's cache: Redis when `REDIS_URL` is set (shared by every
gunicorn worker and web instance, so the limit holds for the whole service), local memory
otherwise (each worker counts alone). Over the limit DRF answers 429 with `Retry-After`, and the
ingest view gives it the ingest response shape; the throttle runs after authentication and before
the body is parsed, so nothing of a refused request is read or stored.

Why not DRF's `SimpleRateThrottle` as it is: it keeps a list of request times per key, read with
`cache.get` and written back with `cache.set`; two workers that read the same list both see room,
both admit and both write, so under exactly the concurrency a limit is for, more than the limit
gets through. Why not django-ratelimit: its counter is the same `add` + `incr` as below, but its
system checks reject the local-memory fallback (E003) and flag Django's own Redis backend as
unsupported (W001), which fails `check --fail-level WARNING`.

Here the count is atomic: a fixed window per key, whose counter is created by `cache.add` (Redis
`SET NX EX`: exactly one request creates it, with its expiry) and counted by `cache.incr` (Redis
`INCRBY`; a lock in local memory), so N concurrent requests from any number of processes get N
distinct counts and exactly the limit of them pass per window. Windows of different keys start
at different seconds (offset from a hash of the key) so a fleet's counters do not all roll over
at once. A fixed window may let up to twice the limit through across a window's edge (the end
of one and the start of the next); the price of a count that is one atomic step.

If the cache cannot be reached the request is let through (a telemetry gap is worse than a
missed limit) and a warning is logged, at most once a minute per process.
"""

import logging
import math
import time
import zlib

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from telemetry.models import DeviceAPIKey

logger = logging.getLogger(__name__)

_PERIOD_NAMES = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
_WARN_EVERY_SECONDS = 60.0
_last_warning = 0.0


def rate_window(*, key_prefix: str, period: int, now: float) -> tuple[int, float]:
    """The index of the window of `period` seconds this key is in at `now`, and its end (epoch)."""
    offset = zlib.crc32(key_prefix.encode()) % period
    index = int((now + offset) // period)
    return index, (index + 1) * period - offset


def rate_count_hit(*, counter: str, timeout: int) -> int:
    """Count one request on `counter` (atomic, see the module docstring); its count so far."""
    if cache.add(counter, 1, timeout):
        return 1
    try:
        return cache.incr(counter)
    except ValueError:  # it expired between add and incr: this request opens it again
        cache.add(counter, 0, timeout)
        return cache.incr(counter)


class DeviceKeyRateThrottle(BaseThrottle):
    """At most `TELEMETRY_RATE_LIMIT` ingest requests per device key and window."""

    def allow_request(self, request, view) -> bool:
        rate = settings.TELEMETRY_RATE_LIMIT
        if rate is None or not isinstance(request.auth, DeviceAPIKey):
            return True
        limit, period = rate
        now = time.time()
        prefix = request.auth.prefix
        index, end = rate_window(key_prefix=prefix, period=period, now=now)
        # The counter outlives its window by a period, so it cannot expire while in use.
        counter = f"ratelimit:ingest:{prefix}:{period}:{index}"
        try:
            count = rate_count_hit(counter=counter, timeout=math.ceil(end - now) + period)
        except (RedisError, OSError) as error:
            _warn_unavailable(error)
            return True
        if count <= limit:
            return True
        per = _PERIOD_NAMES.get(period, f"{period} s")
        raise Throttled(
            wait=max(1, math.ceil(end - now)),
            detail=f"Rate limit exceeded: this key may make {limit} ingest requests per {per}.",
        )


def _warn_unavailable(error: Exception) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY_SECONDS:
        _last_warning = now
        logger.warning(
            "ingest rate limit not enforced: the cache is unavailable (%s: %s)",
            error.__class__.__name__,
            error,
        )
