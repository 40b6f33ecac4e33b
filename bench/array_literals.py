"""Micro-benchmark: building the array-literal parameters of the one-statement store.

Compares the unquoted literals the store used before (`{a,b}`: PostgreSQL trims whitespace around
unquoted elements, so "M-1\\n" became "M-1") with the quoted ones it uses now (`{"a","b"}`), and
with psycopg adapting Python lists (what the literals replaced). Pure CPU, no database:

    PYTHONPATH=. DJANGO_SETTINGS_MODULE=energy.settings SECRET_KEY=x \
        .venv/bin/python bench/array_literals.py
"""

import timeit
from datetime import UTC, datetime, timedelta

import django

django.setup()

from psycopg.adapt import PyFormat, Transformer  # noqa: E402

from telemetry.services import _array_literal  # noqa: E402

T0 = datetime(2026, 2, 10, tzinfo=UTC)


def unquoted(texts):
    return "{" + ",".join(texts) + "}"


def params(items, literal):
    return [
        literal([item[1] for item in items]),
        literal([item[2].isoformat() for item in items]),
        *(literal([repr(item[3][i]) for item in items]) for i in range(2)),
    ]


_TRANSFORMER = Transformer()


def adapted(items, transformer=_TRANSFORMER):
    columns = [
        [item[1] for item in items],
        [item[2] for item in items],
        *([item[3][i] for item in items] for i in range(2)),
    ]
    return transformer.dump_sequence(columns, [PyFormat.AUTO] * len(columns))


def main() -> None:
    for count in (1, 5000):
        items = [
            (i, f"M-{i % 50}", T0 + timedelta(seconds=i), (0.125 + i, 231.5)) for i in range(count)
        ]
        reps = 20000 if count == 1 else 40
        for name, build in (
            ("unquoted literals (before)", lambda items=items: params(items, unquoted)),
            ("quoted literals (now)", lambda items=items: params(items, _array_literal)),
            ("psycopg list adaptation", lambda items=items: adapted(items)),
        ):
            best = min(timeit.repeat(build, number=reps, repeat=5)) / reps
            print(f"{count:>5} readings  {name:<28} {best * 1e6:10.2f} µs per request")


if __name__ == "__main__":
    main()
