"""Route status and analytics reads to a replica when one is configured."""

from django.conf import settings

REPLICA_ALIAS = "replica"
_READ_APPS = {"telemetry", "analytics"}


class ReadReplicaRouter:
    """Reads of telemetry models go to the `replica` alias when DATABASE_REPLICA_URL is set.

    The ingest path writes through raw SQL on the default connection, so it never reads a
    replica's lagging copy of what it just wrote.
    """

    def db_for_read(self, model, **hints):
        if model._meta.app_label in _READ_APPS and REPLICA_ALIAS in settings.DATABASES:
            return REPLICA_ALIAS
        return None

    def db_for_write(self, model, **hints):
        return None

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, **hints):
        return db != REPLICA_ALIAS
