from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fleet.models import MeterAssignment

HEADER = "vehicleId,meterId,validFrom\n"
FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
FEB_10 = datetime(2026, 2, 10, tzinfo=UTC)


def import_mappings(path, *args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_mappings", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def periods() -> list[tuple[str, str, datetime, datetime | None]]:
    return sorted(
        MeterAssignment.objects.values_list(
            "vehicle__vehicle_id", "meter__meter_id", "valid_from", "valid_to"
        )
    )


@pytest.mark.django_db
class TestImportMappings:
    def test_a_reassignment_in_the_file_closes_the_previous_period(self, tmp_path):
        path = tmp_path / "map.csv"
        path.write_text(
            HEADER
            + "V-1,M-1,2026-02-01T00:00:00Z\n"
            + "V-2,M-2,2026-02-01T00:00:00+00:00\n"
            + "V-1,M-3,2026-02-10T00:00:00Z\n"
        )

        out, _ = import_mappings(path)

        assert periods() == [
            ("V-1", "M-1", FEB_1, FEB_10),
            ("V-1", "M-3", FEB_10, None),
            ("V-2", "M-2", FEB_1, None),
        ]
        assert "lines 3, assigned 3, unchanged 0, failed 0" in out

    def test_re_running_the_same_file_changes_nothing(self, tmp_path):
        path = tmp_path / "map.csv"
        path.write_text(HEADER + "V-1,M-1,2026-02-01T00:00:00Z\nV-2,M-2,2026-02-01T00:00:00Z\n")
        import_mappings(path)
        before = periods()

        out, _ = import_mappings(path)

        assert periods() == before
        assert "assigned 0, unchanged 2, failed 0" in out

    def test_atomic_applies_nothing_when_a_line_is_malformed_and_names_it(self, tmp_path):
        path = tmp_path / "map.csv"
        path.write_text(
            HEADER + "V-1,M-1,2026-02-01T00:00:00Z\nV-2,M-2,2026-02-01T00:00:00\nV-3,M-3,\n"
        )

        with pytest.raises(CommandError, match=r"line 3: validFrom .* must carry a UTC offset"):
            import_mappings(path, "--atomic")

        assert periods() == []

    def test_atomic_applies_nothing_when_a_line_conflicts_and_names_it(self, tmp_path):
        path = tmp_path / "map.csv"
        path.write_text(
            HEADER
            + "V-1,M-1,2026-02-10T00:00:00Z\n"
            + "V-2,M-2,2026-02-10T00:00:00Z\n"
            + "V-3,M-1,2026-02-05T00:00:00Z\n"
        )

        with pytest.raises(CommandError, match=r"line 4: .*overlaps the assignment"):
            import_mappings(path, "--atomic")

        assert periods() == []

    def test_per_line_mode_reports_bad_lines_and_applies_the_rest(self, tmp_path):
        path = tmp_path / "map.csv"
        path.write_text(
            HEADER
            + "V-1,M-1,2026-02-10T00:00:00Z\n"  # 2
            + "V 2,M-2,2026-02-10T00:00:00Z\n"  # 3: bad id
            + "V-3,M-1,2026-02-05T00:00:00Z\n"  # 4: overlaps V-1's period on M-1
            + "V-4,M-4,yesterday\n"  # 5: bad date
            + "V-5,M-5,2026-02-10T00:00:00Z\n"  # 6
        )
        err = StringIO()

        with pytest.raises(CommandError, match="3 line\\(s\\) failed"):
            call_command("import_mappings", str(path), stdout=StringIO(), stderr=err)

        assert [(v, m) for v, m, _, _ in periods()] == [("V-1", "M-1"), ("V-5", "M-5")]
        reported = [line for line in err.getvalue().splitlines() if ", line " in line]
        assert [line.split(", line ")[1].split(":")[0] for line in reported] == ["3", "4", "5"]
        assert "vehicleId 'V 2' is not a device id" in reported[0]
        assert "overlaps the assignment" in reported[1]
        assert "validFrom 'yesterday' is not an ISO 8601 date-time." in reported[2]

    def test_an_empty_valid_from_means_now(self, tmp_path):
        path = tmp_path / "map.csv"
        path.write_text(HEADER + "V-1,M-1,\n")
        before = datetime.now(UTC)

        import_mappings(path)

        ((_, _, valid_from, valid_to),) = periods()
        assert valid_from >= before
        assert valid_to is None

    def test_a_file_without_the_header_is_refused(self, tmp_path):
        path = tmp_path / "map.csv"
        path.write_text("V-1,M-1,2026-02-01T00:00:00Z\n")

        with pytest.raises(CommandError, match="header vehicleId,meterId,validFrom"):
            import_mappings(path)

        assert periods() == []

    def test_a_missing_file_is_an_operator_error(self, tmp_path):
        with pytest.raises(CommandError, match="no such file"):
            import_mappings(tmp_path / "missing.csv")
