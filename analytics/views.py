"""Read endpoints: efficiency analytics, live status and raw history.

Each view parses its query parameters (a 400 names the parameter), makes one selector call and
serializes the answer. Authentication is the project default (token or session, IsAuthenticated).
"""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from analytics.exports import CSVRenderer, rows_by_time, streamed_csv, wants_csv, wire_time
from analytics.filters import MeterStatusFilter, VehicleStatusFilter
from analytics.params import (
    parse_bucket,
    parse_days,
    parse_depot,
    parse_hours,
    parse_min_charge_kwh,
    parse_threshold,
    parse_window,
)
from analytics.selectors import (
    VehicleNotFound,
    fleet_attribution,
    fleet_depots,
    fleet_inefficient,
    fleet_series,
    fleet_summary,
    vehicle_performance,
    vehicle_series,
)
from analytics.serializers import (
    FleetAttributionSerializer,
    FleetDepotsSerializer,
    FleetInefficientPageSerializer,
    FleetSeriesSerializer,
    FleetSummarySerializer,
    MeterHistoryReadingSerializer,
    MeterLiveStatusSerializer,
    VehicleHistoryReadingSerializer,
    VehicleLiveStatusSerializer,
    VehiclePerformanceSerializer,
    VehicleSeriesSerializer,
)
from api.openapi import METER_ID, VEHICLE_ID, bad_parameters, not_found
from api.pagination import INVALID_CURSOR, StrictCursorPagination
from api.params import device_id_or_404, parse_int
from telemetry.models import MeterReading, VehicleReading
from telemetry.selectors import (
    DeviceNotFound,
    meter_readings,
    meter_status_get,
    meter_status_list,
    vehicle_readings,
    vehicle_status_get,
    vehicle_status_list,
)

# --- OpenAPI pieces ------------------------------------------------------------------------------

HOURS = OpenApiParameter(
    "hours",
    int,
    description="Window of the last N hours ending now (1 to ANALYTICS_MAX_WINDOW_DAYS × 24). "
    "Default 24. Not together with from/to.",
)
FROM = OpenApiParameter(
    "from",
    OpenApiTypes.DATETIME,
    description="Start of the window (inclusive), ISO 8601 with an offset, e.g. "
    "2026-02-10T00:00:00Z. Needs `to`.",
)
TO = OpenApiParameter(
    "to",
    OpenApiTypes.DATETIME,
    description="End of the window (exclusive), ISO 8601 with an offset. Needs `from`; the window "
    "may be at most ANALYTICS_MAX_WINDOW_DAYS (default 31) days long.",
)
THRESHOLD = OpenApiParameter(
    "threshold",
    float,
    description="Efficiency threshold as a percentage, 1 < threshold ≤ 100 (default "
    "ANALYTICS_FAULT_THRESHOLD_PCT, 85). A ratio such as 0.85 is refused.",
)
MIN_CHARGE_KWH = OpenApiParameter(
    "minChargeKwh",
    float,
    description="AC (kWh) below which the window is IDLE: nothing was charged, there is no "
    "efficiency to judge (0.001 to 1000; default ANALYTICS_MIN_CHARGE_KWH, 1.0).",
)
FORMAT = OpenApiParameter(
    "format",
    str,
    enum=["json", "csv"],
    description="csv: the answer as CSV (the same as `Accept: text/csv`).",
)
DEPOT = OpenApiParameter(
    "depot",
    str,
    description="Only the vehicles of this depot (`Vehicle.depot`, 1–64 characters); default "
    "every depot. Retired vehicles are never part of a fleet answer.",
)
FLEET_HOURS = OpenApiParameter(
    "hours",
    int,
    description="Whole hour buckets: the window is [start of the current hour − (hours − 1) h, "
    "now]. Default 24; at most ANALYTICS_MAX_WINDOW_DAYS × 24.",
)
# Deep pages are refused before they become an OFFSET PostgreSQL cannot hold.
PAGE_MAX = 1_000_000
FLEET_LIMIT_MAX = 500
PAGE = OpenApiParameter(
    "page",
    int,
    description=f"Page number, 1 to {PAGE_MAX:,}. Default 1; past the last page the "
    "results are empty.",
)
LIMIT = OpenApiParameter(
    "limit", int, description=f"Items per page, 1 to {FLEET_LIMIT_MAX}. Default 50."
)

