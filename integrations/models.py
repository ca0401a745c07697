"""External systems and their credentials.

Invariants:
- An Integration belongs to exactly one program; every request it makes is confined to it.
- ``Integration.scopes`` only holds names from ``integrations.scopes.SCOPES``.
- An API key is stored as its public ``prefix`` plus the SHA-256 of the whole key; the key
  itself is shown once, when created, and never stored.
- Idempotency records are unique per (integration, key).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from membership_site.models import TimeStampedModel, audited_history
from programs.models import Program


class Integration(TimeStampedModel):
    class Kind(models.TextChoices):
        POS = "pos", "Point of sale"
        ECOMMERCE = "ecommerce", "E-commerce"
        CRM = "crm", "CRM"
        OTHER = "other", "Other"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="integrations")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.OTHER)
    scopes = models.JSONField(
        default=list,
        blank=True,
        help_text="Scopes this integration may use, e.g. members:read points:write.",
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive integrations are refused (401) whatever credential they use."
    )
    ip_allowlist = models.JSONField(
        default=list,
        blank=True,
        help_text="CIDR ranges (e.g. 203.0.113.0/24) requests must come from. Empty: any address.",
    )
    rate_limit = models.CharField(
        max_length=20,
        blank=True,
        help_text="Requests allowed per period, e.g. '600/min'. Empty: the API_THROTTLE_RATE setting.",
    )
    oauth_application = models.OneToOneField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="integration",
        help_text="OAuth2 client (client credentials grant) acting as this integration.",
    )

    history = audited_history()

    class Meta:
        ordering = ["program_id", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.program.code})"


class ApiKey(models.Model):
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, help_text="What uses it, e.g. 'till 3'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="From this time on the key is refused (401). Empty: it does not expire.",
    )
    revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="Set by the Revoke action; a revoked key is refused (401) at once."
    )
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Last successful request (to the minute)."
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class IdempotencyRecord(models.Model):
    """The outcome of a POST made with an ``Idempotency-Key`` header.

    Written as ``in_progress`` before the request runs and completed, in the same database
    transaction as the request's own writes, with the response to replay.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    state = models.CharField(max_length=12, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.BinaryField(null=True)
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["integration", "key"], name="idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"
