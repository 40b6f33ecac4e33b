"""What the admin's history and rollup lists show: times, pages, counts and the date drill-down.

Sized for partitioned tables of billions of rows: nothing here counts or sorts a whole table.

Every time shown goes through `api.times.display_time()`: one format, with its zone (`TIME_ZONE`
for display; values are stored in UTC). The same format is Django's DATETIME_FORMAT
(`telemetry/formats/`), so fields the admin renders itself read the same.

- `LookaheadPaginator`: fetches one row more than a page to know whether a next page exists; the
  list offers "previous" and "next" only, so it ends where the data ends.
- `honest_count()`: an exact count up to a bound (`LIMIT`ed, so it reads at most bound + 1 rows),
  past it "more than N", with the planner's estimate on PostgreSQL, labelled as such.
- `date_drilldown()`: the year / month / day links of `date_hierarchy`, each confirmed by an
  `EXISTS` over its own time range (partition pruning on the history tables), instead of Django's
  `dates()` and `Min`/`Max` queries that read every partition.
"""

import calendar
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Page, Paginator
from django.db import connections
from django.db.models import Max, Min, QuerySet
from django.utils import timezone
from django.utils.functional import cached_property

from telemetry.partitions import partitioning_enabled, partitions_list
from telemetry.streams import STREAMS

# An exact count reads at most this many rows (+1); past it the count says "more than".
EXACT_COUNT_LIMIT = 10_000


class LookaheadPaginator(Paginator):
    """A paginator that never counts: it reads page `page_number` plus one row.

    `count` is the rows before this page plus the rows read, so the admin sees a next page only
    when that one extra row exists. The page's rows are the ones already read (one query).
    A page past the data is an empty page (reached only by typing its number).
    """

    def __init__(
        self, object_list, per_page, orphans=0, allow_empty_first_page=True, *, page_number=1
    ):
        # No orphans: the last page is whatever the lookahead finds.
        super().__init__(object_list, per_page, 0, allow_empty_first_page)
        self.page_number = max(int(page_number), 1)

    @cached_property
    def _offset(self) -> int:
        return (self.page_number - 1) * self.per_page

    @cached_property
    def _rows(self) -> list:
        return list(self.object_list[self._offset : self._offset + self.per_page + 1])

    @cached_property
    def count(self) -> int:
        return self._offset + len(self._rows)

    @property
    def has_next(self) -> bool:
        return len(self._rows) > self.per_page

    def validate_number(self, number):
        if number == self.page_number:
            return number
        return super().validate_number(number)

    def page(self, number) -> Page:
        number = self.validate_number(number)
        if number == self.page_number:
            return self._get_page(self._rows[: self.per_page], number, self)
        return super().page(number)


class LookaheadChangeList(ChangeList):
    """The admin's ChangeList, taking a single page's rows from the lookahead paginator.

    Django re-reads the rows of a list that fits on one page with an unbounded query; the
    paginator has already read them (at most a page and one row).
    """

    def get_results(self, request) -> None:
        super().get_results(request)
        if not self.multi_page:
            self.result_list = self.paginator.page(self.paginator.page_number).object_list


@dataclass(frozen=True)
class Count:
    """How many rows a list holds, as far as it is known: exact, or more than a bound."""

    exact: int | None
    more_than: int | None = None
    estimate: int | None = None

    def label(self, noun: str, noun_plural: str) -> str:
        if self.exact is not None:
            return f"{self.exact:,} {noun if self.exact == 1 else noun_plural}"
        text = f"more than {self.more_than:,} {noun_plural}"
        if self.estimate is not None:
            text += f" (≈ {self.estimate:,}, planner estimate)"
        return text


def honest_count(queryset: QuerySet, *, limit: int = EXACT_COUNT_LIMIT) -> Count:
    """The rows of `queryset`: exact up to `limit` (reading at most limit + 1), else a bound.

    On PostgreSQL a count past the bound carries the planner's estimate of the filtered query
    (`EXPLAIN (FORMAT JSON)`, "Plan Rows"): instant, from the partitions' statistics.
    """
    unordered = queryset.order_by()
    seen = unordered[: limit + 1].count()
    if seen <= limit:
        return Count(exact=seen)
    estimate = None
    if connections[unordered.db].vendor == "postgresql":
        plan = json.loads(unordered.explain(format="json"))
        estimate = max(int(plan[0]["Plan"]["Plan Rows"]), limit + 1)
    return Count(exact=None, more_than=limit, estimate=estimate)


