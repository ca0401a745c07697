"""Purchases and refunds, with the points they produced and how.

Invariants (kept by ``points.earning.purchases``):
- A purchase's and a refund's ``reference`` are unique in the program (apart from each
  other). Money amounts have at most the program currency's decimals.
- ``eligible_amount`` is the sum of the eligible lines' ``amount`` (``line_total -
  discount``; not gift cards or excluded lines); tax and shipping are never in it.
- Per currency a purchase has at most one ``PurchaseEarning``, whose ``transaction`` is the
  ledger ``earn`` that credited its ``points``. The purchase's ``PointsAward`` rows (the
  breakdown) add up to those points per currency.
- ``PurchaseEarning.reversed + shortfall`` (points refunds took back, or could not) never
  exceeds ``points``; ``Purchase.refunded_amount <= total``, ``refunded_base <=
  eligible_amount``, a line's ``refunded_quantity <= quantity``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from programs.models import Location, Program

from .ledger import Currency, Transaction
from .rules import MONEY_DIGITS, Campaign, EarningRule

QUANTITY_DIGITS = {"max_digits": 12, "decimal_places": 3}


def _actor_user() -> models.ForeignKey:
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )


def _actor_integration() -> models.ForeignKey:
    return models.ForeignKey(
        "integrations.Integration",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )


class Purchase(models.Model):
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="purchases", db_index=False
    )
    card = models.ForeignKey(
        "members.Card",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        help_text="The card the member was identified by, if any.",
    )
    reference = models.CharField(max_length=100, help_text="Receipt or order id, unique in the program.")
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    occurred_at = models.DateTimeField(help_text="When the sale happened (the till's time).")
    occurred_on = models.DateField(help_text="The day of occurred_at in the program's time zone.")
    recorded_at = models.DateTimeField(auto_now_add=True)
    currency = models.CharField(max_length=3, help_text="ISO 4217 code of the money (the program's).")
    total = models.DecimalField(**MONEY_DIGITS)
    tax = models.DecimalField(**MONEY_DIGITS, default=0)
    shipping = models.DecimalField(**MONEY_DIGITS, default=0)
    eligible_amount = models.DecimalField(
        **MONEY_DIGITS, help_text="What points are earned on: eligible lines after discounts."
    )
    first_purchase = models.BooleanField(default=False)
    points = models.BigIntegerField(default=0, help_text="Points earned in the program's default currency.")
    refunded_amount = models.DecimalField(**MONEY_DIGITS, default=0)
    refunded_base = models.DecimalField(
        **MONEY_DIGITS, default=0, help_text="Part of the eligible amount refunded."
    )
    fully_refunded = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    actor_user = _actor_user()
    actor_integration = _actor_integration()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["program", "reference"], name="points_purchase_reference_unique"),
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=F("total")) & Q(refunded_base__lte=F("eligible_amount")),
                name="points_purchase_refund_in_range",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "occurred_at"], name="points_purchase_member"),
            models.Index(fields=["program", "occurred_at"], name="points_purchase_occurred"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def refundable_amount(self):
        return self.total - self.refunded_amount


class PurchaseLine(models.Model):
    purchase = models.ForeignKey(Purchase, on_delete=models.CASCADE, related_name="lines")
    number = models.PositiveSmallIntegerField(help_text="Position in the request, from 1.")
    sku = models.CharField(max_length=64)
    category = models.CharField(max_length=64, blank=True)
    quantity = models.DecimalField(**QUANTITY_DIGITS)
    unit_price = models.DecimalField(**MONEY_DIGITS)
    line_total = models.DecimalField(**MONEY_DIGITS)
    discount = models.DecimalField(**MONEY_DIGITS, default=0)
    amount = models.DecimalField(**MONEY_DIGITS, help_text="line_total - discount.")
    gift_card = models.BooleanField(default=False)
    excluded = models.BooleanField(default=False)
    refunded_quantity = models.DecimalField(**QUANTITY_DIGITS, default=0)

    class Meta:
        ordering = ["purchase_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["purchase", "number"], name="points_purchase_line_unique"),
            models.CheckConstraint(
                condition=Q(refunded_quantity__lte=F("quantity")), name="points_purchase_line_refund_in_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number}: {self.sku} × {self.quantity}"

    @property
    def eligible(self) -> bool:
        return not (self.gift_card or self.excluded)


class PurchaseEarning(models.Model):
    """The points a purchase earned in one currency, and what refunds took back."""

    purchase = models.ForeignKey(Purchase, on_delete=models.CASCADE, related_name="earnings")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="purchase_earning")
    points = models.BigIntegerField()
    reversed = models.BigIntegerField(default=0, help_text="Points refunds took back.")
    shortfall = models.BigIntegerField(
        default=0, help_text="Points refunds should have taken back but the member no longer had."
    )

    class Meta:
        ordering = ["purchase_id", "currency_id"]
        constraints = [
            models.UniqueConstraint(fields=["purchase", "currency"], name="points_purchase_earning_unique"),
            models.CheckConstraint(
                condition=Q(reversed__gte=0)
                & Q(shortfall__gte=0)
                & Q(points__gte=F("reversed") + F("shortfall")),
                name="points_purchase_earning_taken_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purchase_id}: {self.points}"


class PointsAward(models.Model):
    """One line of a purchase's breakdown: what a rule, campaign or the member's tier added."""

    class Source(models.TextChoices):
        RULE = "rule", "Earning rule"
        CAMPAIGN = "campaign", "Campaign"
        TIER = "tier", "Tier multiplier"

    purchase = models.ForeignKey(Purchase, on_delete=models.CASCADE, related_name="awards")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+", db_index=False)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+", db_index=False)
    occurred_on = models.DateField(help_text="The purchase's day in the program's time zone (for caps).")
    position = models.PositiveSmallIntegerField(default=0)
    source = models.CharField(max_length=10, choices=Source.choices)
    rule = models.ForeignKey(
        EarningRule, null=True, blank=True, on_delete=models.PROTECT, related_name="awards", db_index=False
    )
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="awards", db_index=False
    )
    code = models.CharField(max_length=50)
    name = models.CharField(max_length=200)
    effect = models.CharField(max_length=20)
    lines = models.JSONField(default=list, help_text="Numbers of the lines it applied to.")
    base = models.DecimalField(
        max_digits=24,
        decimal_places=6,
        help_text="Money for a rate, points for a multiplier, units for a bonus.",
    )
    value = models.DecimalField(max_digits=14, decimal_places=4)
    exact = models.DecimalField(max_digits=24, decimal_places=6, help_text="Points before rounding.")
    points = models.BigIntegerField(help_text="Its share of the purchase's rounded points.")
    capped_by = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["purchase_id", "position"]
        indexes = [
            models.Index(fields=["member", "occurred_on"], name="points_award_member_day"),
            models.Index(fields=["rule"], condition=Q(rule__isnull=False), name="points_award_rule"),
            models.Index(
                fields=["campaign"], condition=Q(campaign__isnull=False), name="points_award_campaign"
            ),
            models.Index(fields=["program", "occurred_on"], name="points_award_program_day"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.points}"


class Refund(models.Model):
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="refunds")
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+", db_index=False)
    reference = models.CharField(max_length=100, help_text="The refund's own id, unique in the program.")
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    amount = models.DecimalField(**MONEY_DIGITS, help_text="Money refunded.")
    base = models.DecimalField(**MONEY_DIGITS, help_text="Part of the eligible amount refunded.")
    completes_purchase = models.BooleanField(
        default=False, help_text="This refund left nothing of the purchase (the visit is undone)."
    )
    reason = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    actor_user = _actor_user()
    actor_integration = _actor_integration()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["program", "reference"], name="points_refund_reference_unique")
        ]

    def __str__(self) -> str:
        return self.reference


class RefundLine(models.Model):
    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="lines")
    line = models.ForeignKey(PurchaseLine, on_delete=models.PROTECT, related_name="refund_lines")
    quantity = models.DecimalField(**QUANTITY_DIGITS)
    amount = models.DecimalField(**MONEY_DIGITS)

    class Meta:
        ordering = ["refund_id", "line_id"]

    def __str__(self) -> str:
        return f"line {self.line_id} × {self.quantity}"


class RefundEarning(models.Model):
    """What a refund took back in one currency: ``reversed`` points (``transaction``), and
    the ``shortfall`` the member no longer had (their balance may not go negative)."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="earnings")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="refund_earning"
    )
    points = models.BigIntegerField(help_text="Points this refund takes back (reversed + shortfall).")
    reversed = models.BigIntegerField(default=0)
    shortfall = models.BigIntegerField(default=0)
    from_pending = models.BooleanField(default=False, help_text="Cancelled points that were still pending.")

    class Meta:
        ordering = ["refund_id", "currency_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(points=F("reversed") + F("shortfall")) & Q(reversed__gte=0) & Q(shortfall__gte=0),
                name="points_refund_earning_sums",
            )
        ]

    def __str__(self) -> str:
        return f"{self.refund_id}: -{self.reversed} (shortfall {self.shortfall})"
