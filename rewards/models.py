"""The rewards catalog, redemptions, vouchers, shipments, pay-with-points rules and
member-pricing exceptions.

Invariants:
- ``Reward.code`` is unique in its program; a reward costs points in one or more of the
  program's currencies (``RewardCost``, one row per currency).
- A member may redeem a reward only when their tier is among ``eligible_tiers`` (if any)
  and unlocks one of its ``tier_tags`` (if any; ``Tier.reward_tags``).
- ``Reward.stock`` is the number of units left (null: unlimited) and never goes below 0
  (CHECK); it is only changed by a conditional UPDATE in the redeem and cancel services.
- A redemption's points moved only through the points services: ``points_transaction``
  is its ``redeem`` transaction, ``reversal_transaction`` the ``reverse`` one of a
  cancellation, ``conversion_transaction`` the ``earn`` of a points-to-points conversion.
- A non-empty ``Redemption.reference`` is unique in the program.
- ``Voucher.code`` is unique in its program (16 characters from ``VOUCHER_ALPHABET``, the
  last a check character, see ``rewards.codes``). A voucher moves issued -> used,
  issued -> expired or issued -> cancelled, once (conditional UPDATE / row lock).
- Member-scoped data (redemptions, owned vouchers, shipments) is erased of personal
  data by the ``member_erased`` hook (shipping addresses are blanked).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from membership_site.models import TimeStampedModel, audited_history
from programs.models import Location, Program

PERCENT_VALIDATORS = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))]


class Reward(TimeStampedModel):
    class Kind(models.TextChoices):
        AMOUNT_VOUCHER = "amount_voucher", "Voucher for an amount off"
        PERCENT_VOUCHER = "percent_voucher", "Voucher for a percent off"
        FREE_ITEM = "free_item", "Free item (by SKU)"
        PHYSICAL = "physical", "Physical item to ship"
        POINTS_CONVERSION = "points_conversion", "Points-to-points conversion"

    class Period(models.TextChoices):
        DAY = "day", "Day"
        WEEK = "week", "Week (Monday to Sunday)"
        MONTH = "month", "Calendar month"
        YEAR = "year", "Calendar year"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="rewards")
    code = models.SlugField(max_length=50, help_text="Unique in the program; used by the API.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    image_url = models.URLField(
        max_length=500, blank=True, help_text="Picture shown to members (hosted on your CDN or shop)."
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    sort_order = models.IntegerField(default=0, help_text="Lower first in member catalogs.")
    stock = models.BigIntegerField(
        null=True, blank=True, help_text="Units left. Empty: unlimited. Redemptions take one each."
    )
    limit_total = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many times one member may redeem it in all. Empty: no limit."
    )
    limit_per_period = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many times one member may redeem it per period."
    )
    limit_period = models.CharField(
        max_length=5, choices=Period.choices, blank=True, help_text="Periods are in the program's time zone."
    )
    valid_from = models.DateTimeField(
        null=True, blank=True, help_text="First instant at which it can be redeemed. Empty: already."
    )
    valid_until = models.DateTimeField(
        null=True, blank=True, help_text="First instant at which it can no longer be redeemed. Empty: no end."
    )
    eligible_tiers = models.ManyToManyField(
        "tiers.Tier", blank=True, related_name="+", help_text="Empty: every tier."
    )
    eligible_labels = models.ManyToManyField(
        "members.Label", blank=True, related_name="+", help_text="Empty: everyone; else any one of them."
    )
    tier_tags = models.JSONField(
        default=list,
        blank=True,
        help_text='Tier reward tags, e.g. ["lounge"]: only members whose tier unlocks one of them '
        "(the tier's reward tags) may redeem it. Empty: no tag needed. Applies with the eligible tiers.",
    )
    locations = models.ManyToManyField(
        Location, blank=True, related_name="+", help_text="Where its vouchers can be used. Empty: anywhere."
    )
    is_active = models.BooleanField(
        default=True, help_text="Switched off: members see it greyed out (inactive) and cannot redeem it."
    )

    # Vouchers issued by the reward (amount, percent, free item).
    voucher_amount = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="Amount voucher: the money off, in the program's currency.",
    )
    voucher_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=PERCENT_VALIDATORS,
        help_text="Percent voucher: the percent off (more than 0, at most 100).",
    )
    sku = models.CharField(max_length=64, blank=True, help_text="Free item: the SKU given.")
    voucher_min_spend = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="Its vouchers need a basket of at least this much. Empty: any amount.",
    )
    voucher_skus = models.JSONField(
        default=list,
        blank=True,
        help_text='The basket must hold one of these SKUs, e.g. ["COF-1", "COF-2"]. Empty: any basket.',
    )
    voucher_valid_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=30,
        help_text="Vouchers are valid to the end of the day this many days after they are "
        "issued (program time). Empty: no expiry.",
    )
    # Points-to-points conversion.
    target_currency = models.ForeignKey(
        "points.Currency",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Points conversion: the currency credited (not one the reward costs).",
    )
    target_points = models.BigIntegerField(
        null=True, blank=True, help_text="Points conversion: the points credited per redemption."
    )

    history = audited_history()

    class Meta:
        ordering = ["program_id", "sort_order", "code"]
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="reward_code_unique_in_program"),
            models.CheckConstraint(
                condition=Q(stock__isnull=True) | Q(stock__gte=0), name="reward_stock_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(limit_per_period__isnull=True) | ~Q(limit_period=""),
                name="reward_limit_period_given",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def issues_voucher(self) -> bool:
        return self.kind in VOUCHER_KINDS


VOUCHER_KINDS = (Reward.Kind.AMOUNT_VOUCHER, Reward.Kind.PERCENT_VOUCHER, Reward.Kind.FREE_ITEM)


class RewardCost(models.Model):
    reward = models.ForeignKey(Reward, on_delete=models.CASCADE, related_name="costs")
    currency = models.ForeignKey("points.Currency", on_delete=models.PROTECT, related_name="+")
    points = models.BigIntegerField()

    history = audited_history()

    class Meta:
        ordering = ["reward_id", "currency_id"]
        constraints = [
            models.UniqueConstraint(fields=["reward", "currency"], name="reward_cost_one_per_currency"),
            models.CheckConstraint(condition=Q(points__gt=0), name="reward_cost_points_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.points} {self.currency.code if self.currency_id else ''}".strip()


class Redemption(models.Model):
    class Status(models.TextChoices):
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="redemptions")
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="reward_redemptions")
    currency = models.ForeignKey("points.Currency", on_delete=models.PROTECT, related_name="+")
    points = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETED)
    reference = models.CharField(max_length=100, blank=True, default="")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    points_transaction = models.ForeignKey(
        "points.Transaction", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    conversion_transaction = models.ForeignKey(
        "points.Transaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    reversal_transaction = models.ForeignKey(
        "points.Transaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    redeemed_at = models.DateTimeField()
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_integration = models.ForeignKey(
        "integrations.Integration", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        permissions = [("cancel_redemption", "Can cancel reward redemptions and vouchers")]
        constraints = [
            models.UniqueConstraint(
                fields=["program", "reference"],
                condition=~Q(reference=""),
                name="redemption_reference_unique",
            ),
            models.CheckConstraint(condition=Q(points__gt=0), name="redemption_points_positive"),
        ]
        indexes = [
            # Member limits count a member's redemptions of a reward since a day.
            models.Index(fields=["member", "reward", "redeemed_at"], name="redemption_member_reward"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.reward_id} by {self.member_id} ({self.status})"


class Shipment(models.Model):
    """Where a physical reward goes. Personal data: blanked when the member is erased."""

    class Status(models.TextChoices):
        PENDING = "pending", "To ship"
        SHIPPED = "shipped", "Shipped"
        CANCELLED = "cancelled", "Cancelled"

    redemption = models.OneToOneField(Redemption, on_delete=models.PROTECT, related_name="shipment")
    name = models.CharField(max_length=200)
    address_line1 = models.CharField(max_length=200)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100)
    postal_code = models.CharField(max_length=20, blank=True)
    region = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, help_text="ISO 3166 alpha-2.")
    phone = models.CharField(max_length=30, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    tracking = models.CharField(max_length=200, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"shipment of redemption {self.redemption_id} ({self.status})"


class VoucherBatch(models.Model):
    """Unassigned (campaign) vouchers generated together in the admin."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    count = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "voucher batches"

    def __str__(self) -> str:
        return f"{self.name} ({self.count} codes)"


