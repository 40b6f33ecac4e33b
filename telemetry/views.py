from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import ParseError, PermissionDenied, UnsupportedMediaType
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from telemetry import metrics
from telemetry.authentication import DeviceKeyAuthentication, HasDeviceKey
from telemetry.openapi import INGEST_RESPONSES, request_examples, request_schema
from telemetry.parsers import (
    RequestTooLarge,
    StrictJSONParser,
    chunked_body,
    drain_unread,
    is_chunked,
    json_body,
)
from telemetry.schemas import MalformedBody, ParsedReadings, readings_parse
from telemetry.services import DeviceScopeError, IngestResult, readings_ingest
from telemetry.throttles import DeviceKeyRateThrottle


class IngestView(APIView):
    """Store one reading or a batch; see the contract's ingestion table for the status codes."""

    authentication_classes = [DeviceKeyAuthentication]
    permission_classes = [HasDeviceKey]
    throttle_classes = [DeviceKeyRateThrottle]
    parser_classes = [StrictJSONParser]
    kind: str | None = None  # "meter" / "vehicle" on the typed routes
    batch_only = False

    def post(self, request):
        if is_chunked(request.META):
            if request.content_type.split(";")[0].strip().lower() != "application/json":
                raise UnsupportedMediaType(request.content_type)
            payload = json_body(chunked_body(request.META))
        elif not request.META.get("CONTENT_LENGTH", "0").strip("0"):
            raise ParseError("The body is empty: send a reading or a batch of readings.")
        else:
            payload = request.data
        try:
            parsed = readings_parse(
                payload,
                now=timezone.now(),
                kind=self.kind,
                batch_only=self.batch_only,
            )
        except MalformedBody as error:
            raise ParseError(str(error)) from None
        if parsed.is_batch and parsed.size == 0:
            raise ParseError("The batch is empty.")
        if parsed.size > settings.TELEMETRY_MAX_BATCH:
            raise RequestTooLarge(
                f"A batch holds at most {settings.TELEMETRY_MAX_BATCH} readings; "
                f"this one has {parsed.size}."
            )
        try:
            result = readings_ingest(parsed=parsed, api_key=request.auth)
        except DeviceScopeError as error:
            raise PermissionDenied(str(error)) from None
        return Response(_body_of(result), status=_status_of(parsed, result))

    def handle_exception(self, exc):
        """Errors keep the ingest response shape: nothing accepted, and why."""
        drain_unread(getattr(self.request, "_request", self.request))
        response = super().handle_exception(exc)
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        response.data = refusal_body(str(detail))
        return response


def refusal_body(detail: str) -> dict:
    """The ingest response of a request refused as a whole: nothing stored, and why."""
    return {"accepted": 0, "duplicates": 0, "conflicts": 0, "rejected": [], "detail": detail}


def _body_of(result: IngestResult) -> dict:
    """The `IngestResultSerializer` shape, built directly: this is the hot path."""
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "conflicts": result.conflicts,
        "rejected": [{"index": r.index, "errors": r.errors} for r in result.rejected],
    }


def _status_of(parsed: ParsedReadings, result: IngestResult) -> int:
    if len(result.rejected) == parsed.size:
        return status.HTTP_400_BAD_REQUEST
    if result.rejected:
        return status.HTTP_207_MULTI_STATUS
    if result.accepted:
        return status.HTTP_201_CREATED
    return status.HTTP_200_OK


def _documented(*, summary: str, operation_id: str):
    """Document an ingest route's view class: its shapes (from `kind` and `batch_only`)."""

    def document(view_class: type[IngestView]) -> type[IngestView]:
        return extend_schema_view(
            post=extend_schema(
                operation_id=operation_id,
                summary=summary,
                tags=["ingestion"],
                request=request_schema(kind=view_class.kind, batch_only=view_class.batch_only),
                examples=request_examples(kind=view_class.kind, batch_only=view_class.batch_only),
                responses=INGEST_RESPONSES,
            )
        )(view_class)

    return document


_MIXED = "One reading, or a batch of meters and vehicles mixed"


@_documented(summary=_MIXED, operation_id="ingest")
class MixedIngestView(IngestView):
    pass


@_documented(summary="Meter readings: one or a batch", operation_id="ingest_meter")
class MeterIngestView(IngestView):
    kind = "meter"


@_documented(summary="Vehicle readings: one or a batch", operation_id="ingest_vehicle")
class VehicleIngestView(IngestView):
    kind = "vehicle"


@_documented(summary="A batch of meter readings", operation_id="ingest_meter_batch")
class MeterBatchIngestView(IngestView):
    kind = "meter"
    batch_only = True


@_documented(summary="A batch of vehicle readings", operation_id="ingest_vehicle_batch")
class VehicleBatchIngestView(IngestView):
    kind = "vehicle"
    batch_only = True


# Aliases kept for clients of the reference designs: the mixed route under their paths.
@_documented(summary=f"{_MIXED} (alias of /v1/ingest)", operation_id="telemetry_ingest_alias")
class TelemetryIngestAliasView(IngestView):
    pass


@_documented(summary=f"{_MIXED} (alias of /v1/ingest)", operation_id="telemetry_alias")
class TelemetryAliasView(IngestView):
    pass


class MetricsView(APIView):
    """Prometheus metrics of this service (staff only)."""

    permission_classes = [IsAdminUser]

    @extend_schema(exclude=True)
    def get(self, request):
        body, content_type = metrics.exposition()
        return HttpResponse(body, content_type=content_type)


def healthz(request):
    """The process is up (no database call: a liveness probe must not fail with the database)."""
    return HttpResponse("ok\n", content_type="text/plain")


def readyz(request):
    """The database answers; 503 when it does not (a readiness probe)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        return HttpResponse(
            f"database unavailable: {error.__class__.__name__}\n",
            status=503,
            content_type="text/plain",
        )
    return HttpResponse("ready\n", content_type="text/plain")


def home(request):
    """Point a person at the docs and the admin."""
    return render(request, "telemetry/home.html")
