"""Members, their cards, labels, consents and status history.

Invariants:
- A member belongs to one program. ``number`` is unique in the program; ``email``,
  ``phone`` and ``external_ref`` are unique in the program when not empty. Email is stored
  lower-case; phone in E.164.
- Status moves pending -> active -> suspended <-> active -> terminated (final); every move
  is a ``StatusChange`` row with reason and actor (enforced by the services).
- Card numbers are unique in the program and never reused: a replaced card keeps its
  number (still resolvable to the member) but is not usable for new transactions.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from membership_site.models import TimeStampedModel, audited_history
from programs.models import Program


class Label(TimeStampedModel):
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="labels")
    code = models.SlugField(max_length=50, help_text="Stable identifier used by the API, e.g. 'vip'.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    history = audited_history()

    class Meta:
        ordering = ["program_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="label_code_unique_in_program")
        ]

    def __str__(self) -> str:
        return self.name or self.code


class Member(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        TERMINATED = "terminated", "Terminated"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="members")
    number = models.CharField(
        max_length=20, help_text="Member number: generated, unique in the program, printed on cards."
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    status_changed_at = models.DateTimeField(default=timezone.now)
    email = models.CharField(max_length=254, blank=True, help_text="Stored lower-case.")
    phone = models.CharField(max_length=20, blank=True, help_text="Stored in E.164, e.g. +33612345678.")
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    language = models.CharField(
        max_length=16, blank=True, help_text="Preferred language (BCP 47, e.g. fr-CA)."
    )
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    region = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2.")
    preferences = models.JSONField(default=dict, blank=True)
    external_ref = models.CharField(
        max_length=100, blank=True, help_text="The member's id in an external system (CRM)."
    )
    joined_at = models.DateTimeField(default=timezone.now)
    erased_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When personal data was erased (GDPR)."
    )
    labels = models.ManyToManyField(Label, through="MemberLabel", related_name="members", blank=True)

    history = audited_history()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["program", "number"], name="member_number_unique_in_program"),
            models.UniqueConstraint(
                fields=["program", "email"], condition=~Q(email=""), name="member_email_unique_in_program"
            ),
            models.UniqueConstraint(
                fields=["program", "phone"], condition=~Q(phone=""), name="member_phone_unique_in_program"
            ),
            models.UniqueConstraint(
                fields=["program", "external_ref"],
                condition=~Q(external_ref=""),
                name="member_external_ref_unique_in_program",
            ),
        ]
        indexes = [
            models.Index(fields=["program", "status"], name="member_program_status"),
            models.Index(fields=["program", "updated_at"], name="member_program_updated"),
            models.Index(fields=["program", "joined_at"], name="member_program_joined"),
            models.Index(fields=["program", "last_name"], name="member_program_last_name"),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{self.number} {name}".strip()

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class MemberLabel(models.Model):
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="label_links")
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="member_links")
    assigned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "label"], name="member_label_unique")]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.label_id}"


class Consent(models.Model):
    class Purpose(models.TextChoices):
        EMAIL = "email", "E-mail marketing"
        SMS = "sms", "SMS marketing"
        PUSH = "push", "Push notifications"

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="consents")
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    granted = models.BooleanField()
    changed_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(
        max_length=50, blank=True, help_text="Where it was given: pos, web, app, crm, import..."
    )

    history = audited_history()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "purpose"], name="consent_unique_purpose")]

    def __str__(self) -> str:
        return f"{self.purpose}: {'granted' if self.granted else 'withdrawn'}"


class Card(TimeStampedModel):
    class Kind(models.TextChoices):
        PHYSICAL = "physical", "Physical"
        DIGITAL = "digital", "Digital"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        BLOCKED = "blocked", "Blocked"
        REPLACED = "replaced", "Replaced"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="cards")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="cards")
    number = models.CharField(max_length=40)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PHYSICAL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    issued_at = models.DateTimeField(default=timezone.now)
    status_reason = models.CharField(max_length=500, blank=True)
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaces"
    )

    history = audited_history()

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["program", "number"], name="card_number_unique_in_program")
        ]

    def __str__(self) -> str:
        return f"{self.number} ({self.status})"


class StatusChange(models.Model):
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=12, choices=Member.Status.choices)
    to_status = models.CharField(max_length=12, choices=Member.Status.choices)
    reason = models.CharField(max_length=500)
    at = models.DateTimeField(default=timezone.now)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_integration = models.ForeignKey(
        "integrations.Integration", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"
