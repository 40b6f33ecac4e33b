"""A simulated fleet: vehicles charging through smart meters, deterministic for a seed.

Pure Python (no numpy): `fleet_plan()` draws the fleet (devices, who is faulty, which
meter serves which vehicle and when), `fleet_readings()` walks it forward one interval at a time and
yields each interval's readings as plain tuples, so a fleet-day (5,000 vehicles + 5,000 meters,
14.4M readings) streams through in constant memory. The same seed and start give the same readings,
byte for byte, whoever consumes them (a file writer or the import service). The `simulation_*`
functions at the end connect it to the rest: import chunks, files, the fleet's mappings.

Physics, roughly: a charging vehicle takes `charger_kw` (tapering above 80 % state of charge); the
meter sees that DC energy divided by the vehicle's charging efficiency (88–94 % when healthy, below
85 % for the faulty share) with a little noise; an idle vehicle draws ~0 kWh and slowly loses
charge; the battery warms while charging and cools towards its ambient temperature while idle.
A few readings arrive late (out of order) and a few twice, as real devices do.

Every verdict of the analytics shows on a fleet of eight vehicles or more: a share of the vehicles
stays parked all along (idle: the charge point's standby draw, ~0.0016 kWh over six hours, no
DC); a faulty charger (its meter draws 25 % more than it delivers) serves two healthy vehicles
one after the other; a faulty vehicle is charged on two meters; one meter goes silent for the
last half hour (its vehicle keeps reporting); one vehicle's meter under-reads so that DC > AC.
The vehicles of these scenarios plug in at the start and again at the swap, so each pairing
charges.
"""

import csv
import gzip
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleet.models import MeterAssignment
from fleet.services import AssignmentConflict, MappingImportResult, MappingRow, mappings_import
from telemetry.files import CSV, CSV_HEADER, NDJSON, ReadingChunk, file_format
from telemetry.schemas import MeterReadingIn, VehicleReadingIn

METER_KIND = "meter"
VEHICLE_KIND = "vehicle"

# Share of readings held back a few intervals, and share sent twice.
LATE_SHARE = 0.001
DUPLICATE_SHARE = 0.0005
HEALTHY_EFFICIENCY = (0.88, 0.94)
FAULTY_EFFICIENCY = (0.70, 0.83)
# The faulty charger's meter sees this much more AC; the anomalous meter sees DC times this.
CHARGER_FAULT_FACTOR = 1.25
ANOMALY_FACTOR = 0.9
SILENT_MINUTES = 30
SCENARIO_MIN_VEHICLES = 8

# A reading: (METER_KIND, meter_id, step, kwh_consumed_ac, voltage)
#         or (VEHICLE_KIND, vehicle_id, step, soc, kwh_delivered_dc, battery_temp)
SimReading = tuple


@dataclass(frozen=True)
class SimAssignment:
    vehicle_id: str
    meter_id: str
    valid_from: datetime


@dataclass(frozen=True)
class FleetPlan:
    """What a simulation run draws before any reading: devices, faults, assignments, clock."""

    seed: int
    start: datetime
    interval: timedelta
    steps: int
    vehicle_ids: tuple[str, ...]
    meter_ids: tuple[str, ...]
    efficiency: dict[str, float]
    faulty: frozenset[str]
    assignments: tuple[SimAssignment, ...]
    # Step at which the swapped pairs change meters (len(steps) if nobody is swapped).
    swap_step: int
    swapped_pairs: tuple[tuple[int, int], ...]
    # Parked all along: never charge.
    idle: frozenset[str] = frozenset()
    # The scenarios (None / empty below SCENARIO_MIN_VEHICLES vehicles).
    faulty_charger: str | None = None  # a meter id
    faulty_charger_vehicles: tuple[str, ...] = ()  # served one after the other
    two_meter_vehicle: str | None = None  # faulty, charged on two meters
    silent_meter: str | None = None
    silent_from_step: int = 0
    anomaly_vehicle: str | None = None

    @property
    def scenario_vehicles(self) -> frozenset[str]:
        """Vehicles whose figures a scenario bends (not the plain healthy or faulty kind)."""
        meters = {self.faulty_charger, self.silent_meter}
        silent = {v for v, m in zip(self.vehicle_ids, self.meter_ids, strict=True) if m in meters}
        named = {*self.faulty_charger_vehicles, self.two_meter_vehicle, self.anomaly_vehicle}
        return frozenset((silent | named) - {None})

    @property
    def reading_count(self) -> int:
        """Readings on time (late and duplicate copies come on top)."""
        silent = self.steps - self.silent_from_step if self.silent_meter else 0
        return 2 * len(self.vehicle_ids) * self.steps - silent

    def timestamp(self, step: int) -> datetime:
        return self.start + self.interval * step

    def meter_of(self, vehicle_index: int, step: int) -> int:
        """Index of the meter serving vehicle `vehicle_index` at `step`."""
        if step >= self.swap_step:
            for a, b in self.swapped_pairs:
                if vehicle_index == a:
                    return b
                if vehicle_index == b:
                    return a
        return vehicle_index


