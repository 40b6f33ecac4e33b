import uuid

from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from alarms.models import Alarm


class WebhookEndpoint(models.Model):
    """One row per receiver of alarm notifications: a URL, its signing secret, which types."""

    url = models.URLField(
        "URL", max_length=2000, validators=[URLValidator(schemes=["http", "https"])]
    )
    secret = models.CharField(
        max_length=200, help_text="Signs every body: X-Energy-Signature = HMAC-SHA256 of it."
    )
    active = models.BooleanField(default=True)
    alarm_types = models.JSONField(
        "alarm types",
        default=list,
        blank=True,
        help_text="Alarm types to notify (LOW_EFFICIENCY, ANOMALY, DEVICE_OFFLINE); empty: all.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, alarm_type: str) -> bool:
        return not self.alarm_types or alarm_type in self.alarm_types


class DeliveryEvent(models.TextChoices):
    OPENED = "alarm.opened", "alarm opened"
    CLEARED = "alarm.cleared", "alarm cleared"


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING", "pending"
    DELIVERED = "DELIVERED", "delivered"
    FAILED = "FAILED", "failed (gave up)"


class DeliveryQuerySet(models.QuerySet):
    def due(self, now) -> "DeliveryQuerySet":
        return self.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)


class Delivery(models.Model):
    """One row per (alarm change, endpoint): the outbox, written in the alarm change's transaction.

    `id` is the X-Energy-Delivery header of every attempt; `body` is the exact JSON sent (and
    signed) each time. `next_attempt_at` is when a worker may take it: the backoff after a failed
    attempt, or the lease of a worker that claimed it (a worker that dies mid-send leaves it to be
    retried when the lease ends: at least once, same id).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    alarm = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=20, choices=DeliveryEvent.choices)
    body = models.TextField(help_text="The JSON body, byte for byte as sent and signed.")
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        indexes = [
            # notifications_deliver(): the due pending deliveries, oldest due first.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="PENDING"),
                name="notifications_delivery_due",
            ),
            # notifications_deliver(): the rows one worker claimed.
            models.Index(
                fields=["claim_token"],
                condition=Q(claim_token__isnull=False),
                name="notifications_delivery_claim",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} of alarm {self.alarm_id} to {self.endpoint}"


class DeliveryAttempt(models.Model):
    """One row per POST of a delivery: its outcome (HTTP status, or the error)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "number"], name="notifications_attempt_one_per_number"
            )
        ]

    def __str__(self) -> str:
        outcome = self.status_code or self.error[:40]
        return f"attempt {self.number} of {self.delivery_id}: {outcome}"