class Voucher(models.Model):
    class Status(models.TextChoices):
        ISSUED = "issued", "Issued"
        USED = "used", "Used"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    class Value(models.TextChoices):
        AMOUNT = "amount", "Amount off"
        PERCENT = "percent", "Percent off"
        FREE_ITEM = "free_item", "Free item"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=16, help_text="Stored without dashes; shown as XXXX-XXXX-XXXX-XXXX.")
    member = models.ForeignKey(
        "members.Member", null=True, blank=True, on_delete=models.PROTECT, related_name="vouchers"
    )
    redemption = models.OneToOneField(
        Redemption, null=True, blank=True, on_delete=models.PROTECT, related_name="voucher"
    )
    batch = models.ForeignKey(
        VoucherBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="vouchers"
    )
    value_kind = models.CharField(max_length=10, choices=Value.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    sku = models.CharField(max_length=64, blank=True, help_text="Free item: the SKU given.")
    min_spend = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    skus = models.JSONField(default=list, blank=True, help_text="The basket must hold one of these.")
    locations = models.ManyToManyField(Location, blank=True, related_name="+")
    valid_until = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ISSUED)
    issued_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_reference = models.CharField(max_length=100, blank=True)
    used_location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_reason = models.CharField(max_length=500, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    history = audited_history()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="voucher_code_unique_in_program"),
        ]
        indexes = [
            models.Index(fields=["valid_until"], condition=Q(status="issued"), name="voucher_issued_expiry"),
        ]

    def __str__(self) -> str:
        from .codes import format_code

        return format_code(self.code)


