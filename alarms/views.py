"""Alarms API: list, one alarm, acknowledge (staff)."""

import re

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from alarms.models import Alarm, AlarmType
from alarms.pagination import AlarmCursorPagination
from alarms.selectors import AlarmState, alarm_get, alarm_list
from alarms.serializers import AlarmSerializer
from alarms.services import alarm_acknowledge
from analytics.exports import CSVRenderer
from api.openapi import error_detail, field_errors_serializer
from fleet.models import DEVICE_ID_PATTERN, DEVICE_ID_RULE

# fullmatch, not `$`: a trailing newline makes an id invalid.
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)

ALARM_EXAMPLE = {
    "id": 42,
    "type": "LOW_EFFICIENCY",
    "subject": "vehicle",
    "vehicleId": "V-1",
    "meterId": "M-1",
    "active": True,
    "openedAt": "2026-02-10T10:15:00Z",
    "clearedAt": None,
    "acknowledgedAt": None,
    "acknowledgedBy": None,
    "figures": {
        "windowStart": "2026-02-09T11:00:00Z",
        "windowEnd": "2026-02-10T10:15:00Z",
        "meterIds": ["M-1"],
        "totalAcConsumedKwh": 150.5,
        "totalDcDeliveredKwh": 110.2,
        "efficiencyPct": 73.22,
        "status": "FAULT_DETECTED",
        "thresholdPct": 85.0,
        "attribution": None,
    },
    "latest": {
        "windowStart": "2026-02-09T12:00:00Z",
        "windowEnd": "2026-02-10T11:15:00Z",
        "meterIds": ["M-1"],
        "totalAcConsumedKwh": 151.0,
        "totalDcDeliveredKwh": 111.0,
        "efficiencyPct": 73.51,
        "status": "FAULT_DETECTED",
        "thresholdPct": 85.0,
    },
}
OFFLINE_EXAMPLE = {
    "id": 43,
    "type": "DEVICE_OFFLINE",
    "subject": "meter",
    "vehicleId": "V-2",
    "meterId": "M-2",
    "active": False,
    "openedAt": "2026-02-10T09:00:00Z",
    "clearedAt": "2026-02-10T09:40:00Z",
    "acknowledgedAt": "2026-02-10T09:05:00Z",
    "acknowledgedBy": "admin",
    "figures": {
        "lastReadingAt": "2026-02-10T08:42:00Z",
        "silentMinutes": 18.0,
        "offlineAfterMinutes": 15,
        "evaluatedAt": "2026-02-10T09:00:00Z",
    },
    "latest": {
        "lastReadingAt": "2026-02-10T09:39:00Z",
        "silentMinutes": 1.0,
        "offlineAfterMinutes": 15,
        "evaluatedAt": "2026-02-10T09:40:00Z",
    },
}


FORBIDDEN = error_detail(
    "Not staff: only staff may acknowledge alarms.",
    "You do not have permission to perform this action.",
)
NOT_FOUND = error_detail("No alarm has this id.", "No alarm 404.")
BAD_PARAMETER = OpenApiResponse(
    field_errors_serializer(
        "AlarmParameterErrorSerializer",
        ["status", "type", "vehicleId", "meterId", "limit", "cursor"],
    ),
    description="A query parameter does not parse; the body names it.",
    examples=[
        OpenApiExample(
            "An unknown status",
            value={"status": ["Must be one of active, cleared, all; got 'open'."]},
            response_only=True,
        ),
        OpenApiExample(
            "A limit out of range",
            value={"limit": ["Must be between 1 and 1000; got 0."]},
            response_only=True,
        ),
    ],
)


def _parse_list_params(params) -> dict:
    state = params.get("status", AlarmState.ALL)
    if state not in AlarmState.CHOICES:
        raise ValidationError(
            {"status": [f"Must be one of {', '.join(AlarmState.CHOICES)}; got {state!r}."]}
        )
    alarm_type = params.get("type") or None
    if alarm_type is not None and alarm_type not in AlarmType.values:
        raise ValidationError(
            {"type": [f"Must be one of {', '.join(AlarmType.values)}; got {alarm_type!r}."]}
        )
    ids = {}
    for name in ("vehicleId", "meterId"):
        value = params.get(name) or None
        if value is not None and not _DEVICE_ID.fullmatch(value):
            raise ValidationError({name: [f"A device id is {DEVICE_ID_RULE}."]})
        ids[name] = value
    return {
        "state": state,
        "alarm_type": alarm_type,
        "vehicle_id": ids["vehicleId"],
        "meter_id": ids["meterId"],
    }


