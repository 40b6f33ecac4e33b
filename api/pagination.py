"""Cursor pagination with the API's one vocabulary: `limit` (page size) and `cursor`.

DRF's `CursorPagination` answers a page size that does not parse with its default and an
undecodable cursor with a 404; here both are a 400 naming the parameter. The position inside a
cursor is client input too (base64 is no signature): it is checked against the ordering field's
type before it reaches SQL.
"""

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from api.params import device_id_valid, instant_in_range, parse_int

# The fleet lists' old name for the page size: refused with a pointer, never silently ignored.
RETIRED_PAGE_SIZE = "pageSize"
INVALID_CURSOR = "Not a cursor this API issued: follow the `next` or `previous` link of a page."


class StrictCursorPagination(CursorPagination):
    """`?limit=` in [1, max_page_size] (a 400 otherwise) and a checked `?cursor=`."""

    page_size_query_param = "limit"
    # "device_id" (the ordering is a device's external id), "instant" (an aware timestamp) or
    # "integer" (a primary key).
    position_kind = "device_id"

    def get_page_size(self, request):
        if RETIRED_PAGE_SIZE in request.query_params:
            raise ValidationError(
                {
                    RETIRED_PAGE_SIZE: [
                        f"No such parameter: the page size is `{self.page_size_query_param}`."
                    ]
                }
            )
        return parse_int(
            request.query_params,
            self.page_size_query_param,
            default=self.page_size,
            minimum=1,
            maximum=self.max_page_size,
        )

    def decode_cursor(self, request):
        if not request.query_params.get(self.cursor_query_param, "x"):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        position = cursor.position if cursor is not None else None
        if position is not None and not self._position_valid(position):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        return cursor

    def _position_valid(self, position: str) -> bool:
        if self.position_kind == "device_id":
            return device_id_valid(position)
        if self.position_kind == "integer":
            return position.isascii() and position.isdigit() and len(position) <= 18
        try:
            moment = parse_datetime(position)
        except ValueError:
            return False
        if moment is None or moment.utcoffset() is None:
            return False
        return instant_in_range(moment) is not None

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque position from the `next` or `previous` link of a page; "
                "anything else is a 400.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Items per page, 1 to {self.max_page_size} "
                f"(default {self.page_size}); out of range or not a whole number is a 400.",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                },
            },
        ]
