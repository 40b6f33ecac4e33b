"""CSV exports: a DRF renderer for list answers and a streamed export of raw history.

Our own small renderer rather than djangorestframework-csv: that package has had no release
since 2023 and does not declare Django 5, and the history export must stream (the renderer of a
DRF `Response` sees the whole body at once), which it does not do either.

`CSVRenderer` is for any view answering a list (add it to `renderer_classes` after the JSON
renderer; `Accept: text/csv` or `?format=csv` selects it): it writes the rows of `results` (a
page), of `items` (a series) or of a bare list, one column per field, nested objects flattened to
`parent.child`, lists joined by `;`. Errors (4xx/5xx) stay JSON.
"""

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

from django.db import models
from django.http import StreamingHttpResponse
from rest_framework.renderers import BaseRenderer, JSONRenderer

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
HISTORY_CHUNK_ROWS = 5000


def _flatten(row: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = ";".join(str(item) for item in value)
        else:
            flat[name] = "" if value is None else value
    return flat


def _rows_of(data) -> list[dict]:
    if isinstance(data, dict):
        for key in ("results", "items", "suspects"):
            if isinstance(data.get(key), list):
                return data[key]
        return [data]
    return list(data or [])


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code >= 400:
            response["Content-Type"] = "application/json"
            return JSONRenderer().render(data)
        rows = [_flatten(row) for row in _rows_of(data)]
        header = list(dict.fromkeys(name for row in rows for name in row))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().encode(self.charset)


def wants_csv(request) -> bool:
    """The negotiated renderer is CSV (`Accept: text/csv` or `?format=csv`)."""
    return getattr(request, "accepted_renderer", None) is not None and (
        request.accepted_renderer.format == CSVRenderer.format
    )


def wire_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the JSON answers write it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rows_by_time(
    queryset: models.QuerySet, *, fields: Sequence[str], chunk_rows: int | None = None
) -> Iterator[tuple]:
    """The rows of one device's history oldest first, `chunk_rows` at a time by key.

    Keyed iteration (`recorded_at > last`): (device, recorded_at) is unique, so every chunk is a
    bounded index range scan, no server-side cursor or transaction is held between chunks (it
    works behind pgbouncer), and memory holds one chunk (default HISTORY_CHUNK_ROWS).
    `recorded_at` must be the first field.
    """
    chunk_rows = chunk_rows or HISTORY_CHUNK_ROWS
    last = None
    while True:
        page = queryset if last is None else queryset.filter(recorded_at__gt=last)
        rows = list(page.order_by("recorded_at").values_list(*fields)[:chunk_rows])
        yield from rows
        if len(rows) < chunk_rows:
            return
        last = rows[-1][0]


def csv_stream(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[bytes]:
    """CSV text of `header` then `rows`, encoded line by line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def streamed_csv(
    header: Sequence[str], rows: Iterable[Sequence], *, filename: str
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_stream(header, rows), content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
