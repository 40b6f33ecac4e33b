from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from alarms.models import Alarm
from alarms.tests.conftest import NOW, charge, heartbeat, mapped_pair
from notifications.models import Delivery, DeliveryStatus, WebhookEndpoint
from testsupport.webhook import WebhookReceiver


class TestEvaluateAlarms:
    def test_reports_what_it_opened_and_a_rerun_opens_nothing(self, db, clock):
        mapped_pair("V-1", "M-1")
        charge("V-1", "M-1", start=NOW - timedelta(minutes=40), efficiency_pct=50)
        heartbeat("V-1", "M-1", at=NOW)
        out = StringIO()

        call_command("evaluate_alarms", stdout=out)
        call_command("evaluate_alarms", stdout=out)

        first, second = out.getvalue().splitlines()
        assert first == (
            "2026-02-10T12:30:00Z: 1 mapped vehicles evaluated; opened LOW_EFFICIENCY 1; "
            "cleared none; 1 active; 0 notifications queued"
        )
        assert "opened none" in second
        assert Alarm.objects.count() == 1

    def test_a_loop_needs_a_positive_period(self, db):
        with pytest.raises(CommandError, match="--loop"):
            call_command("evaluate_alarms", "--loop", "0")


class TestDeliverNotifications:
    def test_reports_an_empty_round(self, db):
        out = StringIO()

        call_command("deliver_notifications", stdout=out)

        assert out.getvalue().strip() == (
            "0 deliveries attempted: 0 delivered, 0 to retry, 0 failed"
        )

    def test_drains_a_backlog_larger_than_a_batch(self, db, clock):
        with WebhookReceiver() as receiver:
            WebhookEndpoint.objects.create(url=receiver.url, secret="s" * 16)
            for n in range(3):
                mapped_pair(f"V-{n}", f"M-{n}")  # never reported: 6 offline alarms
            call_command("evaluate_alarms", stdout=StringIO())
            out = StringIO()

            call_command("deliver_notifications", "--batch", "4", stdout=out)

        assert out.getvalue().strip() == (
            "6 deliveries attempted: 6 delivered, 0 to retry, 0 failed"
        )
        assert len(receiver.requests) == 6
        assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
