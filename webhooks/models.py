"""The event outbox, webhook endpoints and their deliveries.

Invariants:
- An Event is written in the same transaction as the change it describes, so a
  rolled-back change leaves none and a committed one has exactly one. Events are never
  updated, except that a member's erasure nulls their personal data in its events
  (``events_redact_member``), and are deleted only by the retention purge (with their
  dispatch and deliveries).
- ``member_sequence`` numbers a member's events 1, 2, 3, ... without gaps, in commit order
  of the member's changes (the counter row is locked by the writer until it commits).
- ``Event.txid`` is the PostgreSQL transaction that wrote the event (0 on SQLite). The
  stream serves (txid, id) in order and only once every transaction with a smaller txid
  has ended, so a poller never skips an event that commits late.
- Every event has one EventDispatch row, written with it; ``dispatched_at`` is set once
  its deliveries exist. A committed, undispatched row older than a grace period is a
  dispatch that was lost, and the sweeper redoes it.
- A Delivery is one event for one endpoint (unique); its attempts are logged in
  DeliveryAttempt. ``succeeded`` and ``failed`` are final until someone retries by hand.
- Webhook secrets are stored encrypted (``webhooks.crypto``), never hashed (they are
  needed to sign) and never in history tables.
- This app imports no domain app: programs and members are referred to by id.
"""

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone

from membership_site.models import TimeStampedModel, audited_history


def new_event_id() -> str:
    return f"evt_{secrets.token_hex(12)}"


class CurrentTransactionId(models.Func):
    """The writing transaction's id: ``pg_current_xact_id()`` (64 bits, never wraps) on
    PostgreSQL; 0 on SQLite, whose single writer commits in id order anyway."""

    output_field = models.BigIntegerField()
    allowed_default = True

    def as_sql(self, compiler, connection, **extra_context):
        return "0", []

    def as_postgresql(self, compiler, connection, **extra_context):
        return "(pg_current_xact_id()::text::bigint)", []


class Event(models.Model):
    id = models.BigAutoField(primary_key=True)
    event_id = models.CharField(max_length=40, unique=True, default=new_event_id, editable=False)
    type = models.CharField(max_length=64, db_index=True)
    program_id = models.BigIntegerField(db_index=True)
    member_id = models.BigIntegerField(null=True, blank=True)
    member_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    schema_version = models.PositiveSmallIntegerField(default=1)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now, db_index=True)
    txid = models.BigIntegerField(db_default=CurrentTransactionId(), editable=False)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["program_id", "txid", "id"], name="event_program_stream"),
            models.Index(fields=["member_id", "member_sequence"], name="event_member_sequence"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


class MemberEventCounter(models.Model):
    """The last sequence number given to a member's event."""

    member_id = models.BigIntegerField(primary_key=True)
    last_sequence = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"member {self.member_id}: {self.last_sequence}"


class EventDispatch(models.Model):
    """Whether an event's deliveries have been created (kept apart: events are immutable)."""

    event = models.OneToOneField(Event, primary_key=True, on_delete=models.CASCADE, related_name="dispatch")
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"], name="dispatch_pending", condition=Q(dispatched_at__isnull=True)
            )
        ]

    def __str__(self) -> str:
        return f"dispatch of event {self.event_id}: {'done' if self.dispatched_at else 'pending'}"


class WebhookEndpoint(TimeStampedModel):
    program_id = models.BigIntegerField(
        db_index=True, help_text="Id of the program whose events it receives."
    )
    url = models.URLField(max_length=2000, help_text="https address receiving the POSTs.")
    description = models.CharField(max_length=500, blank=True)
    event_types = models.JSONField(
        default=list, blank=True, help_text="Event types sent to this endpoint. Empty: all types."
    )
    is_active = models.BooleanField(default=True)
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Until then the previous secret also signs."
    )
    failing_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="First failed attempt since the last success."
    )
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=500, blank=True, editable=False)

    history = audited_history(excluded_fields=["secret_encrypted", "previous_secret_encrypted"])

    class Meta:
        ordering = ["id"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return f"{self.url} (program {self.program_id})"

    def receives(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class Delivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    OPEN_STATES = (State.PENDING, State.SENDING, State.RETRYING)

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    program_id = models.BigIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="While sending: after this, the attempt is taken as lost."
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    retry_requested_by = models.CharField(
        max_length=100, blank=True, help_text="Who asked for the pending manual resend."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_event_endpoint")]
        indexes = [
            models.Index(fields=["endpoint", "id"], name="delivery_endpoint"),
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_open",
                condition=Q(state__in=["pending", "sending", "retrying"]),
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.state})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)
    response_excerpt = models.TextField(blank=True, help_text="The first 1 KB of the response body.")
    error = models.CharField(max_length=500, blank=True)
    triggered_by = models.CharField(
        max_length=100, blank=True, help_text="Empty for automatic attempts; who resent it otherwise."
    )

    class Meta:
        ordering = ["delivery_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