@extend_schema_view(
    get=extend_schema(
        operation_id="alarm_list",
        summary="List alarms",
        description=(
            "Alarms newest opened first, cursor-paginated (follow `next`; `limit` 1–1000, default "
            "100); as CSV with `Accept: text/csv` or `?format=csv` (a row per alarm of the page). "
            "`LOW_EFFICIENCY` opens when a vehicle is FAULT_DETECTED over the last "
            "ALARM_WINDOW_HOURS and clears once its efficiency is back above the threshold by "
            "ALARM_CLEAR_MARGIN_PCT; `ANOMALY` opens on DC > AC and clears on a charge with "
            "DC <= AC; `DEVICE_OFFLINE` opens for a mapped vehicle or meter silent for longer than "
            "ALARM_OFFLINE_AFTER_MINUTES and clears when it reports again. IDLE and "
            "INSUFFICIENT_DATA windows open nothing and clear nothing."
        ),
        tags=["alarms"],
        parameters=[
            OpenApiParameter(
                "status",
                str,
                enum=list(AlarmState.CHOICES),
                description="`active` (not cleared), `cleared`, or `all` (default).",
            ),
            OpenApiParameter("type", str, enum=AlarmType.values, description="Only this type."),
            OpenApiParameter("vehicleId", str, description="Only alarms of this vehicle."),
            OpenApiParameter("meterId", str, description="Only alarms of this meter."),
            OpenApiParameter("limit", int, description="Alarms per page, 1 to 1000. Default 100."),
        ],
        responses={
            200: OpenApiResponse(
                AlarmSerializer(many=True),
                examples=[
                    OpenApiExample("A low-efficiency alarm", value=ALARM_EXAMPLE),
                    OpenApiExample("A cleared offline alarm of a meter", value=OFFLINE_EXAMPLE),
                ],
            ),
            400: BAD_PARAMETER,
            403: error_detail("The credentials are not valid.", "Invalid token."),
        },
    )
)
class AlarmListView(ListAPIView):
    serializer_class = AlarmSerializer
    renderer_classes = [JSONRenderer, CSVRenderer]
    pagination_class = AlarmCursorPagination
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Alarm.objects.none()
        return alarm_list(**_parse_list_params(self.request.query_params))


def _alarm_or_404(alarm_id: str) -> int:
    if not alarm_id.isascii() or not alarm_id.isdigit() or len(alarm_id) > 18:
        raise NotFound(f"No alarm {alarm_id}.")
    return int(alarm_id)


class AlarmDetailView(APIView):
    @extend_schema(
        operation_id="alarm_retrieve",
        summary="One alarm",
        tags=["alarms"],
        parameters=[OpenApiParameter("alarmId", int, OpenApiParameter.PATH)],
        responses={
            200: OpenApiResponse(
                AlarmSerializer,
                examples=[
                    OpenApiExample("A low-efficiency alarm", value=ALARM_EXAMPLE),
                    OpenApiExample("A cleared offline alarm of a meter", value=OFFLINE_EXAMPLE),
                ],
            ),
            404: NOT_FOUND,
        },
    )
    def get(self, request, alarmId: str):
        try:
            alarm = alarm_get(alarm_id=_alarm_or_404(alarmId))
        except Alarm.DoesNotExist:
            raise NotFound(f"No alarm {alarmId}.") from None
        return Response(AlarmSerializer(alarm).data)


class AlarmAcknowledgeView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="alarm_acknowledge",
        summary="Acknowledge an alarm (staff)",
        description=(
            "Records who saw the alarm and when; it stays active until the evaluation clears it. "
            "Idempotent: acknowledging again keeps the first acknowledgement."
        ),
        tags=["alarms"],
        request=None,
        parameters=[OpenApiParameter("alarmId", int, OpenApiParameter.PATH)],
        responses={
            200: OpenApiResponse(
                AlarmSerializer,
                description="The alarm, acknowledged.",
                examples=[
                    OpenApiExample(
                        "Acknowledged",
                        value={
                            **ALARM_EXAMPLE,
                            "acknowledgedAt": "2026-02-10T10:20:00Z",
                            "acknowledgedBy": "admin",
                        },
                    )
                ],
            ),
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def post(self, request, alarmId: str):
        alarm_id = _alarm_or_404(alarmId)
        try:
            alarm_acknowledge(alarm_id=alarm_id, user=request.user)
        except Alarm.DoesNotExist:
            raise NotFound(f"No alarm {alarmId}.") from None
        return Response(AlarmSerializer(alarm_get(alarm_id=alarm_id)).data)
