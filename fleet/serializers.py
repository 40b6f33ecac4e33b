"""Wire shapes of the fleet API: camelCase field names mapped with `source=`."""

from django.utils import timezone
from rest_framework import serializers

from api.params import EARLIEST, LATEST, instant_in_range
from fleet.models import device_id_validator


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time that must carry a UTC offset; a naive one is refused, not guessed."""

    default_error_messages = {
        "naive": "Give a UTC offset (e.g. 2026-02-10T10:15:00Z); a time without one is ambiguous.",
        "range": f"Out of range: give a moment between {EARLIEST.isoformat()} and "
        f"{LATEST.isoformat()}.",
    }

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            self.fail("naive")
        if instant_in_range(value) is None:
            self.fail("range")
        return super().enforce_timezone(value)


class DeviceIdField(serializers.CharField):
    """A device id, the whole string: no trimming, no coercion of numbers to text."""

    default_error_messages = {"not_text": 'A device id is a string (e.g. "V-1").'}

    def __init__(self, **kwargs):
        super().__init__(
            max_length=64, trim_whitespace=False, validators=[device_id_validator], **kwargs
        )

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_text")
        return super().to_internal_value(data)


class DeviceDetailsSerializer(serializers.Serializer):
    """The fields vehicles and meters share: people's name, depot, retirement."""

    displayName = serializers.CharField(
        source="display_name", help_text="A name for people; empty if none was given."
    )
    depot = serializers.CharField(help_text="The depot or site; empty if none was given.")
    retired = serializers.BooleanField(help_text="Retired: kept with its history, not assigned.")
    retiredAt = serializers.DateTimeField(
        source="retired_at", allow_null=True, help_text="When it was retired; null in service."
    )
    createdAt = serializers.DateTimeField(source="created_at", help_text="When it was registered.")


class VehicleListItemSerializer(DeviceDetailsSerializer):
    vehicleId = serializers.CharField(source="vehicle_id", help_text="The vehicle's id.")
    currentMeterId = serializers.CharField(
        source="current_meter_id", allow_null=True, help_text="The meter serving it now, if any."
    )
    batteryCapacityKwh = serializers.FloatField(
        source="battery_capacity_kwh",
        allow_null=True,
        help_text="Battery capacity (kWh), if known.",
    )


class MeterListItemSerializer(DeviceDetailsSerializer):
    meterId = serializers.CharField(source="meter_id", help_text="The meter's id.")
    currentVehicleId = serializers.CharField(
        source="current_vehicle_id", allow_null=True, help_text="The vehicle it serves now, if any."
    )
    ratedPowerKw = serializers.FloatField(
        source="rated_power_kw", allow_null=True, help_text="Rated power (kW), if known."
    )


class VehicleAssignmentSerializer(serializers.Serializer):
    meterId = serializers.CharField(source="meter.meter_id")
    validFrom = serializers.DateTimeField(source="valid_from")
    validTo = serializers.DateTimeField(
        source="valid_to", allow_null=True, help_text="Null while the assignment is current."
    )


class VehicleDetailSerializer(VehicleListItemSerializer):
    assignments = VehicleAssignmentSerializer(
        source="assignment_history", many=True, help_text="Every assignment, newest first."
    )


class MappingCreateSerializer(serializers.Serializer):
    vehicleId = DeviceIdField(
        source="vehicle_id", help_text="Registered if unknown (TELEMETRY_AUTO_REGISTER)."
    )
    meterId = DeviceIdField(
        source="meter_id", help_text="Registered if unknown (TELEMETRY_AUTO_REGISTER)."
    )
    validFrom = AwareDateTimeField(
        source="valid_from",
        required=False,
        help_text="Start of the assignment, with a UTC offset; default now.",
    )


class MappingSerializer(serializers.Serializer):
    vehicleId = serializers.CharField(source="vehicle.vehicle_id")
    meterId = serializers.CharField(source="meter.meter_id")
    validFrom = serializers.DateTimeField(source="valid_from")
    validTo = serializers.DateTimeField(
        source="valid_to", allow_null=True, help_text="Null while the assignment is current."
    )
