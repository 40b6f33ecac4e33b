"""Writes of notifications: the outbox rows of alarm changes, and their delivery by webhook."""

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.utils.encoders import JSONEncoder

from alarms.models import Alarm
from alarms.serializers import AlarmSerializer
from api.bulk import rows_insert
from notifications.models import Delivery, DeliveryAttempt, DeliveryStatus, WebhookEndpoint

SIGNATURE_HEADER = "X-Energy-Signature"
DELIVERY_HEADER = "X-Energy-Delivery"
EVENT_HEADER = "X-Energy-Event"
USER_AGENT = "energy-telemetry-webhooks/1.0"
# Longest wait between two attempts of one delivery.
MAX_BACKOFF = timedelta(hours=1)


def signature_of(*, body: bytes, secret: str) -> str:
    """The X-Energy-Signature value: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliveries_enqueue(*, changes: Sequence[tuple[Alarm, str]], now: datetime) -> int:
    """Write one delivery per active endpoint that wants each alarm change; returns how many.

    Runs inside the caller's transaction, the one that changes the alarms (the outbox): if that
    transaction rolls back, so do its deliveries, and nothing is ever sent for it.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("deliveries_enqueue() must run in the alarm change's transaction.")
    if not changes:
        return 0
    endpoints = list(WebhookEndpoint.objects.filter(active=True))
    wanted = [
        (alarm, event, [endpoint for endpoint in endpoints if endpoint.wants(alarm.type)])
        for alarm, event in changes
    ]
    wanted = [change for change in wanted if change[2]]
    # One serializer over every alarm: DRF copies its fields once, not once per alarm.
    alarm_data = AlarmSerializer([alarm for alarm, _, _ in wanted], many=True).data
    occurred_at = now.isoformat().replace("+00:00", "Z")
    rows = []
    for (alarm, event, wanting), data in zip(wanted, alarm_data, strict=True):
        for endpoint in wanting:
            delivery_id = uuid.uuid4()
            body = {
                "deliveryId": str(delivery_id),
                "event": event,
                "occurredAt": occurred_at,
                "alarm": data,
            }
            rows.append(
                Delivery(
                    id=delivery_id,
                    endpoint=endpoint,
                    alarm=alarm,
                    event=event,
                    body=json.dumps(body, cls=JSONEncoder, separators=(",", ":")),
                    created_at=now,
                    next_attempt_at=now,
                )
            )
    rows_insert(model=Delivery, objects=rows)
    return len(rows)


def deliveries_claim(*, now: datetime, limit: int, lease: timedelta) -> list[Delivery]:
    """Take up to `limit` due deliveries for this worker until `now + lease`.

    PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint rows
    without waiting on each other. SQLite has one writer at a time: a single UPDATE claims.
    """
    token = uuid.uuid4()
    due = Delivery.objects.due(now).order_by("next_attempt_at")
    with transaction.atomic(durable=True):
        if connection.features.has_select_for_update_skip_locked:
            ids = list(due.select_for_update(skip_locked=True).values_list("id", flat=True)[:limit])
            claimed = Delivery.objects.filter(id__in=ids)
        else:
            claimed = Delivery.objects.filter(id__in=due.values("id")[:limit])
        claimed.update(claim_token=token, next_attempt_at=now + lease)
    return list(
        Delivery.objects.filter(claim_token=token).select_related("endpoint").order_by("created_at")
    )


@dataclass(frozen=True)
class AttemptOutcome:
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _post(client: httpx.Client, delivery: Delivery) -> AttemptOutcome:
    """POST the delivery's body, signed; never raises for a network error or a bad status."""
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_of(body=body, secret=delivery.endpoint.secret),
        DELIVERY_HEADER: str(delivery.id),
        EVENT_HEADER: delivery.event,
    }
    started_at = timezone.now()
    clock = time.monotonic()
    status_code, error = None, ""
    try:
        response = client.post(delivery.endpoint.url, content=body, headers=headers)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:200]}"
    except httpx.HTTPError as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:500]
    return AttemptOutcome(
        started_at=started_at,
        duration_ms=round((time.monotonic() - clock) * 1000),
        status_code=status_code,
        error=error,
    )