BAD_PARAMETER = bad_parameters(
    "A query parameter does not parse or is out of range; the body names it.",
    hours="'abc' is not a whole number of hours.",
    threshold="The threshold is a percentage (e.g. 85 for 85 %), not a ratio; got 0.85.",
    to="'2026-02-10T10:15:00' has no UTC offset; add one (e.g. 2026-02-10T10:15:00Z or +01:00). "
    "A timestamp is never taken as local time.",
)
BAD_LIST_PARAMETER = bad_parameters(
    "A query parameter (a filter, `limit`, `cursor`) does not parse or is out of range; the body "
    "names it.",
    limit="Must be between 1 and 1000; got 0.",
    cursor=INVALID_CURSOR,
    stale="Must be true or false.",
)
BAD_HISTORY_PARAMETER = bad_parameters(
    "A query parameter (the window, `limit`, `cursor`) does not parse or is out of range; the "
    "body names it.",
    limit="'abc' is not a whole number.",
    cursor=INVALID_CURSOR,
    hours="Must be between 1 and 744 (ANALYTICS_MAX_WINDOW_DAYS = 31 days); got 0.",
)
BAD_FLEET_PARAMETER = bad_parameters(
    "A query parameter does not parse or is out of range; the body names it.",
    page="Must be between 1 and 1000000; got 0.",
    limit="Must be between 1 and 500; got 501.",
    threshold="The threshold is a percentage (e.g. 85 for 85 %), not a ratio; got 0.85.",
)


PERFORMANCE_EXAMPLE = {
    "vehicleId": "V-1",
    "from": "2026-02-09T10:15:00Z",
    "to": "2026-02-10T10:15:00Z",
    "meterIds": ["M-1"],
    "totalAcConsumedKwh": 150.5,
    "totalDcDeliveredKwh": 120.2,
    "efficiencyPct": 79.87,
    "avgBatteryTempC": 35.2,
    "readings": {"vehicle": 1440, "meter": 1440},
    "status": "FAULT_DETECTED",
}

# --- Analytics -----------------------------------------------------------------------------------


class VehiclePerformanceView(APIView):
    @extend_schema(
        operation_id="analytics_vehicle_performance",
        summary="Charging efficiency of one vehicle",
        description=(
            "DC delivered to the battery against AC drawn by the meter(s) assigned to the vehicle "
            "during the window, each meter counted only inside its assignment "
            "[validFrom, validTo). Exact to the reading. Window: the last 24 hours by default, "
            "`hours=N`, or `from` and `to`."
        ),
        tags=["analytics"],
        parameters=[VEHICLE_ID, HOURS, FROM, TO, THRESHOLD, MIN_CHARGE_KWH],
        responses={
            200: OpenApiResponse(
                VehiclePerformanceSerializer,
                examples=[OpenApiExample("below threshold", value=PERFORMANCE_EXAMPLE)],
            ),
            400: BAD_PARAMETER,
            404: not_found("vehicle"),
        },
    )
    def get(self, request, vehicleId: str):
        device_id_or_404(vehicleId, kind="vehicle")
        window = parse_window(request.query_params, now=timezone.now())
        threshold = parse_threshold(request.query_params)
        min_charge_kwh = parse_min_charge_kwh(request.query_params)
        try:
            performance = vehicle_performance(
                vehicle_id=vehicleId,
                start=window.start,
                end=window.end,
                threshold=threshold,
                min_charge_kwh=min_charge_kwh,
            )
        except VehicleNotFound:
            raise NotFound(f"No vehicle {vehicleId!r}.") from None
        return Response(VehiclePerformanceSerializer(performance).data)


