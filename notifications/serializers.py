"""Wire shape of a webhook endpoint (camelCase via `source=`); the secret is write-only."""

from django.core.validators import URLValidator
from rest_framework import serializers

from alarms.models import AlarmType


class WebhookEndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    url = serializers.URLField(
        max_length=2000,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Where deliveries are POSTed (http or https).",
    )
    secret = serializers.CharField(
        write_only=True,
        min_length=16,
        max_length=200,
        trim_whitespace=False,
        help_text="Signs every body (X-Energy-Signature); at least 16 characters. Never returned.",
    )
    active = serializers.BooleanField(default=True, help_text="Inactive endpoints get nothing.")
    alarmTypes = serializers.ListField(
        source="alarm_types",
        child=serializers.ChoiceField(choices=AlarmType.choices),
        default=list,
        allow_empty=True,
        help_text="Alarm types to notify; empty (the default) means every type.",
    )
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