def backoff_after(attempt: int) -> timedelta:
    """Wait after failed attempt number `attempt`: NOTIFY_BACKOFF_SECONDS × 2^(attempt − 1)."""
    return min(timedelta(seconds=settings.NOTIFY_BACKOFF_SECONDS * 2 ** (attempt - 1)), MAX_BACKOFF)


def delivery_attempt_record(*, delivery: Delivery, outcome: AttemptOutcome) -> Delivery:
    """Record one attempt and move the delivery on: delivered, retried later, or failed."""
    with transaction.atomic(durable=True):
        row = Delivery.objects.select_for_update().filter(pk=delivery.pk).first()
        if row is None:  # its endpoint was deleted meanwhile: nothing left to record
            return delivery
        number = row.attempt_count + 1
        DeliveryAttempt.objects.create(
            delivery=row,
            number=number,
            attempted_at=outcome.started_at,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
        changes: dict = {"attempt_count": F("attempt_count") + 1, "claim_token": None}
        if outcome.succeeded:
            changes.update(status=DeliveryStatus.DELIVERED, delivered_at=timezone.now())
        elif number >= settings.NOTIFY_MAX_ATTEMPTS:
            changes.update(status=DeliveryStatus.FAILED, last_error=outcome.error)
        else:
            changes.update(
                next_attempt_at=timezone.now() + backoff_after(number), last_error=outcome.error
            )
        if row.status == DeliveryStatus.PENDING:
            Delivery.objects.filter(pk=row.pk).update(**changes)
        return Delivery.objects.get(pk=row.pk)


@dataclass(frozen=True)
class DeliveryRun:
    claimed: int
    delivered: int
    retrying: int
    failed: int


def notifications_deliver(*, limit: int = 100) -> DeliveryRun:
    """POST every due delivery once (up to `limit`), outside any transaction; record each.

    At least once: a worker that dies between the POST and its record leaves the delivery
    claimed until its lease ends; the next run sends it again with the same X-Energy-Delivery id.
    """
    timeout = settings.NOTIFY_TIMEOUT_SECONDS
    claimed = deliveries_claim(
        now=timezone.now(), limit=limit, lease=timedelta(seconds=timeout + 60)
    )
    counts = {status: 0 for status in DeliveryStatus.values}
    if claimed:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            for delivery in claimed:
                recorded = delivery_attempt_record(
                    delivery=delivery, outcome=_post(client, delivery)
                )
                counts[recorded.status] += 1
    return DeliveryRun(
        claimed=len(claimed),
        delivered=counts[DeliveryStatus.DELIVERED],
        retrying=counts[DeliveryStatus.PENDING],
        failed=counts[DeliveryStatus.FAILED],
    )


@dataclass(frozen=True)
class EndpointChange:
    url: str | None = None
    secret: str | None = None
    active: bool | None = None
    alarm_types: list[str] | None = None


def endpoint_create(
    *, url: str, secret: str, active: bool, alarm_types: list[str]
) -> WebhookEndpoint:
    with transaction.atomic(durable=True):
        return WebhookEndpoint.objects.create(
            url=url, secret=secret, active=active, alarm_types=sorted(set(alarm_types))
        )


def endpoint_update(*, endpoint: WebhookEndpoint, change: EndpointChange) -> WebhookEndpoint:
    """Change the given fields of an endpoint; pending deliveries go to its new URL."""
    fields = {k: v for k, v in vars(change).items() if v is not None}
    if "alarm_types" in fields:
        fields["alarm_types"] = sorted(set(fields["alarm_types"]))
    with transaction.atomic(durable=True):
        for name, value in fields.items():
            setattr(endpoint, name, value)
        endpoint.save(update_fields=list(fields) or None)
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and their attempts."""
    with transaction.atomic(durable=True):
        endpoint.delete()
