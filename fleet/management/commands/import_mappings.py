import csv
import sys
from datetime import datetime
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from fleet.models import DEVICE_ID_RULE, device_id_validator
from fleet.services import AssignmentConflict, MappingRow, mappings_import

HEADER = ("vehicleId", "meterId", "validFrom")


class Command(BaseCommand):
    help = (
        "Assign vehicles to meters from a CSV with the header vehicleId,meterId,validFrom "
        "(validFrom ISO 8601 with an offset; empty means now), with the admin's rules: a new "
        "meter closes the previous assignment. Run when a fleet is set up or re-wired. Re-running "
        "is safe: assignments already in place are counted as unchanged. --atomic applies all or "
        "nothing; by default bad lines are reported and the others applied."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, metavar="FILE.csv")
        parser.add_argument(
            "--atomic",
            action="store_true",
            help="All or nothing: the first bad line stops the import and nothing is applied.",
        )

    def handle(self, *args, path: Path, atomic: bool, **options):
        rows, errors = _read_rows(path)
        if errors and atomic:
            line, message = errors[0]
            raise CommandError(f"{path}, line {line}: {message} Nothing was applied.")
        progress = tqdm(
            rows,
            file=options.get("stderr") or sys.stderr,
            unit=" rows",
            desc="mappings",
            mininterval=1,
        )
        try:
            result = mappings_import(rows=progress, atomic=atomic)
        except AssignmentConflict as error:
            raise CommandError(
                f"{path}, {'; '.join(error.messages)} Nothing was applied."
            ) from None
        finally:
            progress.close()
        lines = len(rows) + len(errors)
        errors += list(result.errors)
        for line, message in sorted(errors):
            self.stderr.write(f"{path}, line {line}: {message}")
        self.stdout.write(
            f"import_mappings: lines {lines}, assigned {result.assigned}, unchanged "
            f"{result.unchanged}, failed {len(errors)}"
        )
        if errors:
            # Exit non-zero so a script notices; the good lines are applied and stay applied.
            raise CommandError(
                f"{len(errors)} line(s) failed (listed above); the other lines were applied. "
                "Fix them and re-run: applied lines are left unchanged."
            )


def _read_rows(path: Path) -> tuple[list[MappingRow], list[tuple[int, str]]]:
    """Parse the file; return the good rows and (line, message) for the bad ones."""
    if not path.is_file():
        raise CommandError(f"{path}: no such file.")
    rows: list[MappingRow] = []
    errors: list[tuple[int, str]] = []
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        header = [name.strip() for name in next(reader, [])]
        if tuple(header[:3]) != HEADER:
            raise CommandError(
                f"{path}: the first line must be the header {','.join(HEADER)}, "
                f"found {','.join(header) or 'nothing'}."
            )
        for cells in reader:
            line = reader.line_num
            if not cells or not any(cell.strip() for cell in cells):
                continue
            try:
                rows.append(_row(cells, line))
            except ValueError as error:
                errors.append((line, str(error)))
    return rows, errors


def _row(cells: list[str], line: int) -> MappingRow:
    if len(cells) < 2 or len(cells) > 3:
        raise ValueError(f"Expected 3 columns (vehicleId,meterId,validFrom), found {len(cells)}.")
    vehicle_id, meter_id = cells[0].strip(), cells[1].strip()
    valid_from_text = cells[2].strip() if len(cells) == 3 else ""
    for field, value in (("vehicleId", vehicle_id), ("meterId", meter_id)):
        try:
            device_id_validator(value)
        except ValidationError:
            raise ValueError(f"{field} {value!r} is not a device id ({DEVICE_ID_RULE}).") from None
    valid_from = None
    if valid_from_text:
        try:
            valid_from = datetime.fromisoformat(valid_from_text)
        except ValueError:
            raise ValueError(
                f"validFrom {valid_from_text!r} is not an ISO 8601 date-time."
            ) from None
        if timezone.is_naive(valid_from):
            raise ValueError(
                f"validFrom {valid_from_text!r} must carry a UTC offset (e.g. "
                "2026-02-10T10:00:00Z)."
            )
    return MappingRow(vehicle_id, meter_id, valid_from, line=line)