_FLEET_WINDOW_NOTE = (
    " Fleet figures read the hourly rollups: the window is whole hour buckets, "
    "[start of the current hour − (hours − 1) h, now] (the current hour's bucket is complete up to "
    "now), reported as `from`/`to`. A meter's hours wholly inside an assignment come from the "
    "rollups and the partial hours where an assignment starts or ends off the hour from its raw "
    "readings, so AC is exact to the reading for every vehicle, as in the per-vehicle answer."
)


class FleetInefficientView(APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="analytics_fleet_inefficient",
        summary="Vehicles below the efficiency threshold, worst first",
        description="Vehicles whose status is FAULT_DETECTED, lowest efficiency first, with the "
        "figures of the per-vehicle answer; paginated by `page` and `limit`. IDLE and "
        "INSUFFICIENT_DATA vehicles are never listed (the summary counts them). As CSV with "
        "`Accept: text/csv` or `format=csv` (the page's rows)." + _FLEET_WINDOW_NOTE,
        tags=["analytics"],
        parameters=[FLEET_HOURS, THRESHOLD, MIN_CHARGE_KWH, DEPOT, PAGE, LIMIT, FORMAT],
        responses={
            200: OpenApiResponse(
                FleetInefficientPageSerializer,
                examples=[
                    OpenApiExample(
                        "one vehicle below 85 %",
                        value={
                            "from": "2026-02-09T11:00:00Z",
                            "to": "2026-02-10T10:15:00Z",
                            "hours": 24,
                            "threshold": 85.0,
                            "count": 1,
                            "page": 1,
                            "limit": 50,
                            "next": None,
                            "previous": None,
                            "results": [
                                {
                                    **PERFORMANCE_EXAMPLE,
                                    "from": "2026-02-09T11:00:00Z",
                                    "to": "2026-02-10T10:15:00Z",
                                }
                            ],
                        },
                    )
                ],
            ),
            400: BAD_FLEET_PARAMETER,
        },
    )
    def get(self, request):
        params = request.query_params
        hours = parse_hours(params)
        threshold = parse_threshold(params)
        page = parse_int(params, "page", default=1, minimum=1, maximum=PAGE_MAX)
        limit = parse_int(params, "limit", default=50, minimum=1, maximum=FLEET_LIMIT_MAX)
        result = fleet_inefficient(
            hours=hours,
            now=timezone.now(),
            threshold=threshold,
            min_charge_kwh=parse_min_charge_kwh(params),
            depot=parse_depot(params),
            limit=limit,
            offset=(page - 1) * limit,
        )
        url = request.build_absolute_uri()
        has_next = page * limit < result.total
        previous = None
        if page > 1:
            previous = (
                replace_query_param(url, "page", page - 1)
                if page > 2
                else remove_query_param(url, "page")
            )
        body = {
            "start": result.start,
            "end": result.end,
            "hours": hours,
            "threshold": threshold,
            "count": result.total,
            "page": page,
            "limit": limit,
            "next": replace_query_param(url, "page", page + 1) if has_next else None,
            "previous": previous,
            "results": result.items,
        }
        return Response(FleetInefficientPageSerializer(body).data)


