"""Staff API of the webhook endpoints that alarm notifications go to."""

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from api.openapi import error_detail, field_errors_serializer
from api.pagination import StrictCursorPagination
from notifications.models import WebhookEndpoint
from notifications.serializers import WebhookEndpointSerializer
from notifications.services import (
    EndpointChange,
    endpoint_create,
    endpoint_delete,
    endpoint_update,
)

ENDPOINT_EXAMPLE = {
    "id": 1,
    "url": "https://ops.example.com/hooks/energy",
    "active": True,
    "alarmTypes": ["LOW_EFFICIENCY", "DEVICE_OFFLINE"],
    "createdAt": "2026-02-10T10:15:00Z",
}
CREATE_EXAMPLE = {
    "url": "https://ops.example.com/hooks/energy",
    "secret": "change-me-to-a-long-random-secret",
    "active": True,
    "alarmTypes": ["LOW_EFFICIENCY", "DEVICE_OFFLINE"],
}


FORBIDDEN = error_detail(
    "Not staff: only staff manage webhook endpoints.",
    "You do not have permission to perform this action.",
)
NOT_FOUND = error_detail("No endpoint has this id.", "No webhook endpoint 404.")
ENDPOINT_ERRORS = field_errors_serializer(
    "WebhookEndpointErrorSerializer", ["url", "secret", "active", "alarmTypes", "limit", "cursor"]
)
INVALID = OpenApiResponse(
    ENDPOINT_ERRORS,
    description="A field is missing or does not parse; each one at fault is named.",
    examples=[
        OpenApiExample(
            "A bad URL, a short secret and an unknown type",
            value={
                "url": ["Enter a valid URL."],
                "secret": ["Ensure this field has at least 16 characters."],
                "alarmTypes": {"0": ['"LOW" is not a valid choice.']},
            },
            response_only=True,
        )
    ],
)


class EndpointPagination(StrictCursorPagination):
    ordering = "id"
    position_kind = "integer"
    page_size = 100
    max_page_size = 1000


@extend_schema_view(
    get=extend_schema(
        operation_id="notification_endpoint_list",
        summary="List webhook endpoints (staff)",
        description="By id, cursor-paginated (`limit` 1–1000, default 100). Secrets are never "
        "returned.",
        tags=["notifications"],
        responses={
            200: OpenApiResponse(
                WebhookEndpointSerializer(many=True),
                examples=[OpenApiExample("An endpoint", value=ENDPOINT_EXAMPLE)],
            ),
            400: OpenApiResponse(
                ENDPOINT_ERRORS,
                description="`limit` does not parse or is out of range.",
                examples=[
                    OpenApiExample(
                        "A limit out of range",
                        value={"limit": ["Must be between 1 and 1000; got 0."]},
                        response_only=True,
                    )
                ],
            ),
            403: FORBIDDEN,
        },
    )
)
class EndpointListView(ListAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = WebhookEndpointSerializer
    pagination_class = EndpointPagination
    filter_backends: list = []
    queryset = WebhookEndpoint.objects.all()

    @extend_schema(
        operation_id="notification_endpoint_create",
        summary="Add a webhook endpoint (staff)",
        description=(
            "Every alarm opened or cleared from now on is POSTed to `url` as JSON, signed with "
            "`X-Energy-Signature: sha256=<hex HMAC-SHA256 of the raw body keyed with secret>` and "
            "identified by `X-Energy-Delivery` (the same on every retry)."
        ),
        tags=["notifications"],
        request=WebhookEndpointSerializer,
        examples=[OpenApiExample("An endpoint", value=CREATE_EXAMPLE, request_only=True)],
        responses={
            201: OpenApiResponse(
                WebhookEndpointSerializer,
                examples=[OpenApiExample("Created", value=ENDPOINT_EXAMPLE, response_only=True)],
            ),
            400: INVALID,
            403: FORBIDDEN,
        },
    )
    def post(self, request):
        serializer = WebhookEndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = endpoint_create(**serializer.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailView(APIView):
    permission_classes = [IsAdminUser]

    def _endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        if endpoint_id.isascii() and endpoint_id.isdigit() and len(endpoint_id) <= 18:
            endpoint = WebhookEndpoint.objects.filter(pk=int(endpoint_id)).first()
            if endpoint is not None:
                return endpoint
        raise NotFound(f"No webhook endpoint {endpoint_id}.")

    @extend_schema(
        operation_id="notification_endpoint_retrieve",
        summary="One webhook endpoint (staff)",
        tags=["notifications"],
        responses={
            200: OpenApiResponse(
                WebhookEndpointSerializer,
                examples=[OpenApiExample("An endpoint", ENDPOINT_EXAMPLE)],
            ),
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request, endpointId: str):
        return Response(WebhookEndpointSerializer(self._endpoint(endpointId)).data)

    @extend_schema(
        operation_id="notification_endpoint_update",
        summary="Change a webhook endpoint (staff)",
        description="Only the fields given change. Pending deliveries go to the new URL, signed "
        "with the new secret.",
        tags=["notifications"],
        request=WebhookEndpointSerializer(partial=True),
        examples=[
            OpenApiExample("Pause it", value={"active": False}, request_only=True),
            OpenApiExample(
                "Only offline alarms", value={"alarmTypes": ["DEVICE_OFFLINE"]}, request_only=True
            ),
        ],
        responses={
            200: OpenApiResponse(
                WebhookEndpointSerializer,
                examples=[
                    OpenApiExample(
                        "Paused", value={**ENDPOINT_EXAMPLE, "active": False}, response_only=True
                    )
                ],
            ),
            400: INVALID,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def patch(self, request, endpointId: str):
        endpoint = self._endpoint(endpointId)
        serializer = WebhookEndpointSerializer(endpoint, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = endpoint_update(
            endpoint=endpoint, change=EndpointChange(**serializer.validated_data)
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="notification_endpoint_delete",
        summary="Delete a webhook endpoint (staff)",
        description="Its pending deliveries are dropped with it.",
        tags=["notifications"],
        responses={
            204: OpenApiResponse(description="Deleted."),
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def delete(self, request, endpointId: str):
        endpoint_delete(endpoint=self._endpoint(endpointId))
        return Response(status=status.HTTP_204_NO_CONTENT)
