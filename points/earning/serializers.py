"""API request bodies and representations of purchases, refunds, quotes, earning rules,
campaigns, earning settings and referrals.

Money is rendered as a string with the money currency's decimals ("12.50" in EUR)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from membership_site.api.serializers import StrictSerializer
from programs.currencies import money_quantum

from ..models import Campaign, EarningRule, EarningSettings, Purchase, Refund, RuleBase
from ..serializers import AccountBalanceSerializer
from ..services import MAX_POINTS
from .config import COMPLETION_FIELDS, MAX_MULTIPLIER, MAX_RETURN_WINDOW_DAYS, RULE_FIELDS

# Clients' clocks drift: an occurred_at this far ahead of ours is still accepted.
CLOCK_SKEW = timedelta(minutes=5)
MAX_LINES = 500
MONEY = {"max_digits": 16, "decimal_places": 3}


def money(value: Decimal | None, currency: str) -> str | None:
    return None if value is None else str(Decimal(value).quantize(money_quantum(currency)))


def money_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(**MONEY, **kwargs)


def _iso(value) -> str | None:
    return serializers.DateTimeField().to_representation(value) if value is not None else None


def _decimal(value: Decimal) -> str:
    """A decimal without trailing zeros (1.5, 2, 0.25)."""
    text = format(Decimal(value).normalize(), "f")
    return text


# --- Requests ----------------------------------------------------------------------------


class MemberIdentifierSerializer(StrictSerializer):
    id = serializers.IntegerField(required=False, min_value=1)
    card = serializers.CharField(required=False, max_length=40)
    phone = serializers.CharField(required=False, max_length=40)
    email = serializers.CharField(required=False, max_length=254)
    number = serializers.CharField(required=False, max_length=20)


class PurchaseLineInputSerializer(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    category = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    quantity = serializers.DecimalField(
        max_digits=12, decimal_places=3, min_value=Decimal("0.001"), default=Decimal(1)
    )
    unit_price = money_field(min_value=Decimal(0))
    line_total = money_field(
        min_value=Decimal(0), required=False, help_text="Default: quantity × unit_price (half-up)."
    )
    discount = money_field(min_value=Decimal(0), default=Decimal(0))
    gift_card = serializers.BooleanField(default=False, help_text="Never earns points.")
    excluded = serializers.BooleanField(default=False, help_text="Never earns points (e.g. tobacco).")


class PurchaseQuoteSerializer(StrictSerializer):
    member = MemberIdentifierSerializer(help_text="Exactly one of id, card, phone, email or number.")
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    location = serializers.SlugField(max_length=40, required=False, help_text="Location code.")
    occurred_at = serializers.DateTimeField(
        required=False, help_text="When the sale happened (may be in the past for offline tills)."
    )
    currency = serializers.CharField(
        min_length=3, max_length=3, required=False, help_text="ISO 4217; must be the program's."
    )
    total = money_field(
        min_value=Decimal(0), required=False, help_text="Default: the lines + tax + shipping."
    )
    tax = money_field(min_value=Decimal(0), default=Decimal(0))
    shipping = money_field(min_value=Decimal(0), default=Decimal(0))
    lines = PurchaseLineInputSerializer(many=True, min_length=1, max_length=MAX_LINES)
    metadata = serializers.DictField(required=False, default=dict)

    def validate_occurred_at(self, value):
        if value > timezone.now() + CLOCK_SKEW:
            raise serializers.ValidationError("occurred_at cannot be in the future.", code="in_future")
        return value


class PurchaseCreateSerializer(PurchaseQuoteSerializer):
    reference = serializers.CharField(
        max_length=100, help_text="Receipt or order id, unique in the program: a repeat returns the original."
    )


class RefundLineInputSerializer(StrictSerializer):
    line = serializers.IntegerField(min_value=1, help_text="The line's number (from 1).")
    quantity = serializers.DecimalField(
        max_digits=12,
        decimal_places=3,
        min_value=Decimal("0.001"),
        required=False,
        help_text="Default: all that is left of the line.",
    )


class RefundCreateSerializer(StrictSerializer):
    reference = serializers.CharField(max_length=100, help_text="The refund's own id; a repeat returns it.")
    lines = RefundLineInputSerializer(many=True, required=False, min_length=1, max_length=MAX_LINES)
    amount = money_field(min_value=Decimal("0.001"), required=False, help_text="Money refunded.")
    occurred_at = serializers.DateTimeField(required=False)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    metadata = serializers.DictField(required=False, default=dict)

    def validate_occurred_at(self, value):
        if value > timezone.now() + CLOCK_SKEW:
            raise serializers.ValidationError("occurred_at cannot be in the future.", code="in_future")
        return value

    def validate(self, attrs):
        if "lines" in attrs and "amount" in attrs:
            raise serializers.ValidationError(
                {"amount": ["Give the lines or an amount, not both."]}, code="exclusive"
            )
        return attrs


def _codes() -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=1000)


@extend_schema_field(
    {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$", "example": "18:30:00"}
)
class LocalTimeField(serializers.TimeField):
    """A wall-clock time of day in the program's time zone, without a UTC offset (the
    schema's ``format: time`` would demand one, and a validating client rejects ours)."""


