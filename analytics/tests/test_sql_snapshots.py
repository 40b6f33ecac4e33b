"""The full text of each analytics statement, per backend: analytics/tests/sql_snapshots.md.

The statements are fixed at import (`analytics.statements.SQL`); the file holds what runs, one
section per (query, backend), so a change to a statement shows there as a change of its section.
After an intended change, rewrite it with
`SQL_SNAPSHOTS_WRITE=1 pytest analytics/tests/test_sql_snapshots.py` and review the diff.
"""

import os
import re
from pathlib import Path

import pytest

from analytics.statements import (
    SQL,
    STATUS_OTHERWISE,
    STATUS_RULE,
    VENDORS,
    WITHOUT_EFFICIENCY,
    PerformanceStatus,
)

SNAPSHOTS = Path(__file__).parent / "sql_snapshots.md"
QUERIES = sorted({query for query, _ in SQL})
_HEADER = (
    "# Analytics SQL, per query and backend\n\n"
    "Generated from `analytics.statements.SQL` and checked by `test_sql_snapshots.py`.\n"
)
_SECTION = re.compile(r"^## (\w+) \((\w+)\)\n\n```sql\n(.*?)```\n", re.MULTILINE | re.DOTALL)


def rendered() -> str:
    return _HEADER + "".join(
        f"\n## {query} ({vendor})\n\n```sql\n{SQL[query, vendor]}```\n"
        for query, vendor in sorted(SQL)
    )


def snapshots() -> dict[tuple[str, str], str]:
    if os.environ.get("SQL_SNAPSHOTS_WRITE"):
        SNAPSHOTS.write_text(rendered())
    return {(query, vendor): sql for query, vendor, sql in _SECTION.findall(SNAPSHOTS.read_text())}


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("query", QUERIES)
def test_the_statement_is_its_snapshot(query, vendor):
    assert SQL[query, vendor] == snapshots()[query, vendor]


def test_the_snapshots_are_the_statements_and_nothing_else():
    assert SNAPSHOTS.read_text() == rendered()


def test_every_query_has_one_text_per_backend():
    assert set(SQL) == {(query, vendor) for query in QUERIES for vendor in VENDORS}


JUDGED = sorted(key for key, sql in SQL.items() if "AS status" in sql)


def test_every_figure_statement_judges():
    assert {query for query, _ in JUDGED} == set(QUERIES) - {"vehicle_periods"}


@pytest.mark.parametrize("key", JUDGED, ids="/".join)
def test_the_case_judges_every_status_and_only_those(key):
    (case,) = re.findall(r"END AS efficiency,(.*?)END AS status", SQL[key], re.DOTALL)
    assert sorted(re.findall(r"'([A-Z_]+)'", case)) == sorted(PerformanceStatus.values)


def test_the_rule_names_each_status_once():
    ruled = [status for status, _ in STATUS_RULE] + [STATUS_OTHERWISE]
    assert sorted(ruled) == sorted(PerformanceStatus.values)
    assert set(WITHOUT_EFFICIENCY) <= set(ruled)


@pytest.mark.parametrize("key", sorted(SQL), ids="/".join)
def test_no_placeholder_is_left_for_run_time(key):
    assert not re.search(r"[{}]", SQL[key])
