import hashlib
import hmac
import json
from datetime import timedelta

import pytest

from alarms import services as alarm_services
from alarms.models import Alarm
from alarms.services import alarms_evaluate
from alarms.tests.conftest import charge, heartbeat, mapped_pair
from notifications import services
from notifications.models import Delivery, DeliveryAttempt, DeliveryStatus, WebhookEndpoint
from notifications.services import deliveries_enqueue, notifications_deliver
from notifications.tests.conftest import NOW, SECRET
from testsupport.concurrency import run_together
from testsupport.webhook import WebhookReceiver

LEASE = timedelta(seconds=10 + 60)  # NOTIFY_TIMEOUT_SECONDS (default 10) + 60


def a_faulty_vehicle(vehicle_id: str = "V-1", meter_id: str = "M-1") -> None:
    mapped_pair(vehicle_id, meter_id)
    charge(vehicle_id, meter_id, start=NOW - timedelta(minutes=25), efficiency_pct=60)
    heartbeat(vehicle_id, meter_id, at=NOW)


def endpoint(url: str, **fields) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(url=url, secret=SECRET, **fields)


def verify(request, secret: str = SECRET) -> bool:
    """What a receiver does: recompute the HMAC of the raw body and compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers["X-Energy-Signature"])


class TestOutbox:
    def test_each_alarm_change_writes_one_delivery_per_matching_active_endpoint(
        self, db, moving_clock
    ):
        every = endpoint("http://127.0.0.1:9/all")
        offline_only = endpoint("http://127.0.0.1:9/offline", alarm_types=["DEVICE_OFFLINE"])
        endpoint("http://127.0.0.1:9/paused", active=False)
        low = endpoint("http://127.0.0.1:9/low", alarm_types=["LOW_EFFICIENCY", "ANOMALY"])
        a_faulty_vehicle()

        result = alarms_evaluate()

        alarm = Alarm.objects.get()
        assert result.deliveries == 2
        deliveries = Delivery.objects.order_by("endpoint_id")
        assert [(d.endpoint_id, d.alarm_id, d.event) for d in deliveries] == [
            (every.pk, alarm.pk, "alarm.opened"),
            (low.pk, alarm.pk, "alarm.opened"),
        ]
        assert not offline_only.deliveries.exists()
        body = json.loads(deliveries[0].body)
        assert body["deliveryId"] == str(deliveries[0].id)
        assert body["alarm"]["id"] == alarm.pk
        assert body["alarm"]["vehicleId"] == "V-1"
        assert body["alarm"]["meterId"] == "M-1"

    def test_a_cleared_alarm_is_delivered_too(self, db, moving_clock, settings):
        settings.ALARM_WINDOW_HOURS = 1
        a_faulty_vehicle()
        alarms_evaluate()
        endpoint("http://127.0.0.1:9/all")
        moving_clock.shift(timedelta(hours=1))
        charge("V-1", "M-1", start=NOW.replace(minute=0) + timedelta(hours=1), efficiency_pct=95)
        heartbeat("V-1", "M-1", at=NOW + timedelta(hours=1))

        alarms_evaluate()

        delivery = Delivery.objects.get()
        assert delivery.event == "alarm.cleared"
        assert json.loads(delivery.body)["alarm"]["clearedAt"] is not None

    def test_the_outbox_refuses_to_write_outside_a_transaction(self, transactional_db):
        with pytest.raises(RuntimeError, match="transaction"):
            deliveries_enqueue(changes=[], now=NOW)

    def test_nothing_is_delivered_for_an_alarm_whose_transaction_rolled_back(
        self, db, moving_clock, receiver, monkeypatch
    ):
        endpoint(receiver.url)
        a_faulty_vehicle()
        real_enqueue = alarm_services.deliveries_enqueue

        def enqueue_then_crash(**kwargs):
            assert real_enqueue(**kwargs) == 1  # the delivery row was written...
            raise RuntimeError("crash before commit")  # ...and is rolled back with the alarm

        monkeypatch.setattr(alarm_services, "deliveries_enqueue", enqueue_then_crash)
        with pytest.raises(RuntimeError, match="crash before commit"):
            alarms_evaluate()

        run = notifications_deliver()

        assert (Alarm.objects.count(), Delivery.objects.count(), run.claimed) == (0, 0, 0)
        assert receiver.requests == []


class TestDelivery:
    def test_a_delivery_is_posted_signed_with_its_id(self, db, moving_clock, receiver):
        endpoint(receiver.url)
        a_faulty_vehicle()
        alarms_evaluate()
        delivery = Delivery.objects.get()

        run = notifications_deliver()

        assert (run.claimed, run.delivered) == (1, 1)
        (request,) = receiver.requests
        assert request.path == "/hook"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-Energy-Delivery"] == str(delivery.id)
        assert request.headers["X-Energy-Event"] == "alarm.opened"
        assert verify(request)
        assert not verify(request, secret="another-secret-entirely")
        assert request.body == delivery.body.encode()
        body = json.loads(request.body)
        assert body["event"] == "alarm.opened"
        assert body["alarm"]["type"] == "LOW_EFFICIENCY"
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.DELIVERED
        assert [a.status_code for a in delivery.attempts.all()] == [200]
        assert notifications_deliver().claimed == 0  # delivered once, not again

    def test_a_500_is_retried_after_the_backoff_then_delivered(self, db, moving_clock, settings):
        settings.NOTIFY_BACKOFF_SECONDS = 30
        with WebhookReceiver(statuses=[500]) as receiver:
            endpoint(receiver.url)
            a_faulty_vehicle()
            alarms_evaluate()

            first = notifications_deliver()
            early = notifications_deliver()  # before the backoff: not due
            moving_clock.shift(timedelta(seconds=31))
            second = notifications_deliver()

        assert (first.retrying, early.claimed, second.delivered) == (1, 0, 1)
        assert len(receiver.requests) == 2
        ids = {r.headers["X-Energy-Delivery"] for r in receiver.requests}
        assert len(ids) == 1
        assert receiver.requests[0].body == receiver.requests[1].body
        delivery = Delivery.objects.get()
        assert delivery.status == DeliveryStatus.DELIVERED
        attempts = list(delivery.attempts.values_list("number", "status_code"))
        assert attempts == [(1, 500), (2, 200)]
        assert "HTTP 500" in delivery.attempts.get(number=1).error

    def test_it_gives_up_after_the_maximum_attempts_with_growing_waits(
        self, db, moving_clock, settings
    ):
        settings.NOTIFY_MAX_ATTEMPTS = 3
        settings.NOTIFY_BACKOFF_SECONDS = 10
        waits = []
        with WebhookReceiver(default_status=503) as receiver:
            endpoint(receiver.url)
            a_faulty_vehicle()
            alarms_evaluate()
            for number in (1, 2, 3):
                notifications_deliver()
                delivery = Delivery.objects.get()
                attempt = delivery.attempts.get(number=number)
                # From the end of the attempt that failed (the clock moves on during the POST).
                ended = attempt.attempted_at + timedelta(milliseconds=attempt.duration_ms)
                waits.append((delivery.next_attempt_at - ended).total_seconds())
                moving_clock.shift(timedelta(hours=2))
            after = notifications_deliver()

        assert len(receiver.requests) == 3
        assert after.claimed == 0
        delivery = Delivery.objects.get()
        assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.FAILED, 3)
        assert "HTTP 503" in delivery.last_error
        # 10 s after the first failure, 20 s after the second (each from its own attempt; the
        # second is later than the first's retry by the 2 h the clock was moved). The slack is
        # the time between the attempt's end and its record, which a loaded machine stretches.
        assert 10 <= waits[0] < 13 and 20 <= waits[1] < 23

    def test_a_timeout_or_a_refused_connection_is_a_failed_attempt(
        self, db, moving_clock, settings
    ):
        settings.NOTIFY_TIMEOUT_SECONDS = 0.3
        from testsupport.servers import free_port

        with WebhookReceiver(delay=2.0) as slow:
            endpoint(slow.url)
            endpoint(f"http://127.0.0.1:{free_port()}/nobody")
            a_faulty_vehicle()
            alarms_evaluate()

            run = notifications_deliver()

        assert (run.claimed, run.retrying) == (2, 2)
        errors = sorted(DeliveryAttempt.objects.values_list("error", flat=True))
        assert errors[0].startswith("ConnectError")
        assert errors[1].startswith("ReadTimeout")

    def test_a_crash_between_send_and_record_redelivers_with_the_same_id(
        self, db, moving_clock, receiver, monkeypatch
    ):
        endpoint(receiver.url)
        a_faulty_vehicle()
        alarms_evaluate()
        real_record = services.delivery_attempt_record

        def crash(**kwargs):
            raise SystemExit("worker killed after the POST, before its record")

        monkeypatch.setattr(services, "delivery_attempt_record", crash)
        with pytest.raises(SystemExit):
            notifications_deliver()
        monkeypatch.setattr(services, "delivery_attempt_record", real_record)

        during_lease = notifications_deliver()
        moving_clock.shift(LEASE + timedelta(seconds=1))
        after_lease = notifications_deliver()

        assert (during_lease.claimed, after_lease.delivered) == (0, 1)
        first, second = receiver.requests
        assert first.headers["X-Energy-Delivery"] == second.headers["X-Energy-Delivery"]
        assert first.body == second.body
        assert verify(second)
        assert Delivery.objects.get().status == DeliveryStatus.DELIVERED


@pytest.mark.postgresql
class TestConcurrentWorkers:
    def test_two_workers_deliver_each_delivery_once(self, transactional_db, receiver):
        endpoint(receiver.url)
        for n in range(6):
            mapped_pair(f"V-{n}", f"M-{n}")  # never reported: two offline alarms each
        alarms_evaluate()
        assert Delivery.objects.count() == 12

        def work():
            return [notifications_deliver(limit=8), notifications_deliver(limit=8)]

        runs = [run for pair in run_together(work) for run in pair]

        ids = [r.headers["X-Energy-Delivery"] for r in receiver.requests]
        assert len(ids) == 12 == len(set(ids))
        assert sum(run.delivered for run in runs) == 12


class TestDeletedEndpoint:
    def test_an_endpoint_deleted_mid_send_does_not_break_the_round(
        self, db, moving_clock, receiver, monkeypatch
    ):
        target = endpoint(receiver.url)
        a_faulty_vehicle()
        alarms_evaluate()
        real_post = services._post

        def post_then_delete(client, delivery):
            outcome = real_post(client, delivery)
            WebhookEndpoint.objects.filter(pk=target.pk).delete()
            return outcome

        monkeypatch.setattr(services, "_post", post_then_delete)

        run = notifications_deliver()

        assert run.claimed == 1
        assert len(receiver.requests) == 1
        assert not Delivery.objects.exists()
