from django.db import models
from django.db.models import Q
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey

from api.times import display_time
from fleet.models import Meter, Vehicle, device_id_validator

# The telemetry tables refer to devices without database foreign keys (`db_constraint=False`): an
# FK check takes a KEY SHARE lock on the device row for every inserted row, which under concurrent
# ingestion of the same devices becomes MultiXact contention on the hot path. Devices are resolved
# (and registered) inside the ingest transaction, and the ORM's on_delete still guards deletes.


class ReadingQuerySet(models.QuerySet):
    def for_device(self, device) -> "ReadingQuerySet":
        return self.filter(device=device)

    def between(self, start, end) -> "ReadingQuerySet":
        """Readings with start <= recorded_at < end."""
        return self.filter(recorded_at__gte=start, recorded_at__lt=end)


class MeterReading(models.Model):
    """One row per meter reading: the AC energy of one interval, as the meter reported it.

    Append-only. On PostgreSQL the table is partitioned by day on `recorded_at` and its primary key
    is (meter_id, recorded_at) (see migration 0001); `id` exists for the admin only.
    """

    device = models.ForeignKey(
        Meter, on_delete=models.PROTECT, db_column="meter_id", db_constraint=False
    )
    recorded_at = models.DateTimeField()
    energy_kwh = models.FloatField("AC energy (kWh)")
    voltage_v = models.FloatField("voltage (V)")

    objects = ReadingQuerySet.as_manager()

    class Meta:
        constraints = [
            # Idempotent ingestion, and vehicle_performance()'s range scan per device.
            models.UniqueConstraint(
                fields=["device", "recorded_at"], name="telemetry_meterreading_one_per_instant"
            ),
            models.CheckConstraint(
                condition=Q(energy_kwh__gte=0), name="telemetry_meterreading_energy_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(voltage_v__gte=0, voltage_v__lte=2000),
                name="telemetry_meterreading_voltage_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.device} at {display_time(self.recorded_at)}"


class VehicleReading(models.Model):
    """One row per vehicle reading: the DC energy of one interval, state of charge, temperature.

    Append-only; partitioned like `MeterReading`.
    """

    device = models.ForeignKey(
        Vehicle, on_delete=models.PROTECT, db_column="vehicle_id", db_constraint=False
    )
    recorded_at = models.DateTimeField()
    energy_kwh = models.FloatField("DC energy (kWh)")
    soc_pct = models.FloatField("state of charge (%)")
    battery_temp_c = models.FloatField("battery temperature (°C)")

    objects = ReadingQuerySet.as_manager()

    class Meta:
        constraints = [
            # Idempotent ingestion, and vehicle_performance()'s range scan per device.
            models.UniqueConstraint(
                fields=["device", "recorded_at"], name="telemetry_vehiclereading_one_per_instant"
            ),
            models.CheckConstraint(
                condition=Q(energy_kwh__gte=0),
                name="telemetry_vehiclereading_energy_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(soc_pct__gte=0, soc_pct__lte=100),
                name="telemetry_vehiclereading_soc_range",
            ),
            models.CheckConstraint(
                condition=Q(battery_temp_c__gte=-60, battery_temp_c__lte=150),
                name="telemetry_vehiclereading_temp_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.device} at {display_time(self.recorded_at)}"


class MeterStatus(models.Model):
    """One row per meter: the newest reading accepted (it only ever moves forward in time)."""

    device = models.OneToOneField(
        Meter,
        on_delete=models.CASCADE,
        primary_key=True,
        db_column="meter_id",
        db_constraint=False,
        related_name="status",
    )
    recorded_at = models.DateTimeField()
    energy_kwh = models.FloatField("AC energy (kWh)")
    voltage_v = models.FloatField("voltage (V)")
    received_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "meter statuses"
        # No secondary index, on purpose: every accepted reading updates this row, and with only
        # the primary key indexed (and fillfactor 70, migration 0002) PostgreSQL updates it in
        # place (HOT). Lists filter one row per device, a short scan in primary-key order.

    def __str__(self) -> str:
        return f"{self.device} at {display_time(self.recorded_at)}"


class VehicleStatus(models.Model):
    """One row per vehicle: the newest reading accepted (it only ever moves forward in time)."""

    device = models.OneToOneField(
        Vehicle,
        on_delete=models.CASCADE,
        primary_key=True,
        db_column="vehicle_id",
        db_constraint=False,
        related_name="status",
    )
    recorded_at = models.DateTimeField()
    energy_kwh = models.FloatField("DC energy (kWh)")
    soc_pct = models.FloatField("state of charge (%)")
    battery_temp_c = models.FloatField("battery temperature (°C)")
    received_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "vehicle statuses"
        # No secondary index, on purpose: see MeterStatus.

    def __str__(self) -> str:
        return f"{self.device} at {display_time(self.recorded_at)}"


class MeterHourly(models.Model):
    """One row per meter and hour: the sums of the readings stored for that hour.

    Maintained in the ingest transaction from the rows the history insert reported as new, so a
    duplicate never counts and a late reading lands in its own (closed) hour.
    """

    device = models.ForeignKey(
        Meter, on_delete=models.CASCADE, db_column="meter_id", db_constraint=False
    )
    hour = models.DateTimeField()
    energy_kwh = models.FloatField("AC energy (kWh)")
    reading_count = models.PositiveIntegerField()

    class Meta:
        verbose_name_plural = "meter hourly rollups"
        constraints = [
            # The ingest upsert's conflict target, and the per-device hour range scan.
            models.UniqueConstraint(fields=["device", "hour"], name="telemetry_meterhourly_key"),
        ]
        indexes = [
            # Fleet-wide aggregates over a window of hours.
            models.Index(fields=["hour"], name="telemetry_mhourly_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.device}, hour from {display_time(self.hour)}"


class VehicleHourly(models.Model):
    """One row per vehicle and hour: the sums of the readings stored for that hour."""

    device = models.ForeignKey(
        Vehicle, on_delete=models.CASCADE, db_column="vehicle_id", db_constraint=False
    )
    hour = models.DateTimeField()
    energy_kwh = models.FloatField("DC energy (kWh)")
    battery_temp_sum_c = models.FloatField("sum of battery temperatures (°C)")
    reading_count = models.PositiveIntegerField()

    class Meta:
        verbose_name_plural = "vehicle hourly rollups"
        constraints = [
            # The ingest upsert's conflict target, and the per-device hour range scan.
            models.UniqueConstraint(fields=["device", "hour"], name="telemetry_vehiclehourly_key"),
        ]
        indexes = [
            # Fleet-wide aggregates over a window of hours.
            models.Index(fields=["hour"], name="telemetry_vhourly_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.device}, hour from {display_time(self.hour)}"


class DeviceAPIKey(AbstractAPIKey):
    """One row per device key. Only a hash of the key is stored; the key is shown once.

    `device_id` scopes the key to one vehicle or meter id; blank lets it write for any device.
    """

    device_id = models.CharField(
        "device id",
        max_length=64,
        blank=True,
        default="",
        validators=[device_id_validator],
        help_text="Vehicle or meter id this key may write for; blank for any device.",
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "device API key"
        verbose_name_plural = "device API keys"

    def mark_used(self) -> None:
        """Record use, at most once a minute per key (a write per request would cost more)."""
        now = timezone.now()
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() >= 60:
            DeviceAPIKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
