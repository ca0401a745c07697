"""API representations of events, event types, endpoints and deliveries."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from membership_site.api.serializers import StrictSerializer

from .models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from .selectors import StreamPosition


class EventSerializer(serializers.ModelSerializer):
    """An event as in the stream; webhooks carry the same object without ``cursor``."""

    id = serializers.CharField(source="event_id", help_text="`evt_...`, also the `webhook-id` header.")
    cursor = serializers.SerializerMethodField(help_text="Pass as `after` to read the events after this one.")
    data = serializers.JSONField(help_text="The payload; its shape depends on `type` (see GET /event-types).")

    class Meta:
        model = Event
        fields = [
            "id",
            "cursor",
            "type",
            "occurred_at",
            "recorded_at",
            "program_id",
            "member_id",
            "member_sequence",
            "schema_version",
            "data",
        ]
        read_only_fields = fields

    def get_cursor(self, event: Event) -> str:
        return StreamPosition.of(event).encode()


class EventPageSerializer(serializers.Serializer):
    results = EventSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Where to continue: the last event's cursor, or `after` if none came."
    )
    has_more = serializers.BooleanField(help_text="More events are readable now; ask again at once.")


class EventStreamQuerySerializer(StrictSerializer):
    after = serializers.CharField(required=False, help_text="A cursor from an earlier page or event.")
    type = serializers.CharField(required=False, help_text="Event types, comma-separated.")
    member = serializers.IntegerField(required=False, min_value=1, help_text="Only this member's events.")
    limit = serializers.IntegerField(required=False, min_value=1)

    def validate_limit(self, value: int) -> int:
        if value > settings.API_PAGE_SIZE_MAX:
            raise serializers.ValidationError(f"At most {settings.API_PAGE_SIZE_MAX}.")
        return value


class EventTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    member_scoped = serializers.BooleanField(
        help_text="Events of this type concern one member and carry `member_id` and `member_sequence`."
    )
    example = serializers.JSONField(help_text="An example of `data`.")


class WebhookEndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "disabled_at",
            "disabled_reason",
            "failing_since",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    event_types = serializers.ListField(child=serializers.CharField(), help_text="Empty: every type.")


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.SerializerMethodField(help_text="`whsec_...`: shown only in this response.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, endpoint: WebhookEndpoint) -> str:
        return self.context["secret"]


class WebhookEndpointWriteSerializer(StrictSerializer):
    url = serializers.CharField(max_length=2000, help_text="https URL resolving to a public address.")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        default=list,
        max_length=200,
        help_text="Types to receive (see GET /event-types); empty or absent: all.",
    )
    is_active = serializers.BooleanField(required=False, default=True)


class WebhookEndpointUpdateSerializer(WebhookEndpointWriteSerializer):
    """Only the fields sent change."""


class RotateSecretSerializer(StrictSerializer):
    overlap_hours = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=168,
        help_text="How long the current secret keeps signing next to the new one "
        "(default: the WEBHOOK_SECRET_OVERLAP_HOURS setting, 24). 0 drops it at once.",
    )


class EmptySerializer(StrictSerializer):
    """No body (or an empty object)."""


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = [
            "number",
            "started_at",
            "duration_ms",
            "status_code",
            "succeeded",
            "response_excerpt",
            "error",
            "triggered_by",
        ]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.event_id")
    event_type = serializers.CharField(source="event.type")
    status = serializers.ChoiceField(source="state", choices=Delivery.State.choices)
    attempts = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "endpoint_id",
            "event_id",
            "event_type",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "attempts",
        ]
        read_only_fields = fields
