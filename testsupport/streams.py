"""The project's stream registry for helpers that talk to a database directly (psycopg).

The load ledger and the benchmarks count rows in the history and rollup tables of a served
project; their table and column names come from `telemetry.streams`, as everywhere else. Those
helpers also run outside Django (bench/soak.py, bench/mqtt.py): there only the models' metadata
is needed, so Django is set up with the project's settings and a placeholder key, and nothing
connects to a database through it.
"""

import os


def streams() -> tuple:
    """`telemetry.streams.STREAMS`, setting Django up first where this process has not."""
    from django.apps import apps

    if not apps.ready:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energy.settings")
        placeholder = "SECRET_KEY" not in os.environ
        if placeholder:  # read once by the settings; never used to sign anything here
            os.environ["SECRET_KEY"] = "metadata-only"
        try:
            django.setup()
        finally:
            if placeholder:
                del os.environ["SECRET_KEY"]
    from telemetry.streams import STREAMS

    return STREAMS


def history_rows_sql(*, between: bool = False) -> str:
    """One row, one column: the history rows of every stream (with `between`: of the
    recorded_at range [%s, %s), given once per stream)."""
    where = " WHERE recorded_at >= %s AND recorded_at < %s" if between else ""
    return "SELECT " + " + ".join(
        f"(SELECT count(*) FROM {stream.history}{where})" for stream in streams()
    )
