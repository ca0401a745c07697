"""Earning configuration: per-program earning settings, earning rules and campaigns.

Invariants:
- One ``EarningSettings`` row per program at most (the defaults apply without one).
- A rule's or campaign's ``code`` is unique in its program (rules and campaigns apart);
  ``value`` is positive; a fixed bonus is a whole number of points.
- ``Campaign.budget_used`` never exceeds ``budget_points`` (a CHECK constraint: the last
  guard against two purchases taking the same last points of a budget).
- Condition lists (weekdays, locations, SKUs, categories, tiers, labels) are JSON lists of
  codes; an empty list means "no condition". Dates and hours are program-local.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from membership_site.models import TimeStampedModel, audited_history
from programs.models import Program

from .ledger import Currency

MONEY_DIGITS = {"max_digits": 16, "decimal_places": 3}


class EarningSettings(models.Model):
    """How a program's members earn outside the rules: the return window that keeps purchase
    points pending, and the event bonuses."""

    class BirthdayMode(models.TextChoices):
        DAY = "day", "On the birthday"
        MONTH = "month", "In the birthday month"

    program = models.OneToOneField(Program, on_delete=models.CASCADE, related_name="earning_settings")
    return_window_days = models.PositiveSmallIntegerField(
        default=0,
        help_text="Purchase points stay pending this many days after the purchase (0: available at once).",
    )
    bonus_currency = models.ForeignKey(
        Currency,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Currency of the event bonuses; empty: the program's default currency.",
    )
    enrolment_bonus = models.BigIntegerField(default=0, help_text="Points when a member joins (0: none).")
    birthday_bonus = models.BigIntegerField(default=0, help_text="Points once a year for the birthday.")
    birthday_mode = models.CharField(max_length=5, choices=BirthdayMode.choices, default=BirthdayMode.DAY)
    referral_referrer_bonus = models.BigIntegerField(
        default=0, help_text="Points for the referrer after the referee's first purchase."
    )
    referral_referee_bonus = models.BigIntegerField(
        default=0, help_text="Points for the referee after their first purchase."
    )
    profile_completion_bonus = models.BigIntegerField(
        default=0, help_text="Points once, when every field of profile_completion_fields is filled."
    )
    profile_completion_fields = models.JSONField(
        default=list, blank=True, help_text='Member profile field names, e.g. ["phone", "birth_date"].'
    )
    updated_at = models.DateTimeField(auto_now=True)

    history = audited_history()

    class Meta:
        verbose_name = "earning settings"
        verbose_name_plural = "earning settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(enrolment_bonus__gte=0)
                & Q(birthday_bonus__gte=0)
                & Q(referral_referrer_bonus__gte=0)
                & Q(referral_referee_bonus__gte=0)
                & Q(profile_completion_bonus__gte=0),
                name="points_earning_settings_bonuses_not_negative",
            )
        ]

    def __str__(self) -> str:
        return f"Earning settings of {self.program_id}"


class RuleBase(TimeStampedModel):
    """What earning rules and campaigns share: conditions, an effect, stacking and caps."""

    class Effect(models.TextChoices):
        POINTS_PER_UNIT = "points_per_unit", "Points per unit of money"
        MULTIPLIER = "multiplier", "Multiplier"
        FIXED_BONUS = "fixed_bonus", "Fixed bonus"

    class Scope(models.TextChoices):
        PER_LINE = "per_line", "Per matching line"
        PER_PURCHASE = "per_purchase", "Per purchase"

    class Stacking(models.TextChoices):
        ADD = "add", "Add to the others"
        MULTIPLY = "multiply", "Multiply with the others"
        BEST = "best", "Only the best"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    code = models.SlugField(max_length=50, help_text="Stable identifier used by the API.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    priority = models.IntegerField(
        default=0, help_text="Higher first: decides the base rate of a line and the order of multipliers."
    )
    effect = models.CharField(max_length=20, choices=Effect.choices, default=Effect.POINTS_PER_UNIT)
    scope = models.CharField(max_length=12, choices=Scope.choices, default=Scope.PER_LINE)
    value = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        help_text="Points per unit of money, the multiplier, or the bonus points.",
    )
    stacking = models.CharField(max_length=10, choices=Stacking.choices, default=Stacking.ADD)
    # Conditions (all must hold; empty = no condition).
    starts_on = models.DateField(null=True, blank=True, help_text="First day (program time).")
    ends_on = models.DateField(null=True, blank=True, help_text="Last day (program time).")
    hours_from = models.TimeField(null=True, blank=True, help_text="From this time of day (program time).")
    hours_to = models.TimeField(
        null=True, blank=True, help_text="Until this time (excluded); before hours_from: past midnight."
    )
    weekdays = models.JSONField(
        default=list, blank=True, help_text="ISO weekdays, 1 = Monday ... 7 = Sunday."
    )
    locations = models.JSONField(default=list, blank=True, help_text="Location codes.")
    skus = models.JSONField(default=list, blank=True)
    categories = models.JSONField(default=list, blank=True)
    min_spend = models.DecimalField(
        **MONEY_DIGITS, null=True, blank=True, help_text="Least amount of the matching lines."
    )
    tiers = models.JSONField(default=list, blank=True, help_text="Tier codes.")
    labels = models.JSONField(default=list, blank=True, help_text="Member label codes (any one).")
    first_purchase_only = models.BooleanField(default=False)
    # Caps (empty = none).
    max_points_per_purchase = models.BigIntegerField(null=True, blank=True)
    max_points_per_member_day = models.BigIntegerField(null=True, blank=True)
    max_points_per_member_month = models.BigIntegerField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["program_id", "-priority", "code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class EarningRule(RuleBase):
    """A standing rule of the program (the base rate, and lasting multipliers or bonuses)."""

    history = audited_history()

    class Meta(RuleBase.Meta):
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="points_rule_code_unique"),
            models.CheckConstraint(condition=Q(value__gt=0), name="points_rule_value_positive"),
        ]
        indexes = [models.Index(fields=["program", "is_active"], name="points_rule_active")]


class Campaign(RuleBase):
    """A promotion: like a rule, with an optional total budget of points."""

    budget_points = models.BigIntegerField(
        null=True, blank=True, help_text="Total points the campaign may issue (empty: no budget)."
    )
    budget_used = models.BigIntegerField(
        default=0, editable=False, help_text="Points issued so far against the budget."
    )

    history = audited_history()

    class Meta(RuleBase.Meta):
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="points_campaign_code_unique"),
            models.CheckConstraint(condition=Q(value__gt=0), name="points_campaign_value_positive"),
            models.CheckConstraint(
                condition=Q(budget_used__gte=0)
                & (Q(budget_points__isnull=True) | Q(budget_used__lte=F("budget_points"))),
                name="points_campaign_budget_in_range",
            ),
        ]
        indexes = [models.Index(fields=["program", "is_active"], name="points_campaign_active")]
