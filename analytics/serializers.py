"""Wire shapes of the analytics, status and history reads (camelCase via `source=`).

`from` is a Python keyword, so the window's ends are added in `get_fields()` rather than declared
as class attributes; the order of the keys still follows the contract.
"""

from rest_framework import serializers

from analytics.selectors import AttributionVerdict, PerformanceStatus


def _with_window(fields: dict, *, after: str | None) -> dict:
    """Insert `from` / `to` (sources `start` / `end`) after the field `after` (first if None)."""
    window = {
        "from": serializers.DateTimeField(
            source="start", help_text="Start of the window (inclusive), UTC."
        ),
        "to": serializers.DateTimeField(source="end", help_text="End of the window, UTC."),
    }
    ordered: dict = {} if after is not None else dict(window)
    for name, field in fields.items():
        ordered[name] = field
        if name == after:
            ordered.update(window)
    return ordered


class PerformanceReadingCountsSerializer(serializers.Serializer):
    vehicle = serializers.IntegerField(
        source="vehicle_reading_count", help_text="Vehicle (DC) readings in the window."
    )
    meter = serializers.IntegerField(
        source="meter_reading_count",
        help_text="Meter (AC) readings counted: each meter only inside its assignment.",
    )


class VehiclePerformanceSerializer(serializers.Serializer):
    vehicleId = serializers.CharField(source="vehicle_id")
    meterIds = serializers.ListField(
        source="meter_ids",
        child=serializers.CharField(),
        help_text="Meters assigned to the vehicle at some time in the window, oldest first.",
    )
    totalAcConsumedKwh = serializers.FloatField(
        source="ac_kwh", help_text="AC energy of the assigned meters (4 decimals)."
    )
    totalDcDeliveredKwh = serializers.FloatField(
        source="dc_kwh", help_text="DC energy delivered to the battery (4 decimals)."
    )
    efficiencyPct = serializers.FloatField(
        source="efficiency_pct",
        allow_null=True,
        help_text="100 × DC / AC (2 decimals); null when status is INSUFFICIENT_DATA or IDLE.",
    )
    avgBatteryTempC = serializers.FloatField(
        source="avg_battery_temp_c",
        allow_null=True,
        help_text="Mean battery temperature of the vehicle readings; null without readings.",
    )
    readings = PerformanceReadingCountsSerializer(source="*")
    status = serializers.ChoiceField(
        choices=PerformanceStatus.choices,
        help_text=(
            "The first that applies: INSUFFICIENT_DATA: no meter reading or no vehicle reading; "
            "IDLE: AC below minChargeKwh (nothing charged, no efficiency); ANOMALY: DC > AC; "
            "FAULT_DETECTED: efficiency below the threshold (AC with no DC is 0 %); OK."
        ),
    )

    def get_fields(self):
        return _with_window(super().get_fields(), after="vehicleId")


class FleetInefficientPageSerializer(serializers.Serializer):
    hours = serializers.IntegerField(help_text="Whole hour buckets in the window.")
    threshold = serializers.FloatField(help_text="Efficiency threshold, percent.")
    count = serializers.IntegerField(help_text="Vehicles below the threshold (all pages).")
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    next = serializers.URLField(allow_null=True, help_text="URL of the next page, or null.")
    previous = serializers.URLField(allow_null=True, help_text="URL of the previous page, or null.")
    results = VehiclePerformanceSerializer(many=True, help_text="Worst efficiency first.")

    def get_fields(self):
        return _with_window(super().get_fields(), after=None)


class FleetStatusCountsSerializer(serializers.Serializer):
    OK = serializers.IntegerField()
    FAULT_DETECTED = serializers.IntegerField()
    ANOMALY = serializers.IntegerField()
    IDLE = serializers.IntegerField()
    INSUFFICIENT_DATA = serializers.IntegerField()


class FleetSummarySerializer(serializers.Serializer):
    hours = serializers.IntegerField(help_text="Whole hour buckets in the window.")
    threshold = serializers.FloatField(help_text="Efficiency threshold, percent.")
    vehicles = serializers.IntegerField(source="vehicle_count", help_text="Vehicles registered.")
    totalAcConsumedKwh = serializers.FloatField(
        source="ac_kwh", help_text="AC of meters while assigned to a vehicle (4 decimals)."
    )
    totalDcDeliveredKwh = serializers.FloatField(
        source="dc_kwh", help_text="DC delivered to all vehicles (4 decimals)."
    )
    efficiencyPct = serializers.FloatField(
        source="efficiency_pct", allow_null=True, help_text="100 × DC / AC; null without AC."
    )
    byStatus = FleetStatusCountsSerializer(source="by_status", help_text="Vehicles per status.")

    def get_fields(self):
        return _with_window(super().get_fields(), after=None)


class DepotSummarySerializer(FleetSummarySerializer):
    """A depot's share of the summary: the summary's figures, without its window."""

    hours = None
    threshold = None
    depot = serializers.CharField(
        allow_null=True, help_text="The depot; null: vehicles without one."
    )

    def get_fields(self):
        return serializers.Serializer.get_fields(self)


class FleetDepotsSerializer(serializers.Serializer):
    hours = serializers.IntegerField(help_text="Whole hour buckets in the window.")
    threshold = serializers.FloatField(help_text="Efficiency threshold, percent.")
    depots = DepotSummarySerializer(many=True, help_text="Per depot, in name order; null last.")

    def get_fields(self):
        return _with_window(super().get_fields(), after=None)


