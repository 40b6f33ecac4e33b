"""Inserting many model rows at once: COPY on PostgreSQL, `bulk_create` elsewhere.

Measured on this machine kind with `alarms_evaluate` opening 20,000 DEVICE_OFFLINE alarms and
their 20,000 outbox rows (the storm when every device goes silent): `bulk_create` sends each
column as one array parameter (Django 5.2's UNNEST insert), and psycopg's client-side binding
quotes every element of those arrays with a regular expression, which on the JSON columns
(alarm figures, delivery bodies of ~1 KB) was most of the evaluation's time. COPY hands the
same rows to PostgreSQL without that quoting. See `alarms.services.alarms_evaluate` for figures.
"""

from collections.abc import Sequence

from django.db import connections, models, router


def rows_insert(*, model: type[models.Model], objects: Sequence[models.Model]) -> None:
    """Insert `objects`, new instances of `model`, and set the primary keys of those without one.

    On PostgreSQL: keys missing are drawn from the table's sequence, then one COPY writes every
    concrete field as the field prepares it for saving. Elsewhere: `bulk_create`. No signals.
    """
    if not objects:
        return
    using = router.db_for_write(model)
    connection = connections[using]
    if connection.vendor != "postgresql":
        model.objects.using(using).bulk_create(objects, batch_size=1000)
        return
    meta = model._meta
    keyless = [obj for obj in objects if obj.pk is None]
    fields = list(meta.concrete_fields)
    with connection.cursor() as cursor:
        if keyless:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(keyless)],
            )
            for obj, (pk,) in zip(keyless, sorted(cursor.fetchall()), strict=True):
                obj.pk = pk
        columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
        table = connection.ops.quote_name(meta.db_table)
        # The raw psycopg cursor: wrapped, so that its errors are Django's (IntegrityError, …).
        with (
            connection.wrap_database_errors,
            cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for obj in objects:
                copy.write_row(
                    [
                        field.get_db_prep_save(getattr(obj, field.attname), connection)
                        for field in fields
                    ]
                )
    for obj in objects:
        obj._state.adding = False
        obj._state.db = using