class FleetSummaryView(APIView):
    @extend_schema(
        operation_id="analytics_fleet_summary",
        summary="Fleet totals and vehicles by status",
        description="AC (of meters while assigned to a vehicle) and DC totals, the fleet's "
        "efficiency and how many vehicles are in each status (IDLE and INSUFFICIENT_DATA "
        "included)." + _FLEET_WINDOW_NOTE,
        tags=["analytics"],
        parameters=[FLEET_HOURS, THRESHOLD, MIN_CHARGE_KWH, DEPOT],
        responses={
            200: OpenApiResponse(
                FleetSummarySerializer,
                examples=[
                    OpenApiExample(
                        "a small fleet",
                        value={
                            "from": "2026-02-09T11:00:00Z",
                            "to": "2026-02-10T10:15:00Z",
                            "hours": 24,
                            "threshold": 85.0,
                            "vehicles": 3,
                            "totalAcConsumedKwh": 300.0,
                            "totalDcDeliveredKwh": 261.5,
                            "efficiencyPct": 87.17,
                            "byStatus": {
                                "OK": 1,
                                "FAULT_DETECTED": 1,
                                "ANOMALY": 0,
                                "IDLE": 0,
                                "INSUFFICIENT_DATA": 1,
                            },
                        },
                    )
                ],
            ),
            400: BAD_PARAMETER,
        },
    )
    def get(self, request):
        hours = parse_hours(request.query_params)
        threshold = parse_threshold(request.query_params)
        summary = fleet_summary(
            hours=hours,
            now=timezone.now(),
            threshold=threshold,
            min_charge_kwh=parse_min_charge_kwh(request.query_params),
            depot=parse_depot(request.query_params),
        )
        body = {**summary.__dict__, "hours": hours, "threshold": threshold}
        return Response(FleetSummarySerializer(body).data)


class FleetDepotsView(APIView):
    @extend_schema(
        operation_id="analytics_fleet_depots",
        summary="The fleet summary per depot",
        description="The summary's figures (vehicles, AC and DC totals, efficiency, vehicles per "
        "status) for each depot, so depots can be compared side by side; they add up to the "
        "fleet summary of the same window. Vehicles without a depot are grouped under "
        "`depot: null`." + _FLEET_WINDOW_NOTE,
        tags=["analytics"],
        parameters=[FLEET_HOURS, THRESHOLD, MIN_CHARGE_KWH],
        responses={
            200: OpenApiResponse(
                FleetDepotsSerializer,
                examples=[
                    OpenApiExample(
                        "two depots",
                        value={
                            "from": "2026-02-09T11:00:00Z",
                            "to": "2026-02-10T10:15:00Z",
                            "hours": 24,
                            "threshold": 85.0,
                            "depots": [
                                {
                                    "vehicles": 2,
                                    "totalAcConsumedKwh": 200.0,
                                    "totalDcDeliveredKwh": 181.5,
                                    "efficiencyPct": 90.75,
                                    "byStatus": {
                                        "OK": 2,
                                        "FAULT_DETECTED": 0,
                                        "ANOMALY": 0,
                                        "IDLE": 0,
                                        "INSUFFICIENT_DATA": 0,
                                    },
                                    "depot": "NORTH",
                                },
                                {
                                    "vehicles": 1,
                                    "totalAcConsumedKwh": 100.0,
                                    "totalDcDeliveredKwh": 80.0,
                                    "efficiencyPct": 80.0,
                                    "byStatus": {
                                        "OK": 0,
                                        "FAULT_DETECTED": 1,
                                        "ANOMALY": 0,
                                        "IDLE": 0,
                                        "INSUFFICIENT_DATA": 0,
                                    },
                                    "depot": "SOUTH",
                                },
                            ],
                        },
                    )
                ],
            ),
            400: BAD_PARAMETER,
        },
    )
    def get(self, request):
        params = request.query_params
        hours = parse_hours(params)
        judgement = _judgement(params)
        result = fleet_depots(hours=hours, now=timezone.now(), **judgement)
        body = {**result.__dict__, "hours": hours, "threshold": judgement["threshold"]}
        return Response(FleetDepotsSerializer(body).data)


# --- Live status ---------------------------------------------------------------------------------


class VehicleStatusCursorPagination(StrictCursorPagination):
    """By vehicle id; a cursor, never a COUNT."""

    ordering = "vehicle_code"
    page_size = 100
    max_page_size = 1000


class MeterStatusCursorPagination(VehicleStatusCursorPagination):
    ordering = "meter_code"


