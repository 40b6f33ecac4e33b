"""A strict, fast JSON parser for the ingest routes."""

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

from telemetry.schemas import MalformedBody, decode_json


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class StrictJSONParser(BaseParser):
    """msgspec-decoded JSON: no NaN or Infinity; bodies over TELEMETRY_MAX_BODY_BYTES are a 413."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.TELEMETRY_MAX_BODY_BYTES
        request = parser_context["request"] if parser_context else None
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"The body is over {limit} bytes; send smaller batches.")
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(f"The body is over {limit} bytes; send smaller batches.")
        try:
            return decode_json(body)
        except MalformedBody as error:
            raise ParseError(str(error)) from None
