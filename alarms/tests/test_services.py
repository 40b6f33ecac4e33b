from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from alarms.models import Alarm, AlarmSubject, AlarmType
from alarms.services import _Plan, _plan_efficiency, alarm_acknowledge, alarms_evaluate
from alarms.tests.conftest import MAPPED_SINCE, NOW, charge, heartbeat, mapped_pair
from analytics.selectors import VehicleFigures
from analytics.tests.test_selectors import assign
from testsupport.concurrency import run_together

ONE_HOUR_AGO = NOW - timedelta(hours=1)


def active(alarm_type: str) -> list[tuple[str, str | None, str | None]]:
    return sorted(
        (
            a.subject,
            a.vehicle.vehicle_id if a.vehicle else None,
            a.meter.meter_id if a.meter else None,
        )
        for a in Alarm.objects.active().filter(type=alarm_type).select_related("vehicle", "meter")
    )


@pytest.fixture
def hourly_window(settings):
    """Judge efficiency over the current hour only, so each hour's charge decides."""
    settings.ALARM_WINDOW_HOURS = 1
    settings.ANALYTICS_FAULT_THRESHOLD_PCT = 85.0
    settings.ALARM_CLEAR_MARGIN_PCT = 2.0


class TestEfficiencyAlarms:
    def test_a_faulty_vehicle_opens_low_efficiency_with_its_meter_and_figures(self, db, clock):
        mapped_pair("V-OK", "M-OK")
        mapped_pair("V-LOW", "M-LOW")
        charge("V-OK", "M-OK", start=ONE_HOUR_AGO, efficiency_pct=92)
        charge("V-LOW", "M-LOW", start=ONE_HOUR_AGO, efficiency_pct=70)
        heartbeat("V-OK", "M-OK", at=NOW - timedelta(minutes=1))
        heartbeat("V-LOW", "M-LOW", at=NOW - timedelta(minutes=1))

        result = alarms_evaluate()

        assert result.opened == {AlarmType.LOW_EFFICIENCY: 1}
        assert result.vehicles == 2
        alarm = Alarm.objects.get()
        assert (alarm.type, alarm.subject, alarm.vehicle.vehicle_id, alarm.meter.meter_id) == (
            "LOW_EFFICIENCY",
            "VEHICLE",
            "V-LOW",
            "M-LOW",
        )
        assert alarm.opened_at == NOW
        assert alarm.figures == {
            "windowStart": "2026-02-09T13:00:00Z",
            "windowEnd": "2026-02-10T12:30:00Z",
            "meterIds": ["M-LOW"],
            "totalAcConsumedKwh": 20.0,
            "totalDcDeliveredKwh": 14.0,
            "efficiencyPct": 70.0,
            "status": "FAULT_DETECTED",
            "thresholdPct": 85.0,
            "attribution": None,
        }
        assert alarm.latest["efficiencyPct"] == 70.0

    def test_dc_above_ac_opens_an_anomaly_and_not_low_efficiency(self, db, clock):
        mapped_pair("V-1", "M-1")
        charge("V-1", "M-1", start=ONE_HOUR_AGO, efficiency_pct=120)
        heartbeat("V-1", "M-1", at=NOW)

        result = alarms_evaluate()

        assert result.opened == {AlarmType.ANOMALY: 1}
        assert active(AlarmType.ANOMALY) == [("VEHICLE", "V-1", "M-1")]

    def test_a_vehicle_without_readings_opens_no_efficiency_alarm(self, db, clock):
        mapped_pair("V-1", "M-1")
        heartbeat("V-1", "M-1", at=NOW)  # alive, but only zero readings: nothing to judge
        mapped_pair("V-2", "M-2")
        # AC on M-2, but its vehicle V-2 sent no reading at all: INSUFFICIENT_DATA.
        charge("V-UNMAPPED", "M-2", start=ONE_HOUR_AGO)

        alarms_evaluate()

        assert active(AlarmType.LOW_EFFICIENCY) == []
        assert active(AlarmType.ANOMALY) == []

    def test_idle_and_insufficient_data_verdicts_open_nothing(self):
        figures = [
            VehicleFigures(1, "V-IDLE", ("M-1",), 0.0016, 0.0, None, "IDLE"),
            VehicleFigures(2, "V-NODATA", ("M-2",), 0.0, 0.0, None, "INSUFFICIENT_DATA"),
            VehicleFigures(3, "V-LOW", ("M-3",), 20.0, 10.0, 50.0, "FAULT_DETECTED"),
        ]
        plan = _Plan([], NOW)

        _plan_efficiency(plan, figures, start=ONE_HOUR_AGO, end=NOW, threshold=85.0)

        assert [(a.type, a.vehicle.vehicle_id) for a in plan.new] == [("LOW_EFFICIENCY", "V-LOW")]

    def test_low_efficiency_clears_only_above_the_margin_and_then_reopens(
        self, db, clock, hourly_window
    ):
        mapped_pair("V-1", "M-1")
        hour = NOW.replace(minute=0)
        timeline = []
        # Each hour: a charge at this efficiency, then an evaluation at half past.
        for offset, efficiency in enumerate([70, 86, 86.9, 87.5, 80]):
            start = hour + timedelta(hours=offset)
            clock.move_to(start + timedelta(minutes=30))
            charge("V-1", "M-1", start=start, efficiency_pct=efficiency)
            heartbeat("V-1", "M-1", at=start + timedelta(minutes=29))
            result = alarms_evaluate()
            timeline.append((efficiency, result.opened, result.cleared, result.active))

        assert timeline == [
            (70, {"LOW_EFFICIENCY": 1}, {}, 1),
            (86, {}, {}, 1),  # above the threshold, not above it by the margin
            (86.9, {}, {}, 1),
            (87.5, {}, {"LOW_EFFICIENCY": 1}, 0),
            (80, {"LOW_EFFICIENCY": 1}, {}, 1),  # a new alarm, the old one stays cleared
        ]
        first, second = Alarm.objects.order_by("opened_at")
        assert first.cleared_at == hour + timedelta(hours=3, minutes=30)
        assert first.latest["efficiencyPct"] == 87.5
        assert first.figures["efficiencyPct"] == 70.0
        assert second.cleared_at is None

    def test_an_anomaly_clears_when_dc_is_back_at_or_below_ac(self, db, clock, hourly_window):
        mapped_pair("V-1", "M-1")
        hour = NOW.replace(minute=0)
        clock.move_to(hour + timedelta(minutes=30))
        charge("V-1", "M-1", start=hour, efficiency_pct=110)
        heartbeat("V-1", "M-1", at=hour + timedelta(minutes=29))
        assert alarms_evaluate().opened == {"ANOMALY": 1}

        clock.move_to(hour + timedelta(hours=1, minutes=30))
        charge("V-1", "M-1", start=hour + timedelta(hours=1), efficiency_pct=100)
        heartbeat("V-1", "M-1", at=hour + timedelta(hours=1, minutes=29))

        assert alarms_evaluate().cleared == {"ANOMALY": 1}

    def test_a_window_with_nothing_to_judge_keeps_the_alarm(self, db, clock, hourly_window):
        mapped_pair("V-1", "M-1")
        hour = NOW.replace(minute=0)
        clock.move_to(hour + timedelta(minutes=30))
        charge("V-1", "M-1", start=hour, efficiency_pct=60)
        heartbeat("V-1", "M-1", at=hour + timedelta(minutes=29))
        alarms_evaluate()

        clock.move_to(hour + timedelta(hours=1, minutes=10))
        heartbeat("V-1", "M-1", at=hour + timedelta(hours=1, minutes=9))
        result = alarms_evaluate()

        assert result.cleared == {}
        assert active(AlarmType.LOW_EFFICIENCY) == [("VEHICLE", "V-1", "M-1")]