VEHICLE_STATUS_EXAMPLE = {
    "vehicleId": "V-1",
    "soc": 72.5,
    "kwhDeliveredDc": 0.11,
    "batteryTemp": 38.6,
    "timestamp": "2026-02-10T10:15:00Z",
    "receivedAt": "2026-02-10T10:15:01.204000Z",
    "stale": False,
}
METER_STATUS_EXAMPLE = {
    "meterId": "M-1",
    "kwhConsumedAc": 0.125,
    "voltage": 231.5,
    "timestamp": "2026-02-10T10:15:00Z",
    "receivedAt": "2026-02-10T10:15:01.204000Z",
    "stale": False,
}


def _device_status_schema(kind: str, *, parameter, serializer, example) -> extend_schema_view:
    return extend_schema_view(
        get=extend_schema(
            operation_id=f"status_{kind}",
            summary=f"Live status of one {kind}",
            description=f"The newest reading accepted for the {kind}; `stale` when it was received "
            "more than TELEMETRY_STALE_AFTER_SECONDS (default 300) ago.",
            tags=["status"],
            parameters=[parameter],
            responses={
                200: OpenApiResponse(serializer, examples=[OpenApiExample("fresh", value=example)]),
                404: not_found(f"{kind} (or no reading yet)"),
            },
        )
    )


class DeviceStatusView(APIView):
    """The live row of one device; subclasses name the device kind."""

    serializer_class: type
    status_get = staticmethod(vehicle_status_get)  # the selector, keyword `<kind>_id`
    kind = ""  # "vehicle" or "meter"
    path_kwarg = ""  # "vehicleId" or "meterId"

    def get(self, request, **kwargs):
        device_id = device_id_or_404(kwargs[self.path_kwarg], kind=self.kind)
        status = self.status_get(**{f"{self.kind}_id": device_id}, now=timezone.now())
        if status is None:
            raise NotFound(
                f"No live status for {self.kind} {device_id!r}: unknown, or no reading yet."
            )
        return Response(self.serializer_class(status).data)


@_device_status_schema(
    "vehicle",
    parameter=VEHICLE_ID,
    serializer=VehicleLiveStatusSerializer,
    example=VEHICLE_STATUS_EXAMPLE,
)
class VehicleStatusView(DeviceStatusView):
    serializer_class = VehicleLiveStatusSerializer
    status_get = staticmethod(vehicle_status_get)
    kind, path_kwarg = "vehicle", "vehicleId"


@_device_status_schema(
    "meter", parameter=METER_ID, serializer=MeterLiveStatusSerializer, example=METER_STATUS_EXAMPLE
)
class MeterStatusView(DeviceStatusView):
    serializer_class = MeterLiveStatusSerializer
    status_get = staticmethod(meter_status_get)
    kind, path_kwarg = "meter", "meterId"


def _status_list_schema(kind: str, *, serializer) -> extend_schema_view:
    return extend_schema_view(
        get=extend_schema(
            operation_id=f"status_{kind}s",
            summary=f"Live status of all {kind}s",
            description=f"One row per {kind} that has reported, by {kind} id; filterable; "
            "cursor-paginated (follow `next`).",
            tags=["status"],
            responses={200: serializer(many=True), 400: BAD_LIST_PARAMETER},
        )
    )


@_status_list_schema("vehicle", serializer=VehicleLiveStatusSerializer)
class VehicleStatusListView(ListAPIView):
    serializer_class = VehicleLiveStatusSerializer
    filterset_class = VehicleStatusFilter
    pagination_class = VehicleStatusCursorPagination

    def get_queryset(self):
        return vehicle_status_list(now=timezone.now())


@_status_list_schema("meter", serializer=MeterLiveStatusSerializer)
class MeterStatusListView(ListAPIView):
    serializer_class = MeterLiveStatusSerializer
    filterset_class = MeterStatusFilter
    pagination_class = MeterStatusCursorPagination

    def get_queryset(self):
        return meter_status_list(now=timezone.now())


