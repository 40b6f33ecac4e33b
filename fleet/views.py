"""Fleet API: the vehicle and meter registry, and the vehicle-meter mappings."""

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from api.openapi import VEHICLE_ID, bad_parameters, error_detail, not_found
from api.pagination import INVALID_CURSOR, StrictCursorPagination
from api.params import device_id_or_404
from fleet.filters import MeterFilter, VehicleFilter
from fleet.models import Vehicle
from fleet.selectors import meter_list, vehicle_get, vehicle_list
from fleet.serializers import (
    MappingCreateSerializer,
    MappingSerializer,
    MeterListItemSerializer,
    VehicleDetailSerializer,
    VehicleListItemSerializer,
)
from fleet.services import AssignmentConflict, DeviceNotRegistered, mapping_create


class AssignmentConflictError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The assignment overlaps another one."
    default_code = "assignment_conflict"


class DeviceCursorPagination(StrictCursorPagination):
    """Pages by device id (unique, indexed): no COUNT over the registry, stable under inserts."""

    page_size = 100
    max_page_size = 1000


class VehicleCursorPagination(DeviceCursorPagination):
    ordering = "vehicle_id"


class MeterCursorPagination(DeviceCursorPagination):
    ordering = "meter_id"


FORBIDDEN_WRITE = error_detail(
    "The user is not staff: only staff may write mappings.",
    "You do not have permission to perform this action.",
)
BAD_LIST_PARAMETER = bad_parameters(
    "A filter, `limit` or `cursor` does not parse or is out of range; the body names it.",
    hasMeter="Must be true or false.",
    limit="Must be between 1 and 1000; got 0.",
    cursor=INVALID_CURSOR,
    vehicleId="A device id is 1–64 characters of A–Z a–z 0–9 _ - . :.",
)

DEVICE_DETAILS = {
    "displayName": "Van 1",
    "depot": "North",
    "retired": False,
    "retiredAt": None,
    "createdAt": "2026-02-01T08:00:00Z",
}
VEHICLE_ITEM = {
    "vehicleId": "V-1",
    "currentMeterId": "M-1",
    **DEVICE_DETAILS,
    "batteryCapacityKwh": 75.0,
}
METER_ITEM = {
    "meterId": "M-1",
    "currentVehicleId": "V-1",
    **DEVICE_DETAILS,
    "displayName": "Bay 1 charger",
    "ratedPowerKw": 22.0,
}
MAPPING_EXAMPLE = {
    "vehicleId": "V-1",
    "meterId": "M-2",
    "validFrom": "2026-02-10T10:15:00Z",
    "validTo": None,
}


def _device_list_view(
    *, kind: str, summary: str, serializer, filterset, pagination, queryset, example: dict
) -> type[ListAPIView]:
    """The list view of vehicles or meters, with its OpenAPI description."""
    view = type(
        f"{kind.capitalize()}ListView",
        (ListAPIView,),
        {
            "__module__": __name__,
            "serializer_class": serializer,
            "filterset_class": filterset,
            "pagination_class": pagination,
            "queryset": queryset,
        },
    )
    return extend_schema_view(
        get=extend_schema(
            operation_id=f"fleet_{kind}_list",
            summary=summary,
            description=(
                f"Ordered by {kind} id and cursor-paginated (follow `next`); no total count. "
                f"Retired {kind}s are left out unless `retired=true`."
            ),
            tags=["fleet"],
            responses={200: serializer(many=True), 400: BAD_LIST_PARAMETER},
            examples=[OpenApiExample(f"A {kind}", value=example, response_only=True)],
        )
    )(view)


VehicleListView = _device_list_view(
    kind="vehicle",
    summary="List vehicles with their current meter",
    serializer=VehicleListItemSerializer,
    filterset=VehicleFilter,
    pagination=VehicleCursorPagination,
    queryset=vehicle_list(),
    example=VEHICLE_ITEM,
)
MeterListView = _device_list_view(
    kind="meter",
    summary="List meters with the vehicle each serves now",
    serializer=MeterListItemSerializer,
    filterset=MeterFilter,
    pagination=MeterCursorPagination,
    queryset=meter_list(),
    example=METER_ITEM,
)


class VehicleDetailView(APIView):
    @extend_schema(
        operation_id="fleet_vehicle_retrieve",
        summary="One vehicle: its current meter and assignment history",
        tags=["fleet"],
        parameters=[VEHICLE_ID],
        responses={
            200: VehicleDetailSerializer,
            404: not_found("vehicle"),
        },
        examples=[
            OpenApiExample(
                "A vehicle moved from meter M-1 to M-2",
                value={
                    **VEHICLE_ITEM,
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
        device_id_or_404(vehicleId, kind="vehicle")
        try:
            vehicle = vehicle_get(vehicle_id=vehicleId)
        except Vehicle.DoesNotExist:
            raise NotFound(f"No vehicle {vehicleId!r}.") from None
        return Response(VehicleDetailSerializer(vehicle).data)


def _mapping_schema(*, operation_id: str, summary: str):
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=(
            "Make the meter serve the vehicle from `validFrom` (default now). The vehicle's "
            "current assignment, and the meter's (if it served another vehicle), end at "
            "`validFrom`. Unknown vehicle or meter ids are registered (with "
            "TELEMETRY_AUTO_REGISTER off they are a 400 naming the field). Staff only."
        ),
        tags=["fleet"],
        request=MappingCreateSerializer,
        responses={
            201: OpenApiResponse(MappingSerializer, description="The assignment was created."),
            200: OpenApiResponse(
                MappingSerializer,
                description="The meter already serves the vehicle: the current assignment.",
            ),
            400: bad_parameters(
                "The body is not a JSON object of valid fields (an id that is not a whole device "
                "id, a `validFrom` without offset or out of range, a missing field, a wrong type), "
                "or a device is unknown while TELEMETRY_AUTO_REGISTER is off. Nothing changed.",
                validFrom="Give a UTC offset (e.g. 2026-02-10T10:15:00Z); a time without one is "
                "ambiguous.",
                vehicleId="A device id is 1–64 characters of A–Z a–z 0–9 _ - . :.",
                meterId="This field is required.",
                non_field_errors="Invalid data. Expected a dictionary, but got list.",
            ),
            403: FORBIDDEN_WRITE,
            409: error_detail(
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
                register_unknown=settings.TELEMETRY_AUTO_REGISTER,
            )
        except DeviceNotRegistered as error:
            field, device_id = error.args
            kind = "vehicle" if field == "vehicleId" else "meter"
            message = f"No {kind} {device_id!r} is registered (TELEMETRY_AUTO_REGISTER is off)."
            raise ValidationError({field: [message]}) from None
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
