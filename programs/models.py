"""Programs (brands, the tenant of everything) and their locations.

Invariants:
- ``Program.code`` is unique; ``Program.timezone`` is an IANA zone and ``currency`` an
  ISO 4217 code (validated by the services).
- ``Location.code`` is unique within its program.
"""

from zoneinfo import ZoneInfo

from django.db import models

from membership_site.models import TimeStampedModel, audited_history

from .currencies import CURRENCY_CHOICES


class Program(TimeStampedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        CLOSED = "closed", "Closed"

    code = models.SlugField(max_length=40, unique=True, help_text="Short stable identifier, e.g. 'acme'.")
    name = models.CharField(max_length=200)
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="IANA time zone (e.g. Europe/Paris). Day boundaries for expiry, birthdays, "
        "tier windows and campaign hours are computed in it.",
    )
    currency = models.CharField(
        max_length=3,
        choices=CURRENCY_CHOICES,
        default="USD",
        help_text="ISO 4217 code of the money this program's purchases are in.",
    )
    phone_region = models.CharField(
        max_length=2,
        blank=True,
        help_text="Country (ISO 3166 alpha-2, e.g. FR) for reading phone numbers written "
        "without an international prefix. Empty: the DEFAULT_PHONE_REGION setting.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)

    history = audited_history()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Location(TimeStampedModel):
    class Kind(models.TextChoices):
        STORE = "store", "Store"
        WEB = "web", "Web shop"
        APP = "app", "App"
        CALL_CENTRE = "call_centre", "Call centre"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="locations")
    code = models.SlugField(max_length=40, help_text="Unique within the program, e.g. 'paris-01'.")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.STORE)
    is_active = models.BooleanField(default=True)

    history = audited_history()

    class Meta:
        ordering = ["program_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="location_code_unique_in_program")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"
