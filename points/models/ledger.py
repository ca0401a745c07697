"""The points ledger: currencies, accounts, transactions, entries, lots and holds.

Invariants (checked by ``points_verify_ledger``; the starred ones are also enforced by the
database itself):
- * Every ledger transaction has two or more entries and they sum to zero (a deferred
  constraint trigger checks it at commit). All entries of a transaction are in its currency.
- * Transactions, entries and lot movements are never updated or deleted (triggers refuse
  it); corrections are new, opposite transactions.
- A member account's cached ``available``, ``pending`` and ``held`` equal the sums of its
  entries in the matching bucket. System accounts keep no cached balance (they would be a
  hot row every writer of the program contends on); their balance is the sum of entries.
- * ``available >= 0`` unless the currency allows negative balances (``allow_negative`` is
  copied onto each account so that a CHECK constraint can see it); ``pending >= 0``,
  ``held >= 0``.
- A lot's ``remaining`` equals the sum of its movements and stays within 0..amount (*).
  The spendable lots (not pending) of an account sum to ``max(available, 0)``; its pending
  lots sum to ``pending``.
- * A reference is unique per program and transaction kind when given.
- Member accounts are locked (``select_for_update``) in id order before any change.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from membership_site.models import audited_history
from programs.currencies import money_quantum
from programs.models import Location, Program


class Currency(models.Model):
    class ExpiryPolicy(models.TextChoices):
        NONE = "none", "Never expire"
        ROLLING_DAYS = "rolling_days", "N days after earning"
        ROLLING_MONTHS = "rolling_months", "N months after earning"
        FIXED_DATE = "fixed_date", "On a fixed calendar date"
        INACTIVITY = "inactivity", "After N months without earning or redeeming"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="points_currencies")
    code = models.SlugField(max_length=20, help_text="Short stable code used by the API, e.g. PTS.")
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(
        default=False, help_text="Used when a request names no currency. One per program."
    )
    value_points = models.PositiveIntegerField(default=100, help_text="Cash value: this many points ...")
    value_amount = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        default=Decimal("1.00"),
        help_text="... are worth this much in the program's money currency.",
    )
    allow_negative = models.BooleanField(
        default=False, help_text="Whether member balances may go below zero."
    )
    expiry_policy = models.CharField(max_length=20, choices=ExpiryPolicy.choices, default=ExpiryPolicy.NONE)
    expiry_period = models.PositiveIntegerField(
        default=0,
        help_text="N for the rolling and inactivity policies; for a fixed date, how many years "
        "after the year of earning (0: the same year).",
    )
    expiry_month = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Fixed date: month.")
    expiry_day = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Fixed date: day.")
    minimum_redemption = models.PositiveIntegerField(
        default=1, help_text="Smallest number of points a redemption or hold may use."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audited_history()

    class Meta:
        ordering = ["program_id", "code"]
        verbose_name_plural = "currencies"
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="points_currency_code_unique"),
            models.UniqueConstraint(
                fields=["program"], condition=Q(is_default=True), name="points_currency_one_default"
            ),
            models.CheckConstraint(condition=Q(value_points__gt=0), name="points_currency_value_points_pos"),
            models.CheckConstraint(condition=Q(value_amount__gte=0), name="points_currency_value_amount_pos"),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"

    def money_value(self, points: int, money_currency: str) -> Decimal:
        """What ``points`` are worth in money, rounded half-up to the currency's minor unit."""
        value = Decimal(points) * self.value_amount / Decimal(self.value_points)
        return value.quantize(money_quantum(money_currency), rounding=ROUND_HALF_UP)


class Account(models.Model):
    """A member's balance in one currency, or one of the program's system accounts."""

    class Kind(models.TextChoices):
        MEMBER = "member", "Member"
        ISSUED = "issued", "Issued (earned)"
        REDEEMED = "redeemed", "Redeemed"
        EXPIRED = "expired", "Expired"
        ADJUSTED = "adjusted", "Adjusted"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="accounts")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MEMBER)
    member = models.ForeignKey(
        "members.Member", null=True, blank=True, on_delete=models.PROTECT, related_name="points_accounts"
    )
    available = models.BigIntegerField(default=0)
    pending = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)
    lifetime_earned = models.BigIntegerField(default=0)
    allow_negative = models.BooleanField(default=False, help_text="Copied from the currency.")
    last_activity_at = models.DateTimeField(
        null=True, blank=True, help_text="Last earn or redemption (inactivity expiry counts from it)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["member", "currency"],
                condition=Q(member__isnull=False),
                name="points_account_member_currency_unique",
            ),
            models.UniqueConstraint(
                fields=["currency", "kind"],
                condition=Q(member__isnull=True),
                name="points_account_system_unique",
            ),
            models.CheckConstraint(
                condition=Q(available__gte=0) | Q(allow_negative=True),
                name="points_account_available_not_negative",
            ),
            models.CheckConstraint(condition=Q(pending__gte=0), name="points_account_pending_not_negative"),
            models.CheckConstraint(condition=Q(held__gte=0), name="points_account_held_not_negative"),
            models.CheckConstraint(
                condition=(Q(kind="member") & Q(member__isnull=False))
                | (~Q(kind="member") & Q(member__isnull=True)),
                name="points_account_member_kind",
            ),
        ]
        indexes = [models.Index(fields=["currency", "last_activity_at"], name="points_account_activity")]

    def __str__(self) -> str:
        owner = f"member {self.member_id}" if self.member_id else f"system:{self.kind}"
        return f"{owner} {self.currency.code if self.currency_id else ''}".strip()

    @property
    def total(self) -> int:
        return self.available + self.pending + self.held


