"""Fleet API: the vehicle and meter registry, and the vehicle-meter mappings."""

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet.filters import MeterFilter, VehicleFilter
from fleet.models import Vehicle
from fleet.selectors import meter_list, vehicle_get, vehicle_list
from fleet.serializers import (
    FleetErrorSerializer,
    FleetFilterErrorSerializer,
    MappingCreateSerializer,
    MappingSerializer,
    MappingValidationErrorSerializer,
    MeterListItemSerializer,
    VehicleDetailSerializer,
    VehicleListItemSerializer,
)
from fleet.services import AssignmentConflict, mapping_create


class AssignmentConflictError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The assignment overlaps another one."
    default_code = "assignment_conflict"


class DeviceCursorPagination(CursorPagination):
    """Pages by device id (unique, indexed): no COUNT over the registry, stable under inserts."""

    page_size = 100
    page_size_query_param = "pageSize"
    max_page_size = 1000


class VehicleCursorPagination(DeviceCursorPagination):
    ordering = "vehicle_id"


class MeterCursorPagination(DeviceCursorPagination):
    ordering = "meter_id"


def _error(description: str, detail: str) -> OpenApiResponse:
    return OpenApiResponse(
        FleetErrorSerializer,
        description=description,
        examples=[OpenApiExample(description, value={"detail": detail}, response_only=True)],
    )


UNAUTHENTICATED = _error(
    "No credentials (send a session cookie or `Authorization: Token <token>`).",
    "Authentication credentials were not provided.",
)
FORBIDDEN_READ = _error(
    "The credentials are not valid.", "You do not have permission to perform this action."
)
FORBIDDEN_WRITE = _error(
    "The user is not staff: only staff may write mappings.",
    "You do not have permission to perform this action.",
)
INVALID_CURSOR = _error("The `cursor` parameter is not one this API issued.", "Invalid cursor")
FILTER_ERROR = OpenApiResponse(
    FleetFilterErrorSerializer,
    description="A filter value does not parse.",
    examples=[
        OpenApiExample(
            "A filter that does not parse",
            value={"hasMeter": ["Must be true or false."]},
            response_only=True,
        )
    ],
)

VEHICLE_ITEM = {
    "vehicleId": "V-1",
    "currentMeterId": "M-1",
    "createdAt": "2026-02-01T08:00:00Z",
}
METER_ITEM = {"meterId": "M-1", "currentVehicleId": "V-1", "createdAt": "2026-02-01T08:00:00Z"}
MAPPING_EXAMPLE = {
    "vehicleId": "V-1",
    "meterId": "M-2",
    "validFrom": "2026-02-10T10:15:00Z",
    "validTo": None,
}


@extend_schema_view(
    get=extend_schema(
        operation_id="fleet_vehicle_list",
        summary="List vehicles with their current meter",
        description=("Ordered by vehicle id and cursor-paginated (follow `next`); no total count."),
        tags=["fleet"],
        responses={
            200: VehicleListItemSerializer(many=True),
            400: FILTER_ERROR,
            401: UNAUTHENTICATED,
            403: FORBIDDEN_READ,
            404: INVALID_CURSOR,
        },
        examples=[OpenApiExample("A vehicle", value=VEHICLE_ITEM, response_only=True)],
    )
)
class VehicleListView(ListAPIView):
    serializer_class = VehicleListItemSerializer
    filterset_class = VehicleFilter
    pagination_class = VehicleCursorPagination

    def get_queryset(self):
        return vehicle_list()


@extend_schema_view(
    get=extend_schema(
        operation_id="fleet_meter_list",
        summary="List meters with the vehicle each serves now",
        description="Ordered by meter id and cursor-paginated (follow `next`); no total count.",
        tags=["fleet"],
        responses={
            200: MeterListItemSerializer(many=True),
            400: FILTER_ERROR,
            401: UNAUTHENTICATED,
            403: FORBIDDEN_READ,
            404: INVALID_CURSOR,
        },
        examples=[OpenApiExample("A meter", value=METER_ITEM, response_only=True)],
    )
)
class MeterListView(ListAPIView):
    serializer_class = MeterListItemSerializer
    filterset_class = MeterFilter
    pagination_class = MeterCursorPagination

    def get_queryset(self):
        return meter_list()


