"""The alarms list's cursor: newest opened first, the API's strict `limit` and `cursor`."""

from api.pagination import StrictCursorPagination


class AlarmCursorPagination(StrictCursorPagination):
    """Newest opened first; (opened_at, id) is unique, so the cursor is stable."""

    ordering = ("-opened_at", "-id")
    position_kind = "instant"
    page_size = 100
    max_page_size = 1000
