"""A PostgreSQL exclusion constraint that other database backends leave out."""

from django.contrib.postgres.constraints import ExclusionConstraint
from django.db import DEFAULT_DB_ALIAS


class PostgresExclusionConstraint(ExclusionConstraint):
    """`ExclusionConstraint` on PostgreSQL; nothing on the embedded SQLite default.

    The rule it enforces is also checked by the model's `clean()` on every backend (with a message
    a fleet admin can act on), so `validate()` is left to `clean()` instead of running twice.
    """

    def constraint_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().constraint_sql(model, schema_editor)

    def create_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().create_sql(model, schema_editor)

    def remove_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().remove_sql(model, schema_editor)

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS):
        return None
