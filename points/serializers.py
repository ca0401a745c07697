"""API representations and request bodies of the points ledger."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from rest_framework import serializers

from membership_site.api.serializers import StrictSerializer

from .models import Currency, Hold, Transaction
from .services import CURRENCY_FIELDS, MAX_POINTS

# Clients' clocks drift: an occurred_at this far ahead of ours is still accepted.
CLOCK_SKEW = timedelta(minutes=5)


def points_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_POINTS, **kwargs)


class CurrencySerializer(serializers.ModelSerializer):
    class Meta:
        model = Currency
        fields = [
            "code",
            *CURRENCY_FIELDS,
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CurrencyUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    is_default = serializers.BooleanField(required=False)
    value_points = serializers.IntegerField(min_value=1, max_value=10**9, required=False)
    value_amount = serializers.DecimalField(
        max_digits=12, decimal_places=4, min_value=Decimal(0), required=False
    )
    allow_negative = serializers.BooleanField(required=False)
    expiry_policy = serializers.ChoiceField(choices=Currency.ExpiryPolicy.choices, required=False)
    expiry_period = serializers.IntegerField(min_value=0, max_value=1200, required=False)
    expiry_month = serializers.IntegerField(min_value=1, max_value=12, required=False, allow_null=True)
    expiry_day = serializers.IntegerField(min_value=1, max_value=31, required=False, allow_null=True)
    minimum_redemption = serializers.IntegerField(min_value=1, max_value=MAX_POINTS, required=False)
    is_active = serializers.BooleanField(required=False)


class CurrencyCreateSerializer(CurrencyUpdateSerializer):
    code = serializers.RegexField(r"^[A-Za-z0-9_-]{1,20}$", help_text="e.g. PTS, STAMPS (stored upper-case).")
    name = serializers.CharField(max_length=100)


class _WriteSerializer(StrictSerializer):
    currency = serializers.CharField(
        max_length=20, required=False, help_text="Currency code; default: the program's default currency."
    )
    reference = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="Receipt or order id, unique per program and kind: repeating it returns the original.",
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    metadata = serializers.DictField(required=False, default=dict)


class _TillSerializer(_WriteSerializer):
    location = serializers.SlugField(max_length=40, required=False, help_text="Location code.")
    occurred_at = serializers.DateTimeField(
        required=False, help_text="When it happened at the till (may be in the past for offline sales)."
    )

    def validate_occurred_at(self, value):
        if value > timezone.now() + CLOCK_SKEW:
            raise serializers.ValidationError("occurred_at cannot be in the future.", code="in_future")
        return value


class EarnSerializer(_TillSerializer):
    amount = points_field()
    pending_until = serializers.DateTimeField(
        required=False, allow_null=True, help_text="The points stay pending (not spendable) until then."
    )


class RedeemSerializer(_TillSerializer):
    amount = points_field()


class AdjustSerializer(_WriteSerializer):
    amount = serializers.IntegerField(
        min_value=-MAX_POINTS, max_value=MAX_POINTS, help_text="Signed: positive adds, negative removes."
    )
    reason = serializers.CharField(max_length=500)

    def validate_amount(self, value):
        if value == 0:
            raise serializers.ValidationError("An adjustment cannot be zero.", code="zero")
        return value


class TransferSerializer(_WriteSerializer):
    to_member = serializers.IntegerField(min_value=1, help_text="Id of the receiving member.")
    amount = points_field()


class ReverseSerializer(StrictSerializer):
    amount = points_field(required=False, help_text="Default: everything still reversible.")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    metadata = serializers.DictField(required=False, default=dict)


class HoldCreateSerializer(_WriteSerializer):
    amount = points_field()
    expires_in_minutes = serializers.IntegerField(
        min_value=1, max_value=7 * 24 * 60, required=False, help_text="Default: POINTS_HOLD_DEFAULT_MINUTES."
    )


class CaptureSerializer(StrictSerializer):
    amount = points_field(required=False, help_text="Default: the whole hold; the rest is released.")
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    metadata = serializers.DictField(required=False, default=dict)


class ReleaseSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


# --- Output ------------------------------------------------------------------------------


class TransactionSerializer(serializers.ModelSerializer):
    currency = serializers.CharField(source="currency.code")
    member_id = serializers.IntegerField()
    counterparty_member_id = serializers.IntegerField(source="counterparty_id", allow_null=True)
    location = serializers.CharField(source="location.code", allow_null=True, default=None)
    reverses = serializers.IntegerField(source="reverses_id", allow_null=True)
    hold_id = serializers.IntegerField(allow_null=True)
    signed_amount = serializers.SerializerMethodField(
        help_text="The change to the member's points: negative for redemptions, transfers "
        "sent, expiry; positive for earnings, transfers received; 0 for moves inside the "
        "account (hold, activation)."
    )

    class Meta:
        model = Transaction
        fields = [
            "id",
            "kind",
            "currency",
            "member_id",
            "counterparty_member_id",
            "amount",
            "signed_amount",
            "reference",
            "description",
            "reason",
            "location",
            "reverses",
            "hold_id",
            "pending_until",
            "occurred_at",
            "recorded_at",
            "metadata",
        ]
        read_only_fields = fields

    def get_signed_amount(self, txn: Transaction) -> int:
        return transaction_data(txn, self.context.get("member_id"))["signed_amount"]

    def to_representation(self, txn: Transaction) -> dict:
        # Built directly (same fields as declared above, which document it): this is on
        # the hot path of every ledger write and list.
        return transaction_data(txn, self.context.get("member_id"))


def transaction_data(txn: Transaction, viewer_id: int | None = None) -> dict:
    """A transaction as the API shows it; ``signed_amount`` from ``viewer_id``'s side."""
    signed = txn.signed_amount
    if viewer_id is not None and viewer_id == txn.counterparty_id:
        signed = -signed
    return {
        "id": txn.pk,
        "kind": txn.kind,
        "currency": txn.currency.code,
        "member_id": txn.member_id,
        "counterparty_member_id": txn.counterparty_id,
        "amount": txn.amount,
        "signed_amount": signed,
        "reference": txn.reference,
        "description": txn.description,
        "reason": txn.reason,
        "location": txn.location.code if txn.location_id else None,
        "reverses": txn.reverses_id,
        "hold_id": txn.hold_id,
        "pending_until": _iso(txn.pending_until),
        "occurred_at": _iso(txn.occurred_at),
        "recorded_at": _iso(txn.recorded_at),
        "metadata": txn.metadata,
    }


