"""Wire shape of an alarm (camelCase, mapped with `source=`); also the body of a notification."""

from rest_framework import serializers

from alarms.models import AlarmType


class AlarmSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=AlarmType.choices)
    subject = serializers.SerializerMethodField(
        help_text="What the alarm is about: `vehicle` or `meter` (DEVICE_OFFLINE of a meter)."
    )
    vehicleId = serializers.CharField(
        source="vehicle.vehicle_id", allow_null=True, default=None, help_text="The vehicle."
    )
    meterId = serializers.CharField(
        source="meter.meter_id",
        allow_null=True,
        default=None,
        help_text="The meter concerned: the one serving the vehicle when the alarm opened.",
    )
    active = serializers.BooleanField(source="is_active", help_text="Not cleared yet.")
    openedAt = serializers.DateTimeField(source="opened_at")
    clearedAt = serializers.DateTimeField(source="cleared_at", allow_null=True)
    acknowledgedAt = serializers.DateTimeField(source="acknowledged_at", allow_null=True)
    acknowledgedBy = serializers.CharField(
        source="acknowledged_by.username",
        allow_null=True,
        default=None,
        help_text="Username of the staff member who acknowledged it.",
    )
    figures = serializers.JSONField(help_text="The figures when the alarm opened.")
    latest = serializers.JSONField(help_text="The figures of the newest evaluation.")

    def get_subject(self, alarm) -> str:
        return alarm.subject.lower()
