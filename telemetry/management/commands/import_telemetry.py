import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from telemetry.bulk import DEFAULT_CHUNK_SIZE, readings_import
from telemetry.files import FORMATS, ImportFileError, RejectedLine, file_chunks, sources_check

# Rejected rows echoed on stderr when they also go to a --rejects file.
_SHOWN_REJECTS = 20


class Command(BaseCommand):
    help = (
        "Backfill readings from NDJSON or CSV files (plain or .gz) of any size, validated like "
        "the API, in one transaction per chunk. Run whenever there is data to load; re-running is "
        "safe: readings already stored are counted as duplicates and change nothing, so an "
        "interrupted import is finished by running it again. CSV header: "
        "type,deviceId,timestamp,kwh,voltage,soc,batteryTemp (or the API's field names)."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="Files to import.")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            help="Format of every file (default: from the name: .ndjson/.jsonl or .csv, .gz).",
        )
        parser.add_argument(
            "--rejects",
            type=Path,
            metavar="FILE",
            help="Write each rejected row here as NDJSON {file, line, errors, original}.",
        )
        parser.add_argument(
            "--allow-older",
            action="store_true",
            help=(
                "Admit readings older than TELEMETRY_MAX_AGE_DAYS: a deliberate historical "
                "backfill by an operator (it creates the partitions of those days)."
            ),
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=DEFAULT_CHUNK_SIZE,
            help=f"Readings per transaction (default {DEFAULT_CHUNK_SIZE}).",
        )

    def handle(self, *args, paths, format, rejects, chunk_size, allow_older, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        try:
            sources = sources_check(paths, format)
        except ImportFileError as error:
            raise CommandError(str(error)) from None
        if rejects is not None and rejects.resolve() in {path.resolve() for path in paths}:
            raise CommandError("--rejects must not be one of the input files.")

        rejects_file = rejects.open("wb") if rejects is not None else None
        shown = 0

        def on_reject(rejection: RejectedLine) -> None:
            nonlocal shown
            if rejects_file is not None:
                rejects_file.write(rejection.as_json() + b"\n")
            if rejects_file is None or shown < _SHOWN_REJECTS:
                bar.write(
                    f"{rejection.source}:{rejection.line}: {_describe(rejection.errors)}",
                    file=progress_stream,
                )
                shown += 1

        def chunks():
            for path, fmt in sources:
                yield from file_chunks(path, fmt, chunk_size=chunk_size, allow_older=allow_older)

        progress_stream = options.get("stderr") or sys.stderr
        bar = tqdm(
            file=progress_stream, unit=" rows", unit_scale=True, desc="import", mininterval=1
        )
        try:
            result = readings_import(
                chunks=chunks(), on_reject=on_reject, on_chunk=lambda r: bar.update(r.rows_read)
            )
        except KeyboardInterrupt:
            raise CommandError(
                f"Interrupted after {bar.n} rows; every committed chunk is kept. Re-run the same "
                "command to finish: readings already stored are skipped."
            ) from None
        finally:
            bar.close()
            if rejects_file is not None:
                rejects_file.close()

        if result.rejected and rejects is not None:
            self.stderr.write(f"{result.rejected} rejected rows written to {rejects}.")
        self.stdout.write(f"import_telemetry: {result.summary()}")
        if result.rows_read and result.rejected == result.rows_read:
            raise CommandError("Every row was rejected: is the format right?")


def _describe(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
