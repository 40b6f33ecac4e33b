"""Back office of the notifications: endpoints, and every delivery with each attempt."""

from django import forms
from django.contrib import admin
from django.core.validators import URLValidator

from alarms.models import AlarmType
from notifications.models import Delivery, DeliveryAttempt, WebhookEndpoint


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        label="URL",
        max_length=2000,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
    )
    alarm_types = forms.MultipleChoiceField(
        choices=AlarmType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type.",
    )
    secret = forms.CharField(
        min_length=16,
        max_length=200,
        widget=forms.PasswordInput(render_value=True),
        help_text="Signs every body (X-Energy-Signature); at least 16 characters.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "secret", "active", "alarm_types")

    def clean_alarm_types(self) -> list[str]:
        return sorted(set(self.cleaned_data["alarm_types"]))


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("id", "url", "active", "types", "created_at")
    list_filter = ("active",)

    @admin.display(description="alarm types")
    def types(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.alarm_types) or "all"


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("number", "attempted_at", "status_code", "error", "duration_ms")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "event",
        "alarm",
        "endpoint",
        "status",
        "attempt_count",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "event")
    list_select_related = ("alarm__vehicle", "alarm__meter", "endpoint")
    show_full_result_count = False
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = (DeliveryAttemptInline,)

    def has_add_permission(self, request) -> bool:
        return False