# --- History -------------------------------------------------------------------------------------


class HistoryCursorPagination(StrictCursorPagination):
    """Oldest first; (device, recorded_at) is unique, so recorded_at is a stable cursor."""

    ordering = "recorded_at"
    position_kind = "instant"
    page_size = 500
    max_page_size = 5000


class DeviceHistoryView(ListAPIView):
    """Raw readings of one device in a window; subclasses name the device kind.

    As CSV (`Accept: text/csv` or `?format=csv`) the whole window is streamed, unpaginated,
    read by key a chunk at a time (`rows_by_time`): a month of one device never sits in memory.
    """

    pagination_class = HistoryCursorPagination
    filter_backends: list = []
    renderer_classes = [JSONRenderer, CSVRenderer]
    csv_header: tuple[str, ...] = ()  # the JSON field names, the device id first
    csv_fields: tuple[str, ...] = ()  # the model fields after recorded_at, in header order
    reading_model: type
    readings = staticmethod(vehicle_readings)  # the selector, keyword `<kind>_id`
    kind = ""  # "vehicle" or "meter"
    path_kwarg = ""  # "vehicleId" or "meterId"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return self.reading_model.objects.none()
        device_id = device_id_or_404(self.kwargs[self.path_kwarg], kind=self.kind)
        window = parse_window(self.request.query_params, now=timezone.now())
        try:
            return self.readings(
                **{f"{self.kind}_id": device_id},
                start=window.start,
                end=window.end,
            )
        except DeviceNotFound as error:
            raise NotFound(f"No {self.kind} {error.args[0]!r}.") from None

    def list(self, request, *args, **kwargs):
        if not wants_csv(request):
            return super().list(request, *args, **kwargs)
        device_id = self.kwargs[self.path_kwarg]
        rows = rows_by_time(self.get_queryset(), fields=("recorded_at", *self.csv_fields))
        return streamed_csv(
            self.csv_header,
            ((device_id, *values, wire_time(recorded_at)) for recorded_at, *values in rows),
            filename=f"{self.kind}-{device_id}.csv",
        )


_HISTORY_DESCRIPTION = (
    "Raw readings in [from, to), oldest first, in the ingest payload's shape; the last 24 hours "
    "by default. Cursor-paginated (follow `next`; `limit` up to 5000). As CSV (`Accept: "
    "text/csv` or `format=csv`): the whole window streamed, unpaginated, one reading a line."
)


def _history_schema(kind: str, *, parameter, serializer) -> extend_schema_view:
    return extend_schema_view(
        get=extend_schema(
            operation_id=f"history_{kind}",
            summary=f"Raw readings of one {kind}",
            description=_HISTORY_DESCRIPTION,
            tags=["history"],
            parameters=[parameter, HOURS, FROM, TO, FORMAT],
            responses={
                200: serializer(many=True),
                400: BAD_HISTORY_PARAMETER,
                404: not_found(kind),
            },
        )
    )


@_history_schema("vehicle", parameter=VEHICLE_ID, serializer=VehicleHistoryReadingSerializer)
class VehicleHistoryView(DeviceHistoryView):
    serializer_class = VehicleHistoryReadingSerializer
    reading_model = VehicleReading
    readings = staticmethod(vehicle_readings)
    kind, path_kwarg = "vehicle", "vehicleId"
    csv_header = ("vehicleId", "soc", "kwhDeliveredDc", "batteryTemp", "timestamp")
    csv_fields = ("soc_pct", "energy_kwh", "battery_temp_c")


@_history_schema("meter", parameter=METER_ID, serializer=MeterHistoryReadingSerializer)
class MeterHistoryView(DeviceHistoryView):
    serializer_class = MeterHistoryReadingSerializer
    reading_model = MeterReading
    readings = staticmethod(meter_readings)
    kind, path_kwarg = "meter", "meterId"
    csv_header = ("meterId", "kwhConsumedAc", "voltage", "timestamp")
    csv_fields = ("energy_kwh", "voltage_v")