@dataclass(frozen=True)
class DrillDown:
    """The context of Django's `admin/date_hierarchy.html`."""

    show: bool
    back: dict | None
    choices: list[dict]


def _aware(day: date) -> datetime:
    return timezone.make_aware(datetime(day.year, day.month, day.day))


def _bounds(queryset: QuerySet, field: str) -> tuple[date, date] | None:
    """The first and last day that can hold rows, without reading the rows where possible.

    The partitioned history tables: their partitions' days (a catalog query). Other tables (an
    indexed column, or SQLite's small tables): Min and Max of the filtered rows.
    """
    table = queryset.model._meta.db_table
    if partitioning_enabled() and table in {stream.history for stream in STREAMS}:
        days = [p.day for p in partitions_list() if p.parent == table]
        return (min(days), max(days)) if days else None
    edges = queryset.order_by().aggregate(first=Min(field), last=Max(field))
    if edges["first"] is None:
        return None
    return timezone.localtime(edges["first"]).date(), timezone.localtime(edges["last"]).date()


def _has_rows(queryset: QuerySet, field: str, start: date, end: date) -> bool:
    return queryset.filter(**{f"{field}__gte": _aware(start), f"{field}__lt": _aware(end)}).exists()


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def date_drilldown(cl, field: str) -> DrillDown:
    """Year, month and day links over `cl.queryset` (filtered, not yet narrowed by the date).

    At most one catalog or Min/Max query, then one `EXISTS` per candidate period: ≤ 31 at the
    day level, ≤ 12 at the month level, one per year that has partitions.
    """
    year_field, month_field, day_field = (f"{field}__{part}" for part in ("year", "month", "day"))
    params = cl.params
    year, month, day = (params.get(name) for name in (year_field, month_field, day_field))

    def link(filters: dict) -> str:
        return cl.get_query_string(filters, [f"{field}__"])

    if year and month and day:
        picked = date(int(year), int(month), int(day))
        return DrillDown(
            show=True,
            back={"link": link({year_field: year, month_field: month}), "title": f"{picked:%B %Y}"},
            choices=[{"title": f"{picked:%Y-%m-%d}"}],
        )
    # The filtered rows (already narrowed to the year or month picked, if any).
    rows = cl.queryset
    bounds = _bounds(rows, field)
    if bounds is None:
        return DrillDown(show=False, back=None, choices=[])
    first, last = bounds
    if not year and first.year == last.year:
        year = str(first.year)
        if first.month == last.month:
            month = str(first.month)
    if year and month:
        y, m = int(year), int(month)
        days = [
            date(y, m, d)
            for d in range(1, calendar.monthrange(y, m)[1] + 1)
            if first <= date(y, m, d) <= last
        ]
        return DrillDown(
            show=True,
            back={"link": link({year_field: year}), "title": year},
            choices=[
                {
                    "link": link({year_field: year, month_field: month, day_field: d.day}),
                    "title": f"{d:%Y-%m-%d}",
                }
                for d in days
                if _has_rows(rows, field, d, d + timedelta(days=1))
            ],
        )
    if year:
        y = int(year)
        months = [
            date(y, m, 1)
            for m in range(1, 13)
            if (first.year, first.month) <= (y, m) <= (last.year, last.month)
        ]
        return DrillDown(
            show=True,
            back={"link": link({}), "title": "All dates"},
            choices=[
                {"link": link({year_field: year, month_field: m.month}), "title": f"{m:%B %Y}"}
                for m in months
                if _has_rows(rows, field, m, _next_month(m))
            ],
        )
    years = range(first.year, last.year + 1)
    return DrillDown(
        show=True,
        back=None,
        choices=[
            {"link": link({year_field: str(y)}), "title": str(y)}
            for y in years
            if _has_rows(rows, field, date(y, 1, 1), date(y + 1, 1, 1))
        ],
    )