class TestOfflineAlarms:
    def test_a_silent_meter_opens_device_offline_and_clears_when_it_reports(self, db, clock):
        mapped_pair("V-1", "M-1")
        heartbeat("V-1", "M-1", at=NOW - timedelta(minutes=20))
        # The vehicle goes on reporting (its readings land; the other side is another meter).
        charge("V-1", "M-ELSEWHERE", start=NOW - timedelta(minutes=1), minutes=1)

        result = alarms_evaluate()

        assert result.opened == {"DEVICE_OFFLINE": 1}
        assert active(AlarmType.DEVICE_OFFLINE) == [("METER", "V-1", "M-1")]
        alarm = Alarm.objects.get(type=AlarmType.DEVICE_OFFLINE)
        assert alarm.figures == {
            "lastReadingAt": "2026-02-10T12:10:00Z",
            "silentMinutes": 20.0,
            "offlineAfterMinutes": 15,
            "evaluatedAt": "2026-02-10T12:30:00Z",
        }

        clock.shift(timedelta(minutes=5))
        assert alarms_evaluate().opened == {}  # still silent: the same alarm, refreshed
        alarm.refresh_from_db()
        assert alarm.latest["silentMinutes"] == 25.0

        heartbeat("V-1", "M-1", at=NOW + timedelta(minutes=6))
        clock.shift(timedelta(minutes=2))
        assert alarms_evaluate().cleared == {"DEVICE_OFFLINE": 1}
        alarm.refresh_from_db()
        assert alarm.cleared_at == NOW + timedelta(minutes=7)
        assert alarm.latest["lastReadingAt"] == "2026-02-10T12:36:00Z"

    def test_a_mapped_device_that_never_reported_is_offline_after_the_grace(self, db, clock):
        mapped_pair("V-1", "M-1")

        alarms_evaluate()

        assert active(AlarmType.DEVICE_OFFLINE) == [
            ("METER", "V-1", "M-1"),
            ("VEHICLE", "V-1", "M-1"),
        ]
        assert Alarm.objects.filter(type="DEVICE_OFFLINE").first().figures["lastReadingAt"] is None

    def test_a_device_reporting_within_the_limit_is_not_offline(self, db, clock):
        mapped_pair("V-1", "M-1")
        heartbeat("V-1", "M-1", at=NOW - timedelta(minutes=14))

        assert alarms_evaluate().opened == {}