class PayWithPointsRule(TimeStampedModel):
    """How a points currency may pay part of a bill (one rule per currency)."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    currency = models.OneToOneField("points.Currency", on_delete=models.PROTECT, related_name="pay_rule")
    is_active = models.BooleanField(default=True)
    minimum_points = models.PositiveIntegerField(default=1, help_text="Fewest points one payment may use.")
    step = models.PositiveIntegerField(default=1, help_text="Points are spent in multiples of this.")
    max_share_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("100"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("100"))],
        help_text="At most this share of the bill may be paid with points.",
    )
    minimum_bill = models.DecimalField(
        max_digits=12, decimal_places=3, default=Decimal("0"), help_text="Smaller bills cannot use points."
    )

    history = audited_history()

    class Meta:
        ordering = ["program_id", "currency_id"]
        constraints = [
            models.CheckConstraint(condition=Q(step__gte=1), name="pay_rule_step_positive"),
            models.CheckConstraint(
                condition=Q(max_share_percent__gt=0) & Q(max_share_percent__lte=100),
                name="pay_rule_share_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Pay with {self.currency}"


class PricingException(TimeStampedModel):
    """A member-price exception: for a tier and a SKU or a category, its own percent or
    no discount at all. SKU exceptions win over category ones, which win over the tier's
    discount."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    tier = models.ForeignKey("tiers.Tier", on_delete=models.CASCADE, related_name="+")
    sku = models.CharField(max_length=64, blank=True, help_text="A SKU, or leave empty and give a category.")
    category = models.CharField(
        max_length=64, blank=True, help_text="A category (as tills send it), or leave empty and give a SKU."
    )
    percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=PERCENT_VALIDATORS,
        help_text="The discount percent instead of the tier's. Empty when excluded.",
    )
    excluded = models.BooleanField(default=False, help_text="No member discount at all.")

    history = audited_history()

    class Meta:
        ordering = ["program_id", "tier_id", "sku", "category"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(sku="") & ~Q(category="")) | (~Q(sku="") & Q(category="")),
                name="pricing_exception_sku_or_category",
            ),
            models.CheckConstraint(
                condition=Q(excluded=True) | Q(percent__isnull=False), name="pricing_exception_has_percent"
            ),
            models.UniqueConstraint(
                fields=["tier", "sku"], condition=~Q(sku=""), name="pricing_exception_tier_sku"
            ),
            models.UniqueConstraint(
                fields=["tier", "category"], condition=~Q(category=""), name="pricing_exception_tier_category"
            ),
        ]

    def __str__(self) -> str:
        target = f"SKU {self.sku}" if self.sku else f"category {self.category}"
        return f"{self.tier} {target}: {'excluded' if self.excluded else f'{self.percent}%'}"
