import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fleet.forms import MappingFileError, mapping_rows_parse
from fleet.services import AssignmentConflict, MappingRow, mappings_import


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
    try:
        return mapping_rows_parse(path.read_text(encoding="utf-8-sig"))
    except MappingFileError as error:
        raise CommandError(f"{path}: {str(error)[0].lower()}{str(error)[1:]}") from None
