"""Tier definitions, qualifying activity, each member's tier state and its history.

Invariants:
- Tier codes and ranks are unique in their program; a higher rank is a better tier. A
  program has at most one default tier (the tier new members get), enforced by a partial
  unique constraint; the services keep exactly one once the program has tiers.
- ``TierActivity`` rows are written once and never updated; they are unique per
  (member, source, reference) so a retried caller cannot count twice. Values are signed:
  refunds and reversals are negative. ``occurred_on`` is the day of ``occurred_at`` in the
  program's time zone, fixed when the row is written; the windows compare it.
- ``MemberTier`` holds one row per member whose program has tiers: created with the member
  (``members_created`` hook) or, for members that existed before, by the evaluation. Its
  tiers belong to the member's program. Only ``tiers.services`` change it, and every change
  writes one ``TierChange`` row and one ``tier.changed`` event in the same transaction.
- ``MemberTier.changed_on`` is the program-local day of the member's last tier change. The
  evaluation for day D leaves alone members changed on or after D, which is what makes
  re-running an evaluation for the same day change nothing.
- Tiers never read the points ledger: the points services record activity here.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from members.models import Member
from membership_site.models import TimeStampedModel, audited_history
from programs.models import Program

# Money amounts are stored with 3 decimals (the most any ISO 4217 currency uses); the
# services refuse more decimals than the program's currency has.
MONEY_DIGITS = {"max_digits": 16, "decimal_places": 3}


class Tier(TimeStampedModel):
    class Mode(models.TextChoices):
        ANY = "any", "Any one threshold"
        ALL = "all", "All thresholds"

    class Window(models.TextChoices):
        ROLLING_MONTHS = "rolling_months", "Rolling months"
        CALENDAR_YEAR = "calendar_year", "Calendar year"
        ANNIVERSARY_YEAR = "anniversary_year", "Membership anniversary year"
        LIFETIME = "lifetime", "Lifetime"

    class Downgrade(models.TextChoices):
        ONE_LEVEL = "one_level", "One level at a time"
        SUPPORTED_LEVEL = "supported_level", "To the level the activity supports"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="tiers")
    code = models.SlugField(max_length=40, help_text="Stable identifier used by the API, e.g. 'gold'.")
    name = models.CharField(max_length=100)
    rank = models.PositiveSmallIntegerField(help_text="Higher is better; unique in the program.")
    is_default = models.BooleanField(
        default=False, help_text="The tier new members get. Exactly one per program."
    )

    qualify_mode = models.CharField(
        max_length=3,
        choices=Mode.choices,
        default=Mode.ANY,
        help_text="Whether meeting any one threshold is enough, or all of them are needed "
        "(applies to both the qualification and the retention thresholds).",
    )
    qualify_spend = models.DecimalField(
        **MONEY_DIGITS,
        null=True,
        blank=True,
        help_text="Qualifying spend (program money) in the window to reach this tier. Empty: not used.",
    )
    qualify_points = models.BigIntegerField(
        null=True, blank=True, help_text="Qualifying points earned in the window. Empty: not used."
    )
    qualify_visits = models.PositiveIntegerField(
        null=True, blank=True, help_text="Visits in the window. Empty: not used."
    )
    retain_spend = models.DecimalField(
        **MONEY_DIGITS,
        null=True,
        blank=True,
        help_text="Spend that keeps the tier (may be lower). Empty: the qualification threshold.",
    )
    retain_points = models.BigIntegerField(
        null=True, blank=True, help_text="Points that keep the tier. Empty: the qualification threshold."
    )
    retain_visits = models.PositiveIntegerField(
        null=True, blank=True, help_text="Visits that keep the tier. Empty: the qualification threshold."
    )
    window_kind = models.CharField(max_length=20, choices=Window.choices, default=Window.ROLLING_MONTHS)
    window_months = models.PositiveSmallIntegerField(
        default=12, help_text="Length of a rolling window, in months (rolling windows only)."
    )
    grace_months = models.PositiveSmallIntegerField(
        default=0,
        help_text="Months a member keeps the tier after falling below the retention threshold. "
        "0: moved down at the first evaluation that finds it.",
    )
    downgrade_policy = models.CharField(max_length=20, choices=Downgrade.choices, default=Downgrade.ONE_LEVEL)

    earn_multiplier = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        default=Decimal("1"),
        help_text="Multiplies a purchase's points from base rates and multipliers (not fixed bonuses, "
        "campaigns' extra rates or event bonuses); 1 = no bonus. The purchase that reaches the tier "
        "earns at the old rate, the next one at this one.",
    )
    discount_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("0"), help_text="Member price discount, 0-100."
    )
    perks = models.TextField(blank=True, help_text="Free text shown to members and staff.")
    rewards_eligible = models.BooleanField(
        default=True, help_text="Whether members of this tier may redeem rewards at all."
    )
    reward_tags = models.JSONField(
        default=list,
        blank=True,
        help_text="Reward tags this tier unlocks (rewards restricted to a tag need a tier listing it).",
    )

    history = audited_history()

    class Meta:
        ordering = ["program_id", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="tier_code_unique_in_program"),
            models.UniqueConstraint(fields=["program", "rank"], name="tier_rank_unique_in_program"),
            models.UniqueConstraint(
                fields=["program"], condition=Q(is_default=True), name="tier_one_default_per_program"
            ),
            models.CheckConstraint(
                condition=Q(qualify_spend__isnull=True) | Q(qualify_spend__gt=0),
                name="tier_qualify_spend_positive",
            ),
            models.CheckConstraint(
                condition=Q(qualify_points__isnull=True) | Q(qualify_points__gt=0),
                name="tier_qualify_points_positive",
            ),
            models.CheckConstraint(
                condition=Q(retain_spend__isnull=True) | Q(retain_spend__gte=0),
                name="tier_retain_spend_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(retain_points__isnull=True) | Q(retain_points__gte=0),
                name="tier_retain_points_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(earn_multiplier__gte=0), name="tier_earn_multiplier_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(discount_percent__gte=0) & Q(discount_percent__lte=100),
                name="tier_discount_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class TierSettings(models.Model):
    """Per-program tier settings; a program without a row uses the defaults."""

    program = models.OneToOneField(Program, on_delete=models.CASCADE, related_name="tier_settings")
    adjustments_qualify = models.BooleanField(
        default=False,
        help_text="Whether manual points adjustments (activity source 'adjustment') count as "
        "qualifying activity. Applies to the whole window from the next calculation on.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    history = audited_history()

    class Meta:
        verbose_name = "tier settings"
        verbose_name_plural = "tier settings"

    def __str__(self) -> str:
        return f"Tier settings of {self.program_id}"


class TierActivity(models.Model):
    class Source(models.TextChoices):
        PURCHASE = "purchase", "Purchase"
        REFUND = "refund", "Refund"
        EARN = "earn", "Points earned outside a purchase"
        REVERSAL = "reversal", "Reversal"
        ADJUSTMENT = "adjustment", "Manual adjustment"
        VISIT = "visit", "Visit without purchase"
        IMPORT = "import", "Imported history"

    id = models.BigAutoField(primary_key=True)
    # The table grows with every purchase: single-column indexes nobody queries by are left out.
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_activity", db_index=False)
    occurred_at = models.DateTimeField()
    occurred_on = models.DateField(help_text="The day of occurred_at in the program's time zone.")
    source = models.CharField(max_length=12, choices=Source.choices)
    reference = models.CharField(max_length=100, help_text="Receipt, order or transaction id of the source.")
    spend = models.DecimalField(**MONEY_DIGITS, default=Decimal("0"))
    points = models.BigIntegerField(default=0)
    visits = models.IntegerField(default=0)
    recorded_at = models.DateTimeField(default=timezone.now)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    actor_integration = models.ForeignKey(
        "integrations.Integration",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    class Meta:
        # Newest recorded first, by primary key: the table is large and occurred_at has no index.
        ordering = ["-id"]
        verbose_name = "qualifying activity"
        verbose_name_plural = "qualifying activity"
        constraints = [
            models.UniqueConstraint(
                fields=["member", "source", "reference"], name="tier_activity_reference_unique"
            )
        ]
        indexes = [
            # The evaluation reads a range of members' activity in their windows; with the
            # filtered and summed columns in the index it is an index-only scan on
            # PostgreSQL (SQLite, the demo database, ignores INCLUDE).
            models.Index(
                fields=["member", "occurred_on"],
                include=["program", "source", "spend", "points", "visits"],
                name="tier_activity_member_day",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.reference}"


class MemberTier(models.Model):
    """A member's current tier and what protects it (grace, lock, lifetime floor)."""

    member = models.OneToOneField(
        Member, on_delete=models.CASCADE, primary_key=True, related_name="tier_state"
    )
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="member_states")
    since = models.DateTimeField(help_text="When the member reached the current tier.")
    grace_until = models.DateField(
        null=True,
        blank=True,
        help_text="In grace: below the retention threshold; moved down by the first evaluation "
        "on or after this day unless the member re-qualifies.",
    )
    locked_until = models.DateField(
        null=True, blank=True, help_text="Not moved down before this day (set by a manual assignment)."
    )
    lifetime_tier = models.ForeignKey(
        Tier,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The member never goes below this tier (a lifetime status).",
    )
    changed_on = models.DateField(
        null=True, blank=True, help_text="Program-local day of the last change (grace included)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "member tier"
        permissions = [("assign_tier", "Can assign a tier to a member by hand")]
        indexes = [models.Index(fields=["program", "member"], name="member_tier_program")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.tier_id}"


class TierChange(models.Model):
    class Reason(models.TextChoices):
        UPGRADE = "upgrade", "Upgrade"
        DOWNGRADE = "downgrade", "Downgrade"
        MANUAL = "manual", "Manual assignment"
        GRACE_STARTED = "grace_started", "Grace started"
        GRACE_ENDED = "grace_ended", "Grace ended (re-qualified)"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_changes", db_index=False)
    from_tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=14, choices=Reason.choices)
    note = models.CharField(
        max_length=500, blank=True, help_text="The reason staff gave for a manual change."
    )
    grace_until = models.DateField(null=True, blank=True)
    locked_until = models.DateField(null=True, blank=True)
    effective_on = models.DateField(help_text="Program-local day the change counts from.")
    at = models.DateTimeField(default=timezone.now)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_integration = models.ForeignKey(
        "integrations.Integration", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["member", "-at", "-id"], name="tier_change_member")]

    def __str__(self) -> str:
        return f"{self.reason}: {self.from_tier_id} → {self.to_tier_id}"


class TierEvaluation(models.Model):
    """One run of the evaluation of a program for a day, with what it did."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    as_of = models.DateField(help_text="The program-local day evaluated (activity before it counts).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    triggered_by = models.CharField(max_length=100, blank=True)
    members = models.PositiveIntegerField(default=0, help_text="Members looked at.")
    assigned = models.PositiveIntegerField(default=0, help_text="Members given the default tier.")
    upgrades = models.PositiveIntegerField(default=0)
    downgrades = models.PositiveIntegerField(default=0)
    grace_started = models.PositiveIntegerField(default=0)
    grace_ended = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(
        default=0, help_text="Members changed by someone else while the batch ran (left as they were)."
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["program", "as_of"], name="tier_evaluation_program_day")]

    def __str__(self) -> str:
        return f"{self.program_id} {self.as_of} ({self.status})"
