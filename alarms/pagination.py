"""Cursor pagination whose `limit` is validated: a bad value is a 400 naming it, never ignored."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


class StrictLimitCursorPagination(CursorPagination):
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw.strip())
        except ValueError:
            raise ValidationError({"limit": [f"{raw!r} is not a whole number."]}) from None
        if not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {"limit": [f"Must be between 1 and {self.max_page_size}; got {size}."]}
            )
        return size


class AlarmCursorPagination(StrictLimitCursorPagination):
    """Newest opened first; (opened_at, id) is unique, so the cursor is stable."""

    ordering = ("-opened_at", "-id")