class TestEvaluation:
    def test_a_rerun_changes_nothing(self, db, clock):
        mapped_pair("V-1", "M-1")
        charge("V-1", "M-1", start=ONE_HOUR_AGO, efficiency_pct=50)
        heartbeat("V-1", "M-1", at=NOW)
        first = alarms_evaluate()

        second = alarms_evaluate()

        assert first.opened == {"LOW_EFFICIENCY": 1}
        assert (second.opened, second.cleared, second.active) == ({}, {}, 1)
        assert Alarm.objects.count() == 1

    def test_the_database_refuses_a_second_active_alarm_of_a_subject(self, db):
        vehicle, meter = mapped_pair("V-1", "M-1")
        Alarm.objects.create(type="LOW_EFFICIENCY", subject="VEHICLE", vehicle=vehicle, meter=meter)
        Alarm.objects.create(  # a cleared one may exist beside it
            type="LOW_EFFICIENCY",
            subject="VEHICLE",
            vehicle=vehicle,
            cleared_at=NOW + timedelta(days=400),
        )
        Alarm.objects.create(type="DEVICE_OFFLINE", subject="METER", vehicle=vehicle, meter=meter)

        with pytest.raises(IntegrityError), transaction.atomic():
            Alarm.objects.create(type="LOW_EFFICIENCY", subject="VEHICLE", vehicle=vehicle)
        with pytest.raises(IntegrityError), transaction.atomic():
            Alarm.objects.create(type="DEVICE_OFFLINE", subject="METER", meter=meter)
        with pytest.raises(IntegrityError), transaction.atomic():
            Alarm.objects.create(type="ANOMALY", subject="METER", meter=meter)

    def test_acknowledging_is_idempotent_and_keeps_the_first(self, db, staff_user, analyst_user):
        vehicle, _ = mapped_pair("V-1", "M-1")
        alarm = Alarm.objects.create(type="ANOMALY", subject="VEHICLE", vehicle=vehicle)

        assert alarm_acknowledge(alarm_id=alarm.pk, user=staff_user) is True
        assert alarm_acknowledge(alarm_id=alarm.pk, user=analyst_user) is False

        alarm.refresh_from_db()
        assert alarm.acknowledged_by == staff_user
        assert alarm.cleared_at is None
        with pytest.raises(Alarm.DoesNotExist):
            alarm_acknowledge(alarm_id=alarm.pk + 1, user=staff_user)


@pytest.mark.postgresql
class TestConcurrentEvaluations:
    def test_two_evaluations_at_once_open_each_alarm_once(self, transactional_db):
        from django.utils import timezone

        now = timezone.now()
        mapped_pair("V-1", "M-1")
        mapped_pair("V-2", "M-2")
        charge("V-1", "M-1", start=now - timedelta(minutes=30), efficiency_pct=50)
        charge("V-2", "M-2", start=now - timedelta(minutes=30), efficiency_pct=130)
        results = run_together(lambda: alarms_evaluate(now=now))

        opened = [r.opened for r in results]
        assert sorted(opened, key=len) == [{}, {"ANOMALY": 1, "LOW_EFFICIENCY": 1}]
        assert Alarm.objects.active().count() == 2
        assert AlarmSubject.VEHICLE in set(Alarm.objects.values_list("subject", flat=True))


class TestAttributionOfLowEfficiency:
    def test_a_low_efficiency_alarm_names_the_charger_low_with_two_vehicles(self, db, clock):
        """M-C charges V-1 badly, is moved to V-2 and charges it badly too: both alarms blame it."""
        assign("V-1", "M-C", MAPPED_SINCE)
        charge("V-1", "M-C", start=NOW - timedelta(hours=6), efficiency_pct=70)
        assign("V-2", "M-C", NOW - timedelta(hours=4))
        charge("V-2", "M-C", start=NOW - timedelta(hours=3), efficiency_pct=72)

        alarms_evaluate()

        low = Alarm.objects.filter(type=AlarmType.LOW_EFFICIENCY).select_related("vehicle")
        blamed = {
            alarm.vehicle.vehicle_id: [
                (suspect["verdict"], suspect["meterId"]) for suspect in alarm.figures["attribution"]
            ]
            for alarm in low
        }
        assert blamed == {
            "V-1": [("CHARGER_SUSPECTED", "M-C")],
            "V-2": [("CHARGER_SUSPECTED", "M-C")],
        }
        evidence = low.get(vehicle__vehicle_id="V-2").figures["attribution"][0]["pairings"]
        assert [(p["vehicleId"], p["meterId"], p["status"]) for p in evidence] == [
            ("V-1", "M-C", "FAULT_DETECTED"),
            ("V-2", "M-C", "FAULT_DETECTED"),
        ]