_DATETIME = serializers.DateTimeField()


def _iso(value) -> str | None:
    return _DATETIME.to_representation(value) if value is not None else None


class AccountBalanceSerializer(serializers.Serializer):
    currency = serializers.CharField()
    available = serializers.IntegerField()
    pending = serializers.IntegerField()
    held = serializers.IntegerField()


class BalanceSerializer(AccountBalanceSerializer):
    lifetime_earned = serializers.IntegerField()
    next_expiry_at = serializers.DateTimeField(
        allow_null=True, help_text="First instant the points are expired."
    )
    next_expiry_on = serializers.DateField(
        allow_null=True, help_text="Last day they can be used (program time)."
    )
    next_expiry_amount = serializers.IntegerField()


class MemberBalancesSerializer(serializers.Serializer):
    member_id = serializers.IntegerField()
    balances = BalanceSerializer(many=True)


class HoldSerializer(serializers.ModelSerializer):
    member_id = serializers.IntegerField()
    currency = serializers.CharField(source="account.currency.code")

    class Meta:
        model = Hold
        fields = [
            "id",
            "member_id",
            "currency",
            "amount",
            "captured_amount",
            "state",
            "expires_at",
            "reference",
            "description",
            "metadata",
            "created_at",
            "closed_at",
        ]
        read_only_fields = fields


class PointsResultSerializer(serializers.Serializer):
    transaction = TransactionSerializer()
    balance = AccountBalanceSerializer(help_text="The member's balance in the currency, now.")
    counterparty_balance = AccountBalanceSerializer(
        required=False, allow_null=True, help_text="Transfers: the recipient's balance, now."
    )
    hold = HoldSerializer(required=False, allow_null=True)


class ExpiringItemSerializer(serializers.Serializer):
    currency = serializers.CharField()
    expires_at = serializers.DateTimeField()
    expires_on = serializers.DateField()
    amount = serializers.IntegerField()


class ExpiringSerializer(serializers.Serializer):
    member_id = serializers.IntegerField()
    within = serializers.CharField()
    until = serializers.DateTimeField()
    total = serializers.IntegerField()
    items = ExpiringItemSerializer(many=True)