# --- Series and attribution ----------------------------------------------------------------------

BUCKET = OpenApiParameter(
    "bucket",
    str,
    enum=["hour", "day"],
    description="Bucket width, aligned to UTC hours or days (default hour). The first and last "
    "buckets are clipped to the window.",
)
SERIES_ITEM_EXAMPLE = {
    "start": "2026-02-10T10:00:00Z",
    "end": "2026-02-10T11:00:00Z",
    "totalAcConsumedKwh": 12.5,
    "totalDcDeliveredKwh": 10.1,
    "efficiencyPct": 80.8,
    "avgBatteryTempC": 34.1,
    "status": "FAULT_DETECTED",
}
IDLE_ITEM_EXAMPLE = {
    "start": "2026-02-10T11:00:00Z",
    "end": "2026-02-10T11:30:00Z",
    "totalAcConsumedKwh": 0.0016,
    "totalDcDeliveredKwh": 0.0,
    "efficiencyPct": None,
    "avgBatteryTempC": 21.3,
    "status": "IDLE",
}


def _judgement(params) -> dict[str, float]:
    """The status rule's parameters, `threshold` and `minChargeKwh`, as selector keywords."""
    return {
        "threshold": parse_threshold(params),
        "min_charge_kwh": parse_min_charge_kwh(params),
    }


def _fleet_judgement(params) -> dict:
    """A fleet answer's parameters: the status rule's and the `depot` it covers."""
    return {**_judgement(params), "depot": parse_depot(params)}


class VehicleSeriesView(APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="analytics_vehicle_series",
        summary="Charging efficiency of one vehicle per hour or day",
        description=(
            "The per-vehicle figures for each UTC hour or day bucket of the window (`hours=N` "
            "ending now, or `from` and `to`; default the last 24 hours), each judged by the same "
            "status rule. Exact at assignment edges: the buckets sum to the per-vehicle answer "
            "over the same window. As CSV (`Accept: text/csv` or `format=csv`): one line per "
            "bucket."
        ),
        tags=["analytics"],
        parameters=[VEHICLE_ID, HOURS, FROM, TO, BUCKET, THRESHOLD, MIN_CHARGE_KWH, FORMAT],
        responses={
            200: OpenApiResponse(
                VehicleSeriesSerializer,
                examples=[
                    OpenApiExample(
                        "a charge, then parked",
                        value={
                            "vehicleId": "V-1",
                            "from": "2026-02-10T10:00:00Z",
                            "to": "2026-02-10T11:30:00Z",
                            "bucket": "hour",
                            "threshold": 85.0,
                            "minChargeKwh": 1.0,
                            "meterIds": ["M-1"],
                            "items": [SERIES_ITEM_EXAMPLE, IDLE_ITEM_EXAMPLE],
                        },
                    )
                ],
            ),
            400: BAD_PARAMETER,
            404: not_found("vehicle"),
        },
    )
    def get(self, request, vehicleId: str):
        params = request.query_params
        window = parse_window(params, now=timezone.now())
        bucket = parse_bucket(params)
        judgement = _judgement(params)
        try:
            series = vehicle_series(
                vehicle_id=vehicleId, start=window.start, end=window.end, bucket=bucket, **judgement
            )
        except VehicleNotFound:
            raise NotFound(f"No vehicle {vehicleId!r}.") from None
        return Response(VehicleSeriesSerializer({**series.__dict__, **judgement}).data)