def default_start(*, hours: int, interval_seconds: int, now: datetime) -> datetime:
    """`now` minus `hours`, aligned down to a multiple of the interval (UTC epoch based)."""
    start = now.astimezone(UTC) - timedelta(hours=hours)
    epoch_seconds = int(start.timestamp())
    return datetime.fromtimestamp(epoch_seconds - epoch_seconds % interval_seconds, tz=UTC)


def fleet_plan(
    *,
    vehicles: int,
    hours: float,
    interval_seconds: int,
    fault_share: float,
    seed: int,
    start: datetime,
    prefix: str = "SIM",
    idle_share: float = 0.0,
) -> FleetPlan:
    """Draw the fleet: ids, efficiencies, the faulty and idle shares, a few mid-period
    reassignments, and (from SCENARIO_MIN_VEHICLES vehicles) the scenarios of every verdict."""
    if vehicles < 1:
        raise ValueError("A fleet needs at least one vehicle.")
    if interval_seconds < 1:
        raise ValueError("The interval is at least one second.")
    if not 0 <= fault_share <= 1:
        raise ValueError("The fault share is between 0 and 1.")
    if not 0 <= idle_share <= 1:
        raise ValueError("The idle share is between 0 and 1.")
    rng = random.Random(f"plan:{seed}")
    steps = int(hours * 3600 // interval_seconds)
    width = max(5, len(str(vehicles)))
    vehicle_ids = tuple(f"{prefix}-V-{i:0{width}d}" for i in range(1, vehicles + 1))
    meter_ids = tuple(f"{prefix}-M-{i:0{width}d}" for i in range(1, vehicles + 1))
    interval = timedelta(seconds=interval_seconds)
    steps_ok = steps >= 2
    # Scenario vehicles first (their own generator, so the rest of the draw keeps its values):
    # charger pair (c, d), faulty vehicle and partner (f, g), silent meter's vehicle, anomaly.
    scenario_rng = random.Random(f"scenarios:{seed}")
    scenario: list[int] = (
        scenario_rng.sample(range(vehicles), 6)
        if vehicles >= SCENARIO_MIN_VEHICLES and steps_ok
        else []
    )
    others = [vid for i, vid in enumerate(vehicle_ids) if i not in scenario]
    faulty_count = min(round(vehicles * fault_share), len(others))
    faulty = set(rng.sample(others, faulty_count))
    if scenario:
        faulty.add(vehicle_ids[scenario[2]])
    efficiency = {
        vid: rng.uniform(*(FAULTY_EFFICIENCY if vid in faulty else HEALTHY_EFFICIENCY))
        for vid in vehicle_ids
    }
    healthy = [vid for vid in others if vid not in faulty]
    idle = frozenset(rng.sample(healthy, min(round(vehicles * idle_share), len(healthy))))

    # About 1 % of the vehicles (at least one pair when there are two) swap meters half-way.
    free = [i for i in range(vehicles) if i not in scenario]
    pair_count = max(1, vehicles // 100) if len(free) >= 2 and steps_ok else 0
    chosen = rng.sample(free, 2 * pair_count)
    pairs = [(chosen[2 * k], chosen[2 * k + 1]) for k in range(pair_count)]
    if scenario:
        pairs += [(scenario[0], scenario[1]), (scenario[2], scenario[3])]
    swapped_pairs = tuple((min(a, b), max(a, b)) for a, b in pairs)
    swap_step = steps // 2 if swapped_pairs else steps
    assignments = [SimAssignment(vehicle_ids[i], meter_ids[i], start) for i in range(vehicles)]
    swap_at = start + interval * swap_step
    for a, b in swapped_pairs:
        assignments.append(SimAssignment(vehicle_ids[a], meter_ids[b], swap_at))
        assignments.append(SimAssignment(vehicle_ids[b], meter_ids[a], swap_at))
    extra = {}
    if scenario:
        c, d, f, _, silent, anomaly = scenario
        extra = dict(
            faulty_charger=meter_ids[c],
            faulty_charger_vehicles=(vehicle_ids[c], vehicle_ids[d]),
            two_meter_vehicle=vehicle_ids[f],
            silent_meter=meter_ids[silent],
            silent_from_step=max(1, steps - SILENT_MINUTES * 60 // interval_seconds),
            anomaly_vehicle=vehicle_ids[anomaly],
        )
    return FleetPlan(
        seed=seed,
        start=start,
        interval=interval,
        steps=steps,
        vehicle_ids=vehicle_ids,
        meter_ids=meter_ids,
        efficiency=efficiency,
        faulty=frozenset(faulty),
        assignments=tuple(assignments),
        swap_step=swap_step,
        swapped_pairs=swapped_pairs,
        idle=idle,
        **extra,
    )


def fleet_readings(plan: FleetPlan) -> Iterator[list[SimReading]]:
    """Yield, interval by interval, the readings that arrive in it (late ones in a later one).

    Per-vehicle state lives in parallel lists and each interval is one pass over them: the hot loop
    does a handful of `random()` calls and float operations per vehicle, no objects.
    """
    rng = random.Random(f"readings:{plan.seed}")
    rand = rng.random
    count = len(plan.vehicle_ids)
    hours_per_step = plan.interval.total_seconds() / 3600
    vehicle_ids = plan.vehicle_ids
    meter_ids = plan.meter_ids
    eff = [plan.efficiency[vid] for vid in vehicle_ids]
    capacity = [rng.choice((40.0, 60.0, 75.0, 100.0)) for _ in range(count)]
    charger_kw = [rng.choice((7.4, 11.0, 22.0)) for _ in range(count)]
    nominal_v = [rng.choice((230.0, 400.0)) for _ in range(count)]
    ambient = [rng.uniform(10.0, 28.0) for _ in range(count)]
    # Faulty vehicles waste energy as heat.
    warm = [(18.0 if vid in plan.faulty else 10.0) for vid in vehicle_ids]
    soc = [rng.uniform(20.0, 90.0) for _ in range(count)]
    temp = [ambient[i] + rng.uniform(-2.0, 2.0) for i in range(count)]
    target = [rng.uniform(80.0, 100.0) for _ in range(count)]
    charging = [rng.random() < 0.5 for _ in range(count)]
    parked = [vid in plan.idle for vid in vehicle_ids]
    charging = [charging[i] and not parked[i] for i in range(count)]
    meter_position = {mid: k for k, mid in enumerate(meter_ids)}
    # AC seen by each meter per kWh the vehicle's charger drew.
    meter_factor = [1.0] * count
    if plan.faulty_charger is not None:
        meter_factor[meter_position[plan.faulty_charger]] = CHARGER_FAULT_FACTOR
    anomaly = plan.anomaly_vehicle
    if anomaly is not None:
        meter_factor[vehicle_ids.index(anomaly)] = ANOMALY_FACTOR * plan.efficiency[anomaly]
    silent = -1 if plan.silent_meter is None else meter_position[plan.silent_meter]
    plug_in = [
        i
        for i, vid in enumerate(vehicle_ids)
        if vid in {*plan.faulty_charger_vehicles, plan.two_meter_vehicle, anomaly}
    ]
    # On average a vehicle plugs in again after about four idle hours; at once below 25 %.
    start_chance = min(1.0, hours_per_step / 4)
    drain_per_step = 3.0 * hours_per_step  # % per hour while away / idle
    pending: dict[int, list[SimReading]] = {}

    meter_index = list(range(count))
    for step in range(plan.steps):
        if step == plan.swap_step:
            meter_index = [plan.meter_of(i, step) for i in range(count)]
        if step in (0, plan.swap_step):
            for i in plug_in:  # the scenarios' vehicles charge in each period
                soc[i] = min(soc[i], 40.0)
                charging[i], target[i] = True, 90.0
        out: list[SimReading] = []
        append = out.append
        for i in range(count):
            s = soc[i]
            if charging[i]:
                taper = 1.0 if s < 80.0 else max(0.15, (100.0 - s) / 20.0)
                dc = charger_kw[i] * hours_per_step * taper * (0.98 + 0.04 * rand())
                ac = dc / eff[i] * meter_factor[meter_index[i]] * (0.99 + 0.02 * rand())
                s += dc / capacity[i] * 100.0
                if s >= target[i]:
                    charging[i] = False
                t_goal = ambient[i] + warm[i]
            else:
                dc = 0.0
                # Standby draw of the charge point, next to nothing.
                ac = 0.0002 * rand() if rand() < 0.05 else 0.0
                s -= drain_per_step * rand()
                if parked[i]:
                    s = max(s, 30.0)  # parked at home, not driven: no reason to plug in
                elif s < 25.0 or rand() < start_chance:
                    charging[i] = True
                    target[i] = 80.0 + 20.0 * rand()
                t_goal = ambient[i]
            s = 0.0 if s < 0.0 else 100.0 if s > 100.0 else s
            soc[i] = s
            t = temp[i] + (t_goal - temp[i]) * 0.05 + 0.2 * (rand() - 0.5)
            t = -60.0 if t < -60.0 else 150.0 if t > 150.0 else t
            temp[i] = t
            vehicle = (VEHICLE_KIND, vehicle_ids[i], step, round(s, 2), round(dc, 5), round(t, 1))
            meter = (
                METER_KIND,
                meter_ids[meter_index[i]],
                step,
                round(ac, 5),
                round(nominal_v[i] + 6.0 * (rand() - 0.5), 1),
            )
            silent_now = meter_index[i] == silent and step >= plan.silent_from_step
            for reading in (vehicle,) if silent_now else (vehicle, meter):
                roll = rand()
                if roll < LATE_SHARE:
                    pending.setdefault(step + 2 + int(8 * rand()), []).append(reading)
                    continue
                append(reading)
                if roll > 1.0 - DUPLICATE_SHARE:
                    append(reading)
        late = pending.pop(step, None)
        if late:
            out.extend(late)
        yield out
    for due in sorted(pending):
        yield pending[due]


def ndjson_line(reading: SimReading, timestamps: list[str]) -> str:
    """The reading as one NDJSON line in the API's wire format."""
    if reading[0] == METER_KIND:
        _, meter_id, step, kwh, voltage = reading
        return (
            f'{{"meterId":"{meter_id}","kwhConsumedAc":{kwh!r},"voltage":{voltage!r},'
            f'"timestamp":"{timestamps[step]}"}}\n'
        )
    _, vehicle_id, step, soc, kwh, temp = reading
    return (
        f'{{"vehicleId":"{vehicle_id}","soc":{soc!r},"kwhDeliveredDc":{kwh!r},'
        f'"batteryTemp":{temp!r},"timestamp":"{timestamps[step]}"}}\n'
    )


def csv_line(reading: SimReading, timestamps: list[str]) -> str:
    """The reading as one line of the import CSV (`type,deviceId,timestamp,kwh,voltage,...`)."""
    if reading[0] == METER_KIND:
        _, meter_id, step, kwh, voltage = reading
        return f"meter,{meter_id},{timestamps[step]},{kwh!r},{voltage!r},,\n"
    _, vehicle_id, step, soc, kwh, temp = reading
    return f"vehicle,{vehicle_id},{timestamps[step]},{kwh!r},,{soc!r},{temp!r}\n"


def wire_timestamps(plan: FleetPlan) -> list[str]:
    """The ISO 8601 text of every step's timestamp (`2026-02-10T10:15:00Z`)."""
    return [
        plan.timestamp(step).astimezone(UTC).isoformat().replace("+00:00", "Z")
        for step in range(plan.steps)
    ]


# --- Glue: the simulator's readings and mappings into the import service, files, the fleet ---


def simulation_mappings_apply(*, plan: FleetPlan) -> MappingImportResult:
    """Map the simulated vehicles to their meters (and the mid-period swaps) via the fleet rules.

    Assignments already in place (a re-run with the same start) are skipped; the rest go in one
    transaction, or row by row with conflicts reported if that fails (an earlier run's later start).
    """
    existing = set(
        MeterAssignment.objects.filter(vehicle__vehicle_id__in=plan.vehicle_ids).values_list(
            "vehicle__vehicle_id", "meter__meter_id", "valid_from"
        )
    )
    rows = [
        MappingRow(a.vehicle_id, a.meter_id, a.valid_from, line=number)
        for number, a in enumerate(plan.assignments, 1)
        if (a.vehicle_id, a.meter_id, a.valid_from) not in existing
    ]
    skipped = len(plan.assignments) - len(rows)
    try:
        result = mappings_import(rows=rows, atomic=True)
    except AssignmentConflict:
        result = mappings_import(rows=rows, atomic=False)
    return MappingImportResult(
        assigned=result.assigned, unchanged=result.unchanged + skipped, errors=result.errors
    )


def simulation_chunks(plan: FleetPlan, *, chunk_size: int) -> Iterator[ReadingChunk]:
    """The simulated readings as import chunks (already valid: built by the simulator)."""
    timestamps = [plan.timestamp(step) for step in range(plan.steps)]
    source = f"simulation seed {plan.seed}"
    chunk = ReadingChunk(source)
    for batch in fleet_readings(plan):
        meters, vehicles = chunk.readings[METER_KIND], chunk.readings[VEHICLE_KIND]
        for reading in batch:
            if reading[0] == METER_KIND:
                _, meter_id, step, kwh, voltage = reading
                meters.append(MeterReadingIn(meter_id, kwh, voltage, timestamps[step]))
            else:
                _, vehicle_id, step, soc, kwh, temp = reading
                vehicles.append(VehicleReadingIn(vehicle_id, soc, kwh, temp, timestamps[step]))
        chunk.rows_read += len(batch)
        if chunk.reading_count >= chunk_size:
            yield chunk
            chunk = ReadingChunk(source)
    if chunk.rows_read:
        yield chunk


def simulation_write_file(
    *, plan: FleetPlan, path: Path, on_batch: Callable[[int], None] | None = None
) -> int:
    """Write the simulated readings to an NDJSON or CSV file (gzipped for `.gz`); return rows."""
    fmt = file_format(path)
    timestamps = wire_timestamps(plan)
    line_of = ndjson_line if fmt == NDJSON else csv_line
    written = 0
    tmp = path.with_name(path.name + ".partial")
    if path.suffix.lower() == ".gz":
        # Level 1: a fleet-day is ~1.5 GB of text; the default level would triple the run time.
        opened = gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1, newline="")  # noqa: SIM115
    else:
        opened = tmp.open("w", encoding="utf-8", newline="", buffering=1 << 20)
    with opened as out:
        if fmt == CSV:
            out.write(",".join(CSV_HEADER) + "\n")
        for batch in fleet_readings(plan):
            out.write("".join([line_of(reading, timestamps) for reading in batch]))
            written += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
    tmp.replace(path)  # a killed run never leaves a half file under the real name
    return written


def simulation_mappings_csv(*, plan: FleetPlan, path: Path) -> None:
    """The plan's assignments as an `import_mappings` CSV."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["vehicleId", "meterId", "validFrom"])
        for assignment in plan.assignments:
            writer.writerow(
                [
                    assignment.vehicle_id,
                    assignment.meter_id,
                    assignment.valid_from.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                ]
            )