class VehicleDetailView(APIView):
    @extend_schema(
        operation_id="fleet_vehicle_retrieve",
        summary="One vehicle: its current meter and assignment history",
        tags=["fleet"],
        responses={
            200: VehicleDetailSerializer,
            401: UNAUTHENTICATED,
            403: FORBIDDEN_READ,
            404: _error("No vehicle has this id.", "No vehicle 'V-404'."),
        },
        examples=[
            OpenApiExample(
                "A vehicle moved from meter M-1 to M-2",
                value={
                    "vehicleId": "V-1",
                    "createdAt": "2026-02-01T08:00:00Z",
                    "currentMeterId": "M-2",
                    "assignments": [
                        {"meterId": "M-2", "validFrom": "2026-02-10T10:15:00Z", "validTo": None},
                        {
                            "meterId": "M-1",
                            "validFrom": "2026-02-01T08:00:00Z",
                            "validTo": "2026-02-10T10:15:00Z",
                        },
                    ],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request, vehicleId: str):  # the path parameter is camelCase
        try:
            vehicle = vehicle_get(vehicle_id=vehicleId)
        except Vehicle.DoesNotExist:
            raise NotFound(f"No vehicle '{vehicleId}'.") from None
        return Response(VehicleDetailSerializer(vehicle).data)


def _mapping_schema(*, operation_id: str, summary: str):
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=(
            "Make the meter serve the vehicle from `validFrom` (default now). The vehicle's "
            "current assignment, and the meter's (if it served another vehicle), end at "
            "`validFrom`. "
            "Unknown vehicle or meter ids are registered. Staff only."
        ),
        tags=["fleet"],
        request=MappingCreateSerializer,
        responses={
            201: OpenApiResponse(MappingSerializer, description="The assignment was created."),
            200: OpenApiResponse(
                MappingSerializer,
                description="The meter already serves the vehicle: the current assignment.",
            ),
            400: OpenApiResponse(
                MappingValidationErrorSerializer,
                description="An id or `validFrom` does not parse.",
                examples=[
                    OpenApiExample(
                        "A validFrom without UTC offset",
                        value={
                            "validFrom": [
                                "Give a UTC offset (e.g. 2026-02-10T10:15:00Z); "
                                "a time without one is ambiguous."
                            ]
                        },
                        response_only=True,
                    )
                ],
            ),
            401: UNAUTHENTICATED,
            403: FORBIDDEN_WRITE,
            409: _error(
                "The period overlaps an assignment that cannot simply be closed "
                "(e.g. a back-dated start cutting into a past assignment).",
                "Vehicle V-1 cannot be assigned to meter M-2 from 2026-02-05T00:00:00+00:00: "
                "that overlaps the assignment of vehicle V-1 to meter M-1 from "
                "2026-02-01 08:00:00+0000 to 2026-02-10 10:15:00+0000.",
            ),
        },
        examples=[
            OpenApiExample(
                "Assign from a given moment",
                value={"vehicleId": "V-1", "meterId": "M-2", "validFrom": "2026-02-10T10:15:00Z"},
                request_only=True,
            ),
            OpenApiExample(
                "Assign from now", value={"vehicleId": "V-1", "meterId": "M-2"}, request_only=True
            ),
            OpenApiExample("The assignment", value=MAPPING_EXAMPLE, response_only=True),
        ],
    )


class MappingCreateView(APIView):
    permission_classes = [IsAdminUser]

    @_mapping_schema(operation_id="fleet_mapping_create", summary="Assign a meter to a vehicle")
    def post(self, request):
        serializer = MappingCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            result = mapping_create(
                vehicle_id=data["vehicle_id"],
                meter_id=data["meter_id"],
                valid_from=data.get("valid_from"),
            )
        except AssignmentConflict as conflict:
            raise AssignmentConflictError("; ".join(conflict.messages)) from None
        return Response(
            MappingSerializer(result.assignment).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class MappingCreateAliasView(MappingCreateView):
    @_mapping_schema(
        operation_id="telemetry_map_create",
        summary="Assign a meter to a vehicle (alias of /v1/fleet/mappings)",
    )
    def post(self, request):
        return super().post(request)
