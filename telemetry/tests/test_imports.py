import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from fleet.models import Meter
from telemetry import models
from telemetry.bulk import readings_import
from telemetry.files import file_chunks
from telemetry.tests.factories import T0, every_minute, meter_payload, vehicle_payload

CSV_HEADER = "type,deviceId,timestamp,kwh,voltage,soc,batteryTemp\n"


def fleet_payloads(*, devices: int = 3, minutes: int = 90) -> list[dict]:
    """Time-ordered readings of `devices` meters and vehicles over `minutes` (crosses an hour)."""
    payloads = []
    for at in every_minute(T0 - timedelta(minutes=30), minutes):
        for n in range(1, devices + 1):
            payloads.append(meter_payload(f"M-{n}", at=at, kwh=0.1 * n + at.minute / 1000))
            payloads.append(
                vehicle_payload(f"V-{n}", at=at, kwh=0.09 * n, soc=40 + at.minute / 2, temp=20 + n)
            )
    return payloads


def write_ndjson(path: Path, payloads: list[dict], *, gz: bool = False) -> Path:
    text = "".join(json.dumps(payload) + "\n" for payload in payloads)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def csv_line(payload: dict) -> str:
    if "meterId" in payload:
        return (
            f"meter,{payload['meterId']},{payload['timestamp']},{payload['kwhConsumedAc']},"
            f"{payload['voltage']},,\n"
        )
    return (
        f"vehicle,{payload['vehicleId']},{payload['timestamp']},{payload['kwhDeliveredDc']},,"
        f"{payload['soc']},{payload['batteryTemp']}\n"
    )


def write_csv(path: Path, payloads: list[dict]) -> Path:
    path.write_text(CSV_HEADER + "".join(csv_line(p) for p in payloads), encoding="utf-8")
    return path