class Transaction(models.Model):
    """One ledger transaction. ``amount`` is always positive: the number of points the
    transaction is about; the entries say where they moved."""

    class Kind(models.TextChoices):
        EARN = "earn", "Earn"
        REDEEM = "redeem", "Redeem"
        ADJUST = "adjust", "Adjustment"
        EXPIRE = "expire", "Expiry"
        TRANSFER = "transfer", "Transfer"
        REVERSE = "reverse", "Reversal"
        ACTIVATE = "activate", "Pending points became available"
        HOLD = "hold", "Hold"
        CAPTURE = "capture", "Hold captured"
        RELEASE = "release", "Hold released"

    # Foreign keys without their own index are covered by the composite indexes below
    # (or only looked up when deleting the referenced row, which PROTECT refuses anyway);
    # every index is paid for on each insert.
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+", db_index=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+", db_index=False)
    counterparty = models.ForeignKey(
        "members.Member",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        help_text="The recipient of a transfer.",
    )
    amount = models.BigIntegerField()
    direction = models.SmallIntegerField(
        default=1,
        help_text="+1 when the member's points went up, -1 when they went down, 0 when they "
        "only moved between the member's own buckets (hold, capture remainder, activation).",
    )
    reference = models.CharField(max_length=100, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    reason = models.CharField(max_length=500, blank=True, default="")
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    reverses = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversals", db_index=False
    )
    hold = models.ForeignKey(
        "Hold", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    pending_until = models.DateTimeField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    metadata = models.JSONField(default=dict, blank=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    actor_integration = models.ForeignKey(
        "integrations.Integration",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )

    class Meta:
        ordering = ["-id"]
        permissions = [("adjust_points", "Can make manual points adjustments")]
        constraints = [
            models.UniqueConstraint(
                fields=["program", "kind", "reference"],
                condition=~Q(reference=""),
                name="points_transaction_reference_unique",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="points_transaction_amount_positive"),
        ]
        indexes = [
            models.Index(fields=["member", "id"], name="points_txn_member"),
            models.Index(
                fields=["counterparty", "id"],
                condition=Q(counterparty__isnull=False),
                name="points_txn_counterparty",
            ),
            models.Index(fields=["program", "occurred_at"], name="points_txn_program_occurred"),
            models.Index(
                fields=["reverses"], condition=Q(reverses__isnull=False), name="points_txn_reverses"
            ),
            models.Index(fields=["hold"], condition=Q(hold__isnull=False), name="points_txn_hold"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.amount}"

    @property
    def signed_amount(self) -> int:
        return self.amount * self.direction


class Entry(models.Model):
    class Bucket(models.TextChoices):
        AVAILABLE = "available", "Available"
        PENDING = "pending", "Pending"
        HELD = "held", "Held"

    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    bucket = models.CharField(max_length=10, choices=Bucket.choices, default=Bucket.AVAILABLE)
    amount = models.BigIntegerField()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "entries"
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="points_entry_not_zero")]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.bucket} {self.amount:+d}"


class Lot(models.Model):
    """Points credited together, with one expiry. ``expires_at`` is the first instant at
    which they are expired (the end of the last valid day in the program's timezone)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lots")
    source = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="lots")
    amount = models.BigIntegerField()
    remaining = models.BigIntegerField()
    earned_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    is_pending = models.BooleanField(default=False)
    available_at = models.DateTimeField(null=True, blank=True, help_text="When pending points activate.")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=models.F("amount")),
                name="points_lot_remaining_in_range",
            ),
        ]
        indexes = [
            models.Index(
                fields=["account", "expires_at"], condition=Q(remaining__gt=0), name="points_lot_open"
            ),
            models.Index(
                fields=["expires_at"],
                condition=Q(remaining__gt=0, is_pending=False),
                name="points_lot_due",
            ),
            models.Index(fields=["available_at"], condition=Q(is_pending=True), name="points_lot_pending"),
        ]

    def __str__(self) -> str:
        return f"lot {self.pk}: {self.remaining}/{self.amount}"


class LotMovement(models.Model):
    """A change to a lot's ``remaining`` made by a transaction (immutable)."""

    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="movements")
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="lot_movements")
    amount = models.BigIntegerField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["transaction"], name="points_lotmove_txn")]

    def __str__(self) -> str:
        return f"lot {self.lot_id} {self.amount:+d}"


class Hold(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        CAPTURED = "captured", "Captured"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holds")
    amount = models.BigIntegerField()
    captured_amount = models.BigIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    expires_at = models.DateTimeField()
    reference = models.CharField(max_length=100, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(state="active"), name="points_hold_active_expiry"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="points_hold_amount_positive"),
            models.CheckConstraint(
                condition=Q(captured_amount__gte=0) & Q(captured_amount__lte=models.F("amount")),
                name="points_hold_captured_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"hold {self.pk} {self.amount} ({self.state})"


class ExpiryWarning(models.Model):
    """A ``points.expiring`` event sent for one account, expiry instant and offset."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    days_before = models.PositiveIntegerField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "expires_at", "days_before"], name="points_expiry_warning_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.expires_at:%Y-%m-%d} -{self.days_before}d"
