"""Which database answers a read: an explicit set of read models goes to a healthy replica.

Routed to a replica (when `DATABASE_REPLICA_URLS` names any): the raw history, the live status
and the hourly rollups (`READ_MODELS`). Everything else stays on the primary: device keys and
tokens (a key issued a moment ago must authenticate), users, sessions, axes, alarms,
notifications, the registry and its assignments as the admin and the mapping API see them.

The registry *as read by* a status, history or analytics selector comes from the selector's
replica too: the selector resolves one alias once (`router.db_for_read(<a read model>)`) and
passes it to every statement, so one answer never mixes a primary's assignments with a
replica's figures.

A read inside a transaction of the primary (an alarm evaluation, an ingest, an admin change)
stays on the primary: what it reads decides what it writes.

Replicas are taken in turn. One that refuses a connection is skipped for
`DATABASE_REPLICA_DOWN_SECONDS`; one whose replay lags more than
`DATABASE_REPLICA_MAX_LAG_SECONDS` is skipped until a later check finds it caught up. Each process
checks a replica at most once per `DATABASE_REPLICA_CHECK_SECONDS`; with none healthy the
primary answers.
"""

import itertools
import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger(__name__)

REPLICA_PREFIX = "replica_"

# app_label.model_name of the models whose reads a replica may answer.
READ_MODELS = frozenset(
    {
        "telemetry.meterreading",
        "telemetry.vehiclereading",
        "telemetry.meterstatus",
        "telemetry.vehiclestatus",
        "telemetry.meterhourly",
        "telemetry.vehiclehourly",
    }
)

# Lag of a replica in seconds. Its WAL receiver running and everything received replayed: 0,
# however old the last replayed transaction (an idle primary sends nothing to replay; the receive
# position may even sit behind the replay one, at a segment start, after a restart). Otherwise the
# age of the last replayed transaction (unknown: 1e9). Not in recovery (a primary named as a
# replica): 0. Only the functions and the view's `pid` are used: any role may read them.
_LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0
    WHEN pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()
        AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver) THEN 0
    ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 1e9)
END
"""


@dataclass
class _Health:
    checked_at: float = float("-inf")
    usable: bool = False
    down_until: float = float("-inf")


_health: dict[str, _Health] = {}
_health_lock = threading.Lock()
_turn = itertools.count()


def replica_aliases() -> list[str]:
    """The replicas' aliases in DATABASES, in the order of `DATABASE_REPLICA_URLS`."""
    return sorted(
        (alias for alias in settings.DATABASES if alias.startswith(REPLICA_PREFIX)),
        key=lambda alias: int(alias.removeprefix(REPLICA_PREFIX)),
    )


def replica_lag_seconds(alias: str) -> float:
    """The replay lag of one replica (see `_LAG_SQL`); 0 for a backend without replication."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute(_LAG_SQL)
        return float(cursor.fetchone()[0])


def replica_usable(alias: str, *, now: float | None = None) -> bool:
    """Up and within the lag bound, as last checked by this process (at most once a period)."""
    now = time.monotonic() if now is None else now
    with _health_lock:
        health = _health.setdefault(alias, _Health())
        if now < health.down_until:
            return False
        if now - health.checked_at < settings.DATABASE_REPLICA_CHECK_SECONDS:
            return health.usable
        # Claim the check so that the other threads keep the previous verdict meanwhile.
        health.checked_at = now
    try:
        lag = replica_lag_seconds(alias)
    except DatabaseError as error:
        connections[alias].close()
        logger.warning("replica %s is down (%s); reads go elsewhere", alias, error)
        with _health_lock:
            health.usable = False
            health.down_until = now + settings.DATABASE_REPLICA_DOWN_SECONDS
        return False
    usable = lag <= settings.DATABASE_REPLICA_MAX_LAG_SECONDS
    if not usable:
        logger.warning("replica %s lags %.1f s; reads go elsewhere", alias, lag)
    with _health_lock:
        health.usable = usable
    return usable


def replica_health_forget() -> None:
    """Forget every verdict (tests that stop and start replicas)."""
    with _health_lock:
        _health.clear()


def read_alias() -> str:
    """The next usable replica in turn, else the primary."""
    aliases = replica_aliases()
    if not aliases:
        return DEFAULT_DB_ALIAS
    first = next(_turn)
    for offset in range(len(aliases)):
        alias = aliases[(first + offset) % len(aliases)]
        if replica_usable(alias):
            return alias
    return DEFAULT_DB_ALIAS


class ReadReplicaRouter:
    """Reads of `READ_MODELS` outside a primary transaction go to a usable replica."""

    def db_for_read(self, model, **hints):
        if model._meta.label_lower not in READ_MODELS:
            return None
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS
        return read_alias()

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, **hints):
        return db == DEFAULT_DB_ALIAS
