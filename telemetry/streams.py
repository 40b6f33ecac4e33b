"""The two streams of readings (meters, vehicles), declared once.

Everything that moves readings — ingestion, imports, upkeep, partitions, analytics — takes its
tables, columns and wire names from here, and this module takes them from the models' `_meta`.
Adding a value column to a stream means: the model field, a migration, and (if the rollups sum
it) one entry of `rollup_sums`. Nothing else of the plumbing spells a table or a column.
"""

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from operator import attrgetter
from typing import Any

from django.db import models

from fleet.models import Meter, Vehicle
from telemetry import models as tables
from telemetry.schemas import MeterReadingIn, ParsedReadings, VehicleReadingIn

# History fields that are the key, not values.
_KEY_FIELDS = ("id", "device", "recorded_at")
# The value column both streams have: the energy of the reading's interval.
_ENERGY_COLUMN = "energy_kwh"
# Rollup fields that are the key, not sums.
_ROLLUP_KEY_FIELDS = ("id", "device", "hour")
# A reading on its way to storage: (index in its request, device external id, recorded_at, the
# value columns in column order).
Item = tuple[int, str, datetime, tuple[float, ...]]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True, eq=False)
class Stream:
    """One kind of reading: its device registry, history, live-status and hourly-rollup tables.

    `reading_fields` names, per value column of history (in column order), the attribute of the
    parsed wire reading (`telemetry.schemas.MeterReadingIn` / `VehicleReadingIn`) that fills it.
    `rollup_sums` names, per rollup column, the history column it sums (None: it counts readings).
    """

    kind: str
    device_model: type[models.Model]
    history_model: type[models.Model]
    status_model: type[models.Model]
    hourly_model: type[models.Model]
    reading_struct: type
    reading_fields: tuple[str, ...]
    rollup_sums: tuple[tuple[str, str | None], ...]

    def __post_init__(self) -> None:
        if len(self.reading_fields) != len(self.columns):
            raise ValueError(f"{self.kind}: reading_fields must name one field per value column")
        for name in self.columns:
            # The binary COPY rows and the float8[] parameters carry every value as a double.
            field = self.history_model._meta.get_field(name)
            if field.get_internal_type() != "FloatField":
                raise ValueError(f"{self.kind}: value column {name} must be a FloatField")
        rollup_columns = tuple(
            field.column
            for field in self.hourly_model._meta.concrete_fields
            if field.name not in _ROLLUP_KEY_FIELDS
        )
        if tuple(column for column, _ in self.rollup_sums) != rollup_columns:
            raise ValueError(f"{self.kind}: rollup_sums must list {rollup_columns} in order")

    def __repr__(self) -> str:
        return f"Stream({self.kind})"

    # --- Tables ---------------------------------------------------------------------------------

    @cached_property
    def history(self) -> str:
        return self.history_model._meta.db_table

    @cached_property
    def status(self) -> str:
        return self.status_model._meta.db_table

    @cached_property
    def hourly(self) -> str:
        return self.hourly_model._meta.db_table

    @cached_property
    def registry(self) -> str:
        """The device table."""
        return self.device_model._meta.db_table

    # --- Columns --------------------------------------------------------------------------------

    @cached_property
    def device_column(self) -> str:
        """The device column of history, live status and rollups (the device's primary key)."""
        return self.history_model._meta.get_field("device").column

    @cached_property
    def registry_id(self) -> str:
        """The external id column of the device table (what devices call themselves)."""
        return self.device_model.external_id_field

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """The value columns of history, in table order (the live row has the same)."""
        return tuple(
            field.column
            for field in self.history_model._meta.concrete_fields
            if field.name not in _KEY_FIELDS
        )

    @cached_property
    def rollup_columns(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.rollup_sums)

    def rollup_of(self, column: str | None) -> str:
        """The rollup column that sums history `column` (None: the reading count)."""
        for rollup, source in self.rollup_sums:
            if source == column:
                return rollup
        raise KeyError(f"{self.kind} rollups do not sum {column!r}")

    # --- Wire -----------------------------------------------------------------------------------

    @cached_property
    def wire_id(self) -> str:
        """The JSON key of the device id (`meterId`, `vehicleId`)."""
        return _camel(self.registry_id)

    @cached_property
    def wire_fields(self) -> tuple[str, ...]:
        """The JSON keys of the value columns, in column order (`kwhConsumedAc`, …)."""
        return tuple(_camel(name) for name in self.reading_fields)

    @cached_property
    def wire_energy(self) -> str:
        """The JSON key of the energy column (what a CSV's generic `kwh` column means)."""
        return self.wire_fields[self.columns.index(_ENERGY_COLUMN)]

    # --- Parsed readings ------------------------------------------------------------------------

    def external_id_of(self, reading: Any) -> str:
        """The device id a parsed reading names (its `meter_id` / `vehicle_id`)."""
        return getattr(reading, self.registry_id)

    @cached_property
    def values_of(self):
        """A function: a parsed reading's value columns, as a tuple in column order."""
        getter = attrgetter(*self.reading_fields)
        if len(self.reading_fields) == 1:
            return lambda reading: (getter(reading),)
        return getter

    def parsed(self, parsed: ParsedReadings) -> list[tuple[int, Any]]:
        """This stream's readings of a request, with their indexes (`ParsedReadings.meters`, …)."""
        return getattr(parsed, f"{self.kind}s")

    def items(self, readings: Iterable[tuple[int, Any]]) -> list[Item]:
        """Parsed readings of this stream, with their indexes, in storage form."""
        external_id, values = attrgetter(self.registry_id), self.values_of
        return [
            (index, external_id(reading), reading.timestamp, values(reading))
            for index, reading in readings
        ]

    # --- Bulk storage (PostgreSQL COPY) ---------------------------------------------------------

    @cached_property
    def staging_table(self) -> str:
        """The temporary table an import COPYs a chunk into (`import_staging_meter`, …)."""
        return f"import_staging_{self.kind}"

    @cached_property
    def staging_ddl(self) -> str:
        """The column list of `staging_table`: (device, recorded_at, *columns)."""
        values = "".join(f", {column} float8" for column in self.columns)
        return f"device bigint, recorded_at timestamptz{values}"

    @cached_property
    def copy_row(self) -> struct.Struct:
        """One binary COPY row of `staging_table`: the field count, then (length, value) per
        field: the device key (int8), recorded_at (int8 microseconds since 2000-01-01 UTC) and
        the value columns (float8)."""
        return struct.Struct(">h" + "iq" * 2 + "id" * len(self.columns))


METER_STREAM = Stream(
    kind="meter",
    device_model=Meter,
    history_model=tables.MeterReading,
    status_model=tables.MeterStatus,
    hourly_model=tables.MeterHourly,
    reading_struct=MeterReadingIn,
    reading_fields=("kwh_consumed_ac", "voltage"),
    rollup_sums=(("energy_kwh", "energy_kwh"), ("reading_count", None)),
)
VEHICLE_STREAM = Stream(
    kind="vehicle",
    device_model=Vehicle,
    history_model=tables.VehicleReading,
    status_model=tables.VehicleStatus,
    hourly_model=tables.VehicleHourly,
    reading_struct=VehicleReadingIn,
    reading_fields=("kwh_delivered_dc", "soc", "battery_temp"),
    rollup_sums=(
        ("energy_kwh", "energy_kwh"),
        ("battery_temp_sum_c", "battery_temp_c"),
        ("reading_count", None),
    ),
)
# Lock order: every writer touches meters before vehicles.
STREAMS = (METER_STREAM, VEHICLE_STREAM)
STREAMS_BY_KIND = {stream.kind: stream for stream in STREAMS}