def run_import(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_telemetry", *[str(arg) for arg in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def wipe_telemetry() -> None:
    for model in (
        models.MeterReading,
        models.VehicleReading,
        models.MeterStatus,
        models.VehicleStatus,
        models.MeterHourly,
        models.VehicleHourly,
    ):
        model.objects.all().delete()


@pytest.mark.django_db
class TestImportTelemetry:
    def test_an_ndjson_file_lands_in_history_live_rows_and_exact_rollups(
        self, tmp_path, telemetry_state
    ):
        payloads = fleet_payloads()
        path = write_ndjson(tmp_path / "readings.ndjson", payloads)

        out, _ = run_import(path)

        assert models.MeterReading.objects.count() == models.VehicleReading.objects.count() == 270
        assert "rows read 540, stored 540, duplicates 0, rejected 0" in out
        assert telemetry_state.rollups() == telemetry_state.rollups_from_history()
        assert telemetry_state.live() == telemetry_state.live_from_history()
        assert {m.meter_id for m in Meter.objects.all()} == {"M-1", "M-2", "M-3"}

    def test_a_csv_file_gives_the_same_state_as_the_ndjson_file(self, tmp_path, telemetry_state):
        payloads = fleet_payloads()
        run_import(write_ndjson(tmp_path / "readings.ndjson", payloads))
        from_ndjson = telemetry_state.snapshot()
        wipe_telemetry()

        out, _ = run_import(write_csv(tmp_path / "readings.csv", payloads))

        assert "stored 540" in out
        assert telemetry_state.snapshot() == from_ndjson

    def test_a_csv_file_with_the_api_field_names_is_accepted(self, tmp_path):
        path = tmp_path / "wire.csv"
        path.write_text(
            "meterId,kwhConsumedAc,voltage,timestamp\nM-1,1.5,230,2026-02-10T10:00:00Z\n",
            encoding="utf-8",
        )

        run_import(path)

        assert list(models.MeterReading.objects.values_list("energy_kwh", "voltage_v")) == [
            (1.5, 230.0)
        ]

    def test_a_gzipped_file_is_read_like_a_plain_one(self, tmp_path, telemetry_state):
        payloads = fleet_payloads()
        run_import(write_ndjson(tmp_path / "plain.ndjson", payloads))
        plain = telemetry_state.snapshot()
        wipe_telemetry()

        out, _ = run_import(write_ndjson(tmp_path / "packed.ndjson.gz", payloads, gz=True))

        assert "stored 540" in out
        assert telemetry_state.snapshot() == plain

    def test_re_importing_the_same_file_changes_nothing(self, tmp_path, telemetry_state):
        path = write_ndjson(tmp_path / "readings.ndjson", fleet_payloads())
        run_import(path, "--chunk-size", "100")
        before = telemetry_state.snapshot()

        out, _ = run_import(path, "--chunk-size", "77")

        assert "rows read 540, stored 0, duplicates 540, rejected 0" in out
        assert telemetry_state.snapshot() == before

    def test_bad_lines_go_to_the_rejects_file_with_line_numbers_and_the_good_ones_land(
        self, tmp_path
    ):
        good = [meter_payload("M-1", at=T0), vehicle_payload("V-1", at=T0)]
        future = (timezone.now() + timedelta(hours=1)).isoformat()
        lines = [
            json.dumps(good[0]),  # 1
            "{not json",  # 2
            json.dumps({**meter_payload("M-2"), "kwhConsumedAc": -1}),  # 3
            json.dumps({**meter_payload("M-2"), "kwhConsumedAc": "1.5"}),  # 4
            '{"meterId": "M-2", "kwhConsumedAc": NaN, "voltage": 230, '
            '"timestamp": "2026-02-10T10:00:00Z"}',  # 5
            json.dumps({**meter_payload("M-2"), "timestamp": "2026-02-10T10:00:00"}),  # 6
            json.dumps({**vehicle_payload("V-2"), "timestamp": future}),  # 7
            json.dumps({**vehicle_payload("V-2"), "type": "meter"}),  # 8
            json.dumps([good[0]]),  # 9
            "",  # 10: blank lines are not rows
            json.dumps(good[1]),  # 11
        ]
        path = tmp_path / "mixed.ndjson"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        rejects = tmp_path / "rejects.ndjson"

        out, err = run_import(path, "--rejects", rejects)

        assert models.MeterReading.objects.count() == 1
        assert models.VehicleReading.objects.count() == 1
        assert "rows read 10, stored 2, duplicates 0, rejected 8" in out
        reported = [json.loads(line) for line in rejects.read_text().splitlines()]
        assert [r["line"] for r in reported] == [2, 3, 4, 5, 6, 7, 8, 9]
        assert {r["file"] for r in reported} == {str(path)}
        assert [r["original"] for r in reported] == [lines[n - 1] for n in (2, 3, 4, 5, 6, 7, 8, 9)]
        by_line = {r["line"]: r["errors"] for r in reported}
        assert "not valid JSON" in by_line[2]["nonFieldErrors"][0]
        assert by_line[3] == {"kwhConsumedAc": ["Expected `float` >= 0.0"]}
        assert by_line[4] == {"kwhConsumedAc": ["Expected `float`, got `str`"]}
        assert "not valid JSON" in by_line[5]["nonFieldErrors"][0]
        assert by_line[6] == {"timestamp": ["Expected `datetime` with a timezone component"]}
        assert "in the future" in by_line[7]["timestamp"][0]
        assert by_line[8] == {"type": ['"meter" does not match a vehicle reading.']}
        assert by_line[9] == {"nonFieldErrors": ["Expected a JSON object."]}
        assert f"{path}:3: kwhConsumedAc: Expected `float` >= 0.0" in err

    def test_bad_csv_rows_are_reported_by_line(self, tmp_path):
        path = tmp_path / "bad.csv"
        path.write_text(
            CSV_HEADER
            + "meter,M-1,2026-02-10T10:00:00Z,1.0,230,,\n"  # 2: good
            + "meter,M-1,2026-02-10T10:01:00Z,abc,230,,\n"  # 3
            + "meter,M-1,2026-02-10T10:02:00Z,nan,230,,\n"  # 4
            + ",M-1,2026-02-10T10:03:00Z,1.0,230,,\n"  # 5: no type for deviceId
            + "vehicle,V-1,2026-02-10T10:00:00Z,1.0,,101,20\n"  # 6: soc > 100
            + "meter,M-1,2026-02-10T10:04:00Z,1.0\n",  # 7: short row
            encoding="utf-8",
        )
        rejects = tmp_path / "rejects.ndjson"

        out, _ = run_import(path, "--rejects", rejects)

        assert "rows read 6, stored 1, duplicates 0, rejected 5" in out
        by_line = {
            r["line"]: r["errors"] for r in map(json.loads, rejects.read_text().splitlines())
        }
        assert by_line == {
            3: {"kwh": ["'abc' is not a number."]},
            4: {"kwh": ["'nan' is not a finite number."]},
            5: {"type": ['Must be "meter" or "vehicle" when the row has deviceId.']},
            6: {"soc": ["Expected `float` <= 100.0"]},
            7: {"nonFieldErrors": ["Expected 7 columns as in the header, found 4."]},
        }

    def test_an_unknown_device_is_rejected_by_line_when_registration_is_off(
        self, tmp_path, settings
    ):
        settings.TELEMETRY_AUTO_REGISTER = False
        Meter.objects.create(meter_id="M-1")
        path = write_ndjson(tmp_path / "r.ndjson", [meter_payload("M-1"), meter_payload("M-404")])
        rejects = tmp_path / "rejects.ndjson"

        out, _ = run_import(path, "--rejects", rejects)

        assert "stored 1, duplicates 0, rejected 1" in out
        assert [json.loads(line) for line in rejects.read_text().splitlines()] == [
            {
                "file": str(path),
                "line": 2,
                "errors": {
                    "meterId": [
                        "Unknown meter 'M-404'; automatic registration is off "
                        "(TELEMETRY_AUTO_REGISTER)."
                    ]
                },
                "original": json.dumps(meter_payload("M-404")),
            }
        ]
        assert not Meter.objects.filter(meter_id="M-404").exists()

    def test_a_replayed_reading_within_the_file_counts_once(self, tmp_path, telemetry_state):
        payload = meter_payload("M-1", kwh=2.0)
        path = write_ndjson(tmp_path / "dup.ndjson", [payload, payload])

        out, _ = run_import(path)

        assert "stored 1, duplicates 1" in out
        assert telemetry_state.rollups()["meters"] == [("M-1", T0, 2.0, 1)]

    def test_the_command_shows_progress_on_stderr_and_a_summary_on_stdout(self, tmp_path):
        path = write_ndjson(tmp_path / "r.ndjson", fleet_payloads(devices=1, minutes=5))

        out, err = run_import(path)

        assert out.count("\n") == 1
        assert out.startswith("import_telemetry: rows read 10, stored 10")
        assert "rows/s" in out
        assert "import:" in err and "rows" in err

    def test_a_missing_file_is_an_operator_error(self, tmp_path):
        with pytest.raises(CommandError, match="no such file"):
            run_import(tmp_path / "missing.ndjson")

    def test_a_file_of_unknown_format_is_an_operator_error(self, tmp_path):
        path = tmp_path / "readings.txt"
        path.write_text("{}\n")

        with pytest.raises(CommandError, match="pass --format"):
            run_import(path)

    def test_a_csv_without_a_usable_header_is_refused_before_anything_is_stored(self, tmp_path):
        good = write_ndjson(tmp_path / "good.ndjson", [meter_payload()])
        bad = tmp_path / "bad.csv"
        bad.write_text("a,b,c\n1,2,3\n")

        with pytest.raises(CommandError, match="CSV header must name timestamp"):
            run_import(good, bad)

        assert models.MeterReading.objects.count() == 0

    def test_a_file_where_every_row_is_rejected_fails(self, tmp_path):
        path = tmp_path / "junk.ndjson"
        path.write_text("junk\nmore junk\n")

        with pytest.raises(CommandError, match="Every row was rejected"):
            run_import(path)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
class TestImportTelemetryCommitted:
    """Imports through the writer thread, with every chunk committed (as in production)."""

    def test_re_importing_with_committed_chunks_changes_nothing(self, tmp_path, telemetry_state):
        path = write_ndjson(tmp_path / "readings.ndjson", fleet_payloads())
        run_import(path, "--chunk-size", "50")
        before = telemetry_state.snapshot()

        out, _ = run_import(path, "--chunk-size", "50")

        assert "stored 0, duplicates 540" in out
        assert telemetry_state.snapshot() == before
        assert telemetry_state.rollups() == telemetry_state.rollups_from_history()

    def test_an_import_interrupted_between_chunks_and_rerun_ends_as_a_clean_import(
        self, tmp_path, telemetry_state
    ):
        path = write_ndjson(tmp_path / "readings.ndjson", fleet_payloads(devices=4))
        run_import(path)
        clean = telemetry_state.snapshot()
        wipe_telemetry()

        class Interrupted(Exception):
            pass

        def stop_after_first_chunk(result):
            raise Interrupted

        with pytest.raises(Interrupted):
            readings_import(
                chunks=file_chunks(path, "ndjson", chunk_size=100), on_chunk=stop_after_first_chunk
            )
        partial = models.MeterReading.objects.count() + models.VehicleReading.objects.count()
        run_import(path, "--chunk-size", "100")

        assert 0 < partial < 720
        assert telemetry_state.snapshot() == clean

    def test_an_import_killed_midway_and_rerun_ends_as_a_clean_import(
        self, tmp_path, telemetry_state
    ):
        payloads = fleet_payloads(devices=20, minutes=600)  # 24,000 readings
        path = write_ndjson(tmp_path / "readings.ndjson", payloads)
        run_import(path)
        clean = telemetry_state.snapshot()
        wipe_telemetry()
        env = {**os.environ, "DATABASE_URL": _database_url(), "SECRET_KEY": "test"}

        process = subprocess.Popen(
            [sys.executable, "manage.py", "import_telemetry", str(path), "--chunk-size", "200"],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while models.MeterReading.objects.count() == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait()
        partial = (models.MeterReading.objects.count(), models.VehicleReading.objects.count())
        run_import(path, "--chunk-size", "200")

        assert 0 < sum(partial) < len(payloads)
        # Each stream's part of a chunk commits whole: the rows landed per stream are the sum of
        # that stream's parts of the first k chunks, for some k (the file has no duplicates).
        chunks = [payloads[start : start + 200] for start in range(0, len(payloads), 200)]
        meter_parts = [sum("meterId" in p for p in chunk) for chunk in chunks]
        vehicle_parts = [sum("vehicleId" in p for p in chunk) for chunk in chunks]
        prefix_sums = {
            stream: {sum(parts[:k]) for k in range(len(parts) + 1)}
            for stream, parts in (("meter", meter_parts), ("vehicle", vehicle_parts))
        }
        assert partial[0] in prefix_sums["meter"]
        assert partial[1] in prefix_sums["vehicle"]
        assert telemetry_state.snapshot() == clean


def _database_url() -> str:
    config = connection.settings_dict
    return (
        f"postgres://{config['USER']}@{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}"
        f"/{config['NAME']}"
    )