class FleetSeriesView(APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="analytics_fleet_series",
        summary="Fleet totals per hour or day",
        description="The fleet summary's totals (AC of meters while assigned, DC of every "
        "vehicle) for each UTC hour or day bucket of the fleet window, with the fleet's "
        "efficiency and status per bucket; the buckets sum to the summary's totals. As CSV "
        "(`Accept: text/csv` or `format=csv`): one line per bucket." + _FLEET_WINDOW_NOTE,
        tags=["analytics"],
        parameters=[FLEET_HOURS, BUCKET, THRESHOLD, MIN_CHARGE_KWH, DEPOT, FORMAT],
        responses={
            200: OpenApiResponse(
                FleetSeriesSerializer,
                examples=[
                    OpenApiExample(
                        "two hours",
                        value={
                            "from": "2026-02-10T10:00:00Z",
                            "to": "2026-02-10T11:30:00Z",
                            "hours": 2,
                            "bucket": "hour",
                            "threshold": 85.0,
                            "minChargeKwh": 1.0,
                            "items": [
                                {**SERIES_ITEM_EXAMPLE, "status": "OK", "efficiencyPct": 89.4},
                                {**SERIES_ITEM_EXAMPLE, **IDLE_ITEM_EXAMPLE},
                            ],
                        },
                    )
                ],
            ),
            400: BAD_PARAMETER,
        },
    )
    def get(self, request):
        params = request.query_params
        hours = parse_hours(params)
        bucket = parse_bucket(params)
        judgement = _fleet_judgement(params)
        series = fleet_series(hours=hours, now=timezone.now(), bucket=bucket, **judgement)
        body = {**series.__dict__, "hours": hours, **judgement}
        return Response(FleetSeriesSerializer(body).data)


DAYS = OpenApiParameter(
    "days",
    int,
    description="Window of the last N days as whole hour buckets ([start of the current hour − "
    "(24 N − 1) h, now]); 1 to ANALYTICS_MAX_WINDOW_DAYS, default 7.",
)


class FleetAttributionView(APIView):
    @extend_schema(
        operation_id="analytics_fleet_attribution",
        summary="Who is to blame: the charger or the vehicle",
        description=(
            "Every (vehicle, meter) pairing of the window is judged by the status rule on the "
            "meter's AC and the vehicle's DC while that assignment held (exact at assignment "
            "edges). A meter low (FAULT_DETECTED) with two or more different vehicles is "
            "CHARGER_SUSPECTED; a vehicle low on two or more different meters is "
            "VEHICLE_SUSPECTED. IDLE pairings (less AC than minChargeKwh) are never low. Each "
            "suspect comes with the evidence: all its pairings in the window."
        ),
        tags=["analytics"],
        parameters=[DAYS, THRESHOLD, MIN_CHARGE_KWH, DEPOT],
        responses={
            200: OpenApiResponse(
                FleetAttributionSerializer,
                examples=[
                    OpenApiExample(
                        "a faulty charger",
                        value={
                            "from": "2026-02-03T11:00:00Z",
                            "to": "2026-02-10T10:15:00Z",
                            "days": 7,
                            "threshold": 85.0,
                            "minChargeKwh": 1.0,
                            "suspects": [
                                {
                                    "verdict": "CHARGER_SUSPECTED",
                                    "meterId": "M-7",
                                    "vehicleId": None,
                                    "pairings": [
                                        {
                                            "vehicleId": vehicle,
                                            "meterId": "M-7",
                                            "totalAcConsumedKwh": ac,
                                            "totalDcDeliveredKwh": dc,
                                            "efficiencyPct": pct,
                                            "readings": {"vehicle": 180, "meter": 180},
                                            "status": "FAULT_DETECTED",
                                        }
                                        for vehicle, ac, dc, pct in (
                                            ("V-3", 30.0, 21.6, 72.0),
                                            ("V-9", 25.0, 18.5, 74.0),
                                        )
                                    ],
                                }
                            ],
                        },
                    )
                ],
            ),
            400: BAD_PARAMETER,
        },
    )
    def get(self, request):
        params = request.query_params
        days = parse_days(params)
        judgement = _fleet_judgement(params)
        attribution = fleet_attribution(days=days, now=timezone.now(), **judgement)
        body = {**attribution.__dict__, "days": days, **judgement}
        return Response(FleetAttributionSerializer(body).data)
