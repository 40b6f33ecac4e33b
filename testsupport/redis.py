"""Redis for tests: the machine's server, each test under a key prefix of its own.

`scripts/test` starts Redis when it is not answering and exports REDIS_URL; a targeted run without
it uses redis://127.0.0.1:6379/0. A test never flushes a database: it writes only keys under its
own prefix and deletes them afterwards, so it cannot touch anybody else's data on that server.
"""

import os
import uuid

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_URL


def redis_client(url: str) -> redis.Redis:
    """A client of `url`, checked with PING; a clear error (never a skip) if it does not answer."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        raise RuntimeError(
            f"Redis at {url} does not answer ({error}); scripts/test starts it, or run "
            "`redis-server --daemonize yes --port 6379` and export REDIS_URL."
        ) from None
    return client


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def delete_prefixed(client: redis.Redis, prefix: str) -> int:
    """Delete every key under `prefix` (as Django's cache writes them: `prefix:version:key`)."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    return client.delete(*keys) if keys else 0
