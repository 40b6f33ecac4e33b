"""A strict, fast JSON parser for the ingest routes, and the body reading it needs.

Two edges of HTTP bodies are handled here rather than left to Django:

- `Transfer-Encoding: chunked` bodies arrive without `CONTENT_LENGTH`; Django then gives a
  0-length stream (and DRF never calls the parser). Under gunicorn, which decodes the chunks and
  marks its input `wsgi.input_terminated`, the body is read from `wsgi.input` itself, with the
  size limit enforced while reading.
- A body over the limit is answered 413, but a client that writes its whole body before reading
  the answer (a plain `urllib` POST) would only see a broken pipe if the server closed on it: the
  rest of the body is read and discarded first, up to `DRAIN_MAX_BYTES`.
"""

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

from telemetry.schemas import MalformedBody, decode_json

# Most bytes of an over-limit body read and discarded so that its client can read the 413.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
_READ_SIZE = 64 * 1024


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"The body is over {limit} bytes; send smaller batches.")


def is_chunked(meta: dict) -> bool:
    """A body sent with `Transfer-Encoding: chunked` (no length)."""
    return "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower() and not meta.get(
        "CONTENT_LENGTH"
    )


def read_limited(stream, limit: int) -> bytes:
    """Up to `limit` bytes of `stream`, read in pieces; over it, drain the rest and raise 413."""
    parts, size = [], 0
    while True:
        part = stream.read(min(_READ_SIZE, limit + 1 - size))
        if not part:
            return b"".join(parts)
        parts.append(part)
        size += len(part)
        if size > limit:
            drain(stream, DRAIN_MAX_BYTES - size)
            raise _too_large(limit)


def drain(stream, budget: int) -> None:
    """Read and discard up to `budget` bytes of `stream` (the rest of a refused body)."""
    while budget > 0:
        part = stream.read(min(_READ_SIZE, budget))
        if not part:
            return
        budget -= len(part)


def drain_unread(request) -> None:
    """Before an error answer: read and discard a body nobody read (a 401, 403, 429 or 503 to a
    client that writes its whole body first), up to `DRAIN_MAX_BYTES`."""
    meta = request.META
    if is_chunked(meta):
        if meta.get("wsgi.input_terminated"):
            drain(meta["wsgi.input"], DRAIN_MAX_BYTES)
        return
    declared = meta.get("CONTENT_LENGTH") or ""
    if getattr(request, "_read_started", True) or not declared.isdigit():
        return
    if int(declared) <= DRAIN_MAX_BYTES:
        try:
            drain(request, int(declared))
        except OSError:  # the client went away: nothing left to answer
            return


def chunked_body(meta: dict) -> bytes:
    """The body of a chunked request, read from the server's decoded input stream."""
    if not meta.get("wsgi.input_terminated"):
        raise ParseError(
            "This server cannot read a chunked body; send it with a Content-Length header."
        )
    return read_limited(meta["wsgi.input"], settings.TELEMETRY_MAX_BODY_BYTES)


def json_body(body: bytes):
    try:
        return decode_json(body)
    except MalformedBody as error:
        raise ParseError(str(error)) from None


class StrictJSONParser(BaseParser):
    """msgspec-decoded JSON: no NaN or Infinity; bodies over TELEMETRY_MAX_BODY_BYTES are a 413."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.TELEMETRY_MAX_BODY_BYTES
        request = parser_context["request"] if parser_context else None
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if stream is None:
            return json_body(b"")
        if declared and declared.isdigit() and int(declared) > limit:
            if int(declared) <= DRAIN_MAX_BYTES:
                drain(stream, int(declared))
            raise _too_large(limit)
        return json_body(read_limited(stream, limit))