def _live_status_times() -> tuple[serializers.Field, ...]:
    """The last fields of a live status (`timestamp`, `receivedAt`, `stale`), made where the
    serializer declares them so they keep their place in its order."""
    return (
        serializers.DateTimeField(
            source="recorded_at", help_text="When the newest reading was taken."
        ),
        serializers.DateTimeField(source="received_at", help_text="When the service stored it."),
        serializers.BooleanField(
            help_text="receivedAt is older than TELEMETRY_STALE_AFTER_SECONDS (default 300)."
        ),
    )


class VehicleLiveStatusSerializer(serializers.Serializer):
    vehicleId = serializers.CharField(source="vehicle_code")
    soc = serializers.FloatField(source="soc_pct", help_text="State of charge, %.")
    kwhDeliveredDc = serializers.FloatField(
        source="energy_kwh", help_text="DC energy of the newest reading's interval."
    )
    batteryTemp = serializers.FloatField(source="battery_temp_c", help_text="°C.")
    timestamp, receivedAt, stale = _live_status_times()


class MeterLiveStatusSerializer(serializers.Serializer):
    meterId = serializers.CharField(source="meter_code")
    kwhConsumedAc = serializers.FloatField(
        source="energy_kwh", help_text="AC energy of the newest reading's interval."
    )
    voltage = serializers.FloatField(source="voltage_v", help_text="Volts.")
    timestamp, receivedAt, stale = _live_status_times()


class VehicleHistoryReadingSerializer(serializers.Serializer):
    vehicleId = serializers.CharField(source="vehicle_code")
    soc = serializers.FloatField(source="soc_pct")
    kwhDeliveredDc = serializers.FloatField(source="energy_kwh")
    batteryTemp = serializers.FloatField(source="battery_temp_c")
    timestamp = serializers.DateTimeField(source="recorded_at")


class MeterHistoryReadingSerializer(serializers.Serializer):
    meterId = serializers.CharField(source="meter_code")
    kwhConsumedAc = serializers.FloatField(source="energy_kwh")
    voltage = serializers.FloatField(source="voltage_v")
    timestamp = serializers.DateTimeField(source="recorded_at")


_STATUS_HELP = VehiclePerformanceSerializer._declared_fields["status"].help_text


class SeriesBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Start of the bucket (inclusive), UTC.")
    end = serializers.DateTimeField(help_text="End of the bucket (exclusive), UTC.")
    totalAcConsumedKwh = serializers.FloatField(source="ac_kwh")
    totalDcDeliveredKwh = serializers.FloatField(source="dc_kwh")
    efficiencyPct = serializers.FloatField(source="efficiency_pct", allow_null=True)
    avgBatteryTempC = serializers.FloatField(source="avg_battery_temp_c", allow_null=True)
    status = serializers.ChoiceField(choices=PerformanceStatus.choices, help_text=_STATUS_HELP)


class JudgementSerializer(serializers.Serializer):
    """The parameters of the status rule an answer was judged with."""

    threshold = serializers.FloatField(help_text="Efficiency threshold, percent.")
    minChargeKwh = serializers.FloatField(
        source="min_charge_kwh", help_text="AC (kWh) below which a window is IDLE."
    )


class VehicleSeriesSerializer(JudgementSerializer):
    vehicleId = serializers.CharField(source="vehicle_id")
    bucket = serializers.CharField(help_text="hour or day (UTC).")
    meterIds = serializers.ListField(source="meter_ids", child=serializers.CharField())
    items = SeriesBucketSerializer(many=True, help_text="One per bucket, oldest first.")

    def get_fields(self):
        return _with_window(super().get_fields(), after="vehicleId")


class FleetSeriesSerializer(JudgementSerializer):
    hours = serializers.IntegerField(help_text="Whole hour buckets in the window.")
    bucket = serializers.CharField(help_text="hour or day (UTC).")
    items = SeriesBucketSerializer(many=True, help_text="One per bucket, oldest first.")

    def get_fields(self):
        return _with_window(super().get_fields(), after=None)


class PairingSerializer(serializers.Serializer):
    vehicleId = serializers.CharField(source="vehicle_id")
    meterId = serializers.CharField(source="meter_id")
    totalAcConsumedKwh = serializers.FloatField(
        source="ac_kwh", help_text="AC of the meter while assigned to the vehicle."
    )
    totalDcDeliveredKwh = serializers.FloatField(
        source="dc_kwh", help_text="DC of the vehicle while assigned to the meter."
    )
    efficiencyPct = serializers.FloatField(source="efficiency_pct", allow_null=True)
    readings = PerformanceReadingCountsSerializer(source="*")
    status = serializers.ChoiceField(choices=PerformanceStatus.choices, help_text=_STATUS_HELP)


class SuspectSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(
        choices=AttributionVerdict.choices,
        help_text="CHARGER_SUSPECTED: the meter was low (FAULT_DETECTED) with two or more "
        "vehicles; VEHICLE_SUSPECTED: the vehicle was low on two or more meters.",
    )
    meterId = serializers.CharField(
        source="meter_id", allow_null=True, help_text="The suspected meter (charger)."
    )
    vehicleId = serializers.CharField(
        source="vehicle_id", allow_null=True, help_text="The suspected vehicle."
    )
    pairings = PairingSerializer(
        many=True, help_text="The evidence: every pairing of the suspect in the window."
    )


class FleetAttributionSerializer(JudgementSerializer):
    days = serializers.IntegerField()
    suspects = SuspectSerializer(many=True, help_text="Chargers first, then vehicles.")

    def get_fields(self):
        return _with_window(super().get_fields(), after=None)