class RuleUpdateSerializer(StrictSerializer):
    """An earning rule's fields; in a PATCH only those sent change."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, default="")
    is_active = serializers.BooleanField(default=True)
    priority = serializers.IntegerField(min_value=-10000, max_value=10000, default=0)
    currency = serializers.CharField(
        max_length=20,
        required=False,
        allow_null=True,
        help_text="Points currency code; default: the default.",
    )
    effect = serializers.ChoiceField(choices=RuleBase.Effect.choices, default=RuleBase.Effect.POINTS_PER_UNIT)
    scope = serializers.ChoiceField(choices=RuleBase.Scope.choices, default=RuleBase.Scope.PER_LINE)
    value = serializers.DecimalField(
        max_digits=14,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        help_text="Points per unit of money, the multiplier (at most "
        f"{MAX_MULTIPLIER}) or the bonus points (whole).",
    )
    stacking = serializers.ChoiceField(choices=RuleBase.Stacking.choices, default=RuleBase.Stacking.ADD)
    starts_on = serializers.DateField(required=False, allow_null=True)
    ends_on = serializers.DateField(required=False, allow_null=True)
    hours_from = LocalTimeField(required=False, allow_null=True)
    hours_to = LocalTimeField(required=False, allow_null=True)
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=7), required=False, max_length=7
    )
    locations = _codes()
    skus = _codes()
    categories = _codes()
    min_spend = money_field(min_value=Decimal(0), required=False, allow_null=True)
    tiers = _codes()
    labels = _codes()
    first_purchase_only = serializers.BooleanField(default=False)
    max_points_per_purchase = serializers.IntegerField(
        min_value=1,
        max_value=MAX_POINTS,
        required=False,
        allow_null=True,
        help_text="Most points it gives one purchase (null: no cap).",
    )
    max_points_per_member_day = serializers.IntegerField(
        min_value=1,
        max_value=MAX_POINTS,
        required=False,
        allow_null=True,
        help_text="Most points it gives one member in a day, days in the program's time zone (null: "
        "no cap). Refunds do not give points back to the cap.",
    )
    max_points_per_member_month = serializers.IntegerField(
        min_value=1,
        max_value=MAX_POINTS,
        required=False,
        allow_null=True,
        help_text="Most points it gives one member in a calendar month, in the program's time zone "
        "(null: no cap). Refunds do not give points back to the cap.",
    )


class RuleCreateSerializer(RuleUpdateSerializer):
    code = serializers.SlugField(max_length=50)


class CampaignUpdateSerializer(RuleUpdateSerializer):
    budget_points = serializers.IntegerField(
        min_value=1,
        max_value=MAX_POINTS,
        required=False,
        allow_null=True,
        help_text="Total points the campaign may issue (null: no budget). Refunds do not give points "
        "back to the budget.",
    )


class CampaignCreateSerializer(CampaignUpdateSerializer):
    code = serializers.SlugField(max_length=50)


class EarningSettingsInputSerializer(StrictSerializer):
    return_window_days = serializers.IntegerField(
        min_value=0, max_value=MAX_RETURN_WINDOW_DAYS, required=False
    )
    bonus_currency = serializers.CharField(max_length=20, required=False, allow_null=True)
    enrolment_bonus = serializers.IntegerField(min_value=0, max_value=MAX_POINTS, required=False)
    birthday_bonus = serializers.IntegerField(min_value=0, max_value=MAX_POINTS, required=False)
    birthday_mode = serializers.ChoiceField(choices=EarningSettings.BirthdayMode.choices, required=False)
    referral_referrer_bonus = serializers.IntegerField(min_value=0, max_value=MAX_POINTS, required=False)
    referral_referee_bonus = serializers.IntegerField(min_value=0, max_value=MAX_POINTS, required=False)
    profile_completion_bonus = serializers.IntegerField(min_value=0, max_value=MAX_POINTS, required=False)
    profile_completion_fields = serializers.ListField(
        child=serializers.ChoiceField(choices=COMPLETION_FIELDS),
        required=False,
        max_length=len(COMPLETION_FIELDS),
    )


class ReferralInputSerializer(StrictSerializer):
    code = serializers.CharField(max_length=16, help_text="The referrer's referral code.")


# --- Representations ---------------------------------------------------------------------


class PurchaseLineSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    sku = serializers.CharField()
    category = serializers.CharField()
    quantity = serializers.CharField(help_text='Decimal, e.g. "2" or "1.25".')
    unit_price = serializers.CharField()
    line_total = serializers.CharField()
    discount = serializers.CharField()
    amount = serializers.CharField(help_text="line_total - discount.")
    gift_card = serializers.BooleanField()
    excluded = serializers.BooleanField()
    refunded_quantity = serializers.CharField()


class EarningSerializer(serializers.Serializer):
    currency = serializers.CharField()
    points = serializers.IntegerField()
    pending_until = serializers.DateTimeField(
        allow_null=True, help_text="Pending (not spendable) until then."
    )
    transaction_id = serializers.IntegerField(allow_null=True)
    reversed = serializers.IntegerField(help_text="Points refunds took back.")
    shortfall = serializers.IntegerField(help_text="Points refunds could not take back.")


class AwardSerializer(serializers.Serializer):
    currency = serializers.CharField()
    source = serializers.ChoiceField(choices=["rule", "campaign", "tier"])
    code = serializers.CharField()
    name = serializers.CharField()
    effect = serializers.CharField()
    lines = serializers.ListField(child=serializers.IntegerField(), help_text="Numbers of the lines.")
    base = serializers.CharField(
        help_text="Money for a rate, points for a multiplier or the tier, units for a bonus."
    )
    value = serializers.CharField(help_text="The rate, multiplier or bonus.")
    exact = serializers.CharField(help_text="Points before rounding (6 decimals).")
    points = serializers.IntegerField(help_text="Its share of the rounded points.")
    capped_by = serializers.CharField(
        help_text="Empty, or the cap that cut it: per_purchase, member_day, member_month, budget."
    )


def award_data(award, currency_code: str) -> dict[str, Any]:
    return {
        "currency": currency_code,
        "source": award.source,
        "code": award.code,
        "name": award.name,
        "effect": award.effect,
        "lines": list(award.lines),
        "base": _decimal(award.base),
        "value": _decimal(award.value),
        "exact": str(Decimal(award.exact).quantize(Decimal("0.000001"))),
        "points": award.points,
        "capped_by": award.capped_by,
    }


class PurchaseSerializer(serializers.Serializer):
    reference = serializers.CharField()
    member_id = serializers.IntegerField()
    card = serializers.CharField(allow_null=True, help_text="The card used, if any.")
    location = serializers.CharField(allow_null=True)
    occurred_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    currency = serializers.CharField(help_text="The money currency (ISO 4217).")
    total = serializers.CharField()
    tax = serializers.CharField()
    shipping = serializers.CharField()
    eligible_amount = serializers.CharField(help_text="What points were earned on.")
    first_purchase = serializers.BooleanField()
    points = serializers.IntegerField(help_text="Points earned in the default currency.")
    earnings = EarningSerializer(many=True, help_text="Points earned per points currency.")
    breakdown = AwardSerializer(many=True)
    lines = PurchaseLineSerializer(many=True)
    refunded_amount = serializers.CharField()
    refundable_amount = serializers.CharField()
    fully_refunded = serializers.BooleanField()
    metadata = serializers.DictField()

    def to_representation(self, purchase: Purchase) -> dict[str, Any]:
        return purchase_data(purchase)


def purchase_data(purchase: Purchase) -> dict[str, Any]:
    """A purchase as the API shows it (lines, earnings and awards prefetched)."""
    cur = purchase.currency
    earnings = list(purchase.earnings.all())
    codes = {earning.currency_id: earning.currency.code for earning in earnings}
    return {
        "reference": purchase.reference,
        "member_id": purchase.member_id,
        "card": purchase.card.number if purchase.card_id else None,
        "location": purchase.location.code if purchase.location_id else None,
        "occurred_at": _iso(purchase.occurred_at),
        "recorded_at": _iso(purchase.recorded_at),
        "currency": cur,
        "total": money(purchase.total, cur),
        "tax": money(purchase.tax, cur),
        "shipping": money(purchase.shipping, cur),
        "eligible_amount": money(purchase.eligible_amount, cur),
        "first_purchase": purchase.first_purchase,
        "points": purchase.points,
        "earnings": [
            {
                "currency": earning.currency.code,
                "points": earning.points,
                "pending_until": _iso(earning.transaction.pending_until),
                "transaction_id": earning.transaction_id,
                "reversed": earning.reversed,
                "shortfall": earning.shortfall,
            }
            for earning in earnings
        ],
        "breakdown": [award_data(award, codes.get(award.currency_id, "")) for award in purchase.awards.all()],
        "lines": [
            {
                "number": line.number,
                "sku": line.sku,
                "category": line.category,
                "quantity": _decimal(line.quantity),
                "unit_price": money(line.unit_price, cur),
                "line_total": money(line.line_total, cur),
                "discount": money(line.discount, cur),
                "amount": money(line.amount, cur),
                "gift_card": line.gift_card,
                "excluded": line.excluded,
                "refunded_quantity": _decimal(line.refunded_quantity),
            }
            for line in purchase.lines.all()
        ],
        "refunded_amount": money(purchase.refunded_amount, cur),
        "refundable_amount": money(purchase.refundable_amount, cur),
        "fully_refunded": purchase.fully_refunded,
        "metadata": purchase.metadata,
    }


class PurchaseResultSerializer(PurchaseSerializer):
    balances = AccountBalanceSerializer(many=True, help_text="The member's balances after the purchase.")


class QuoteEarningSerializer(serializers.Serializer):
    currency = serializers.CharField()
    points = serializers.IntegerField()
    pending_until = serializers.DateTimeField(allow_null=True)


class QuoteSerializer(serializers.Serializer):
    member_id = serializers.IntegerField()
    currency = serializers.CharField()
    total = serializers.CharField()
    eligible_amount = serializers.CharField()
    points = serializers.IntegerField(help_text="Points in the default currency.")
    earnings = QuoteEarningSerializer(many=True)
    breakdown = AwardSerializer(many=True)


class RefundLineSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    quantity = serializers.CharField()
    amount = serializers.CharField()


class RefundPointsSerializer(serializers.Serializer):
    currency = serializers.CharField()
    points = serializers.IntegerField(help_text="Points this refund takes back: reversed + shortfall.")
    reversed = serializers.IntegerField()
    shortfall = serializers.IntegerField(
        help_text="What the member no longer had (balance may not go negative)."
    )
    from_pending = serializers.BooleanField(help_text="The points were still pending: cancelled.")
    transaction_id = serializers.IntegerField(allow_null=True)


class RefundPurchaseStateSerializer(serializers.Serializer):
    reference = serializers.CharField()
    refunded_amount = serializers.CharField()
    refundable_amount = serializers.CharField()
    fully_refunded = serializers.BooleanField()


class RefundSerializer(serializers.Serializer):
    reference = serializers.CharField()
    member_id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    currency = serializers.CharField()
    amount = serializers.CharField()
    base = serializers.CharField(help_text="Part of the eligible amount refunded.")
    completes_purchase = serializers.BooleanField()
    reason = serializers.CharField()
    lines = RefundLineSerializer(many=True)
    points = RefundPointsSerializer(many=True)
    purchase = RefundPurchaseStateSerializer()
    metadata = serializers.DictField()

    def to_representation(self, refund: Refund) -> dict[str, Any]:
        return refund_data(refund)


def refund_data(refund: Refund) -> dict[str, Any]:
    purchase = refund.purchase
    cur = purchase.currency
    return {
        "reference": refund.reference,
        "member_id": refund.member_id,
        "occurred_at": _iso(refund.occurred_at),
        "recorded_at": _iso(refund.recorded_at),
        "currency": cur,
        "amount": money(refund.amount, cur),
        "base": money(refund.base, cur),
        "completes_purchase": refund.completes_purchase,
        "reason": refund.reason,
        "lines": [
            {"line": item.line.number, "quantity": _decimal(item.quantity), "amount": money(item.amount, cur)}
            for item in refund.lines.all()
        ],
        "points": [
            {
                "currency": item.currency.code,
                "points": item.points,
                "reversed": item.reversed,
                "shortfall": item.shortfall,
                "from_pending": item.from_pending,
                "transaction_id": item.transaction_id,
            }
            for item in refund.earnings.all()
        ],
        "purchase": {
            "reference": purchase.reference,
            "refunded_amount": money(purchase.refunded_amount, cur),
            "refundable_amount": money(purchase.refundable_amount, cur),
            "fully_refunded": purchase.fully_refunded,
        },
        "metadata": refund.metadata,
    }


# The fields the rule services accept (config.RULE_FIELDS), with the code in front.
_RULE_FIELDS = ["code", *RULE_FIELDS]


class RuleSerializer(serializers.ModelSerializer):
    currency = serializers.CharField(source="currency.code")
    hours_from = LocalTimeField(
        read_only=True, allow_null=True, help_text="From this time of day (program time)."
    )
    hours_to = LocalTimeField(
        read_only=True,
        allow_null=True,
        help_text="Until this time (excluded); before hours_from: past midnight.",
    )
    points_issued = serializers.SerializerMethodField(help_text="Points awarded so far.")

    class Meta:
        model = EarningRule
        fields = [*_RULE_FIELDS, "points_issued", "created_at", "updated_at"]
        read_only_fields = fields

    def get_points_issued(self, obj) -> int:
        return self.context.get("issued", {}).get(obj.pk, 0)


class CampaignSerializer(RuleSerializer):
    class Meta:
        model = Campaign
        fields = [*_RULE_FIELDS, "budget_points", "budget_used", "points_issued", "created_at", "updated_at"]
        read_only_fields = fields


class EarningSettingsSerializer(serializers.ModelSerializer):
    bonus_currency = serializers.CharField(source="bonus_currency.code", allow_null=True, default=None)

    class Meta:
        model = EarningSettings
        fields = [
            "return_window_days",
            "bonus_currency",
            "enrolment_bonus",
            "birthday_bonus",
            "birthday_mode",
            "referral_referrer_bonus",
            "referral_referee_bonus",
            "profile_completion_bonus",
            "profile_completion_fields",
        ]
        read_only_fields = fields


class ReferredBySerializer(serializers.Serializer):
    member_id = serializers.IntegerField()
    number = serializers.CharField()
    code = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "completed"])


class ReferralCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    completed = serializers.IntegerField()


class ReferralSerializer(serializers.Serializer):
    member_id = serializers.IntegerField()
    code = serializers.CharField(help_text="The member's own referral code, to share.")
    referred_by = ReferredBySerializer(allow_null=True)
    referrals = ReferralCountsSerializer(help_text="Members this member referred.")
