"""API representations and request bodies of rewards, redemptions, vouchers, pay with
points and member pricing. Money is rendered as strings with the program currency's
decimals (``context["currency"]``)."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from membership_site.api.serializers import StrictSerializer
from points.serializers import AccountBalanceSerializer
from programs.serializers import MoneyField

from .codes import format_code
from .models import PayWithPointsRule, Redemption, Reward, Voucher
from .selectors import REASONS

MAX_POINTS = 10**12
MAX_MONEY = Decimal("1000000000")


class _CodesField(serializers.ListField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("child", serializers.SlugField(max_length=50))
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)


# --- Catalog -----------------------------------------------------------------------------


class RewardCostSerializer(StrictSerializer):
    currency = serializers.CharField(max_length=20)
    points = serializers.IntegerField(min_value=1, max_value=MAX_POINTS)


class RewardSerializer(serializers.ModelSerializer):
    costs = serializers.SerializerMethodField()
    eligible_tiers = serializers.SerializerMethodField()
    eligible_labels = serializers.SerializerMethodField()
    tier_tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    locations = serializers.SerializerMethodField()
    voucher_amount = MoneyField(allow_null=True)
    voucher_min_spend = MoneyField(allow_null=True)
    target_currency = serializers.CharField(source="target_currency.code", allow_null=True, default=None)
    # Declared so the schema admits the empty value these blank=True columns hold (DRF drops
    # allow_blank from read-only model fields; a typed client would reject "").
    image_url = serializers.CharField(
        read_only=True, help_text="Picture shown to members (hosted on your CDN or shop). Empty: none."
    )
    limit_period = serializers.ChoiceField(
        choices=Reward.Period.choices,
        allow_blank=True,
        read_only=True,
        help_text="Periods are in the program's time zone. Empty: no per-period limit.",
    )

    class Meta:
        model = Reward
        fields = [
            "code",
            "name",
            "description",
            "image_url",
            "kind",
            "sort_order",
            "costs",
            "stock",
            "limit_total",
            "limit_per_period",
            "limit_period",
            "valid_from",
            "valid_until",
            "eligible_tiers",
            "eligible_labels",
            "tier_tags",
            "locations",
            "is_active",
            "voucher_amount",
            "voucher_percent",
            "sku",
            "voucher_min_spend",
            "voucher_skus",
            "voucher_valid_days",
            "target_currency",
            "target_points",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(RewardCostSerializer(many=True))
    def get_costs(self, reward: Reward) -> list[dict]:
        return [{"currency": cost.currency.code, "points": cost.points} for cost in reward.costs.all()]

    def get_eligible_tiers(self, reward: Reward) -> list[str]:
        return sorted(tier.code for tier in reward.eligible_tiers.all())

    def get_eligible_labels(self, reward: Reward) -> list[str]:
        return sorted(label.code for label in reward.eligible_labels.all())

    def get_locations(self, reward: Reward) -> list[str]:
        return sorted(location.code for location in reward.locations.all())


class RewardUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, required=False)
    image_url = serializers.URLField(max_length=500, allow_blank=True, required=False)
    kind = serializers.ChoiceField(choices=Reward.Kind.choices)
    sort_order = serializers.IntegerField(min_value=-(10**6), max_value=10**6, required=False)
    costs = RewardCostSerializer(many=True, allow_empty=False, max_length=20)
    stock = serializers.IntegerField(min_value=0, max_value=MAX_POINTS, allow_null=True, required=False)
    limit_total = serializers.IntegerField(min_value=1, max_value=10**6, allow_null=True, required=False)
    limit_per_period = serializers.IntegerField(min_value=1, max_value=10**6, allow_null=True, required=False)
    limit_period = serializers.ChoiceField(choices=Reward.Period.choices, allow_blank=True, required=False)
    valid_from = serializers.DateTimeField(allow_null=True, required=False)
    valid_until = serializers.DateTimeField(allow_null=True, required=False)
    eligible_tiers = _CodesField(required=False, help_text="Tier codes; empty: every tier.")
    eligible_labels = _CodesField(required=False, help_text="Label codes; empty: everyone.")
    tier_tags = serializers.ListField(
        child=serializers.SlugField(max_length=50),
        max_length=50,
        required=False,
        help_text="Tier reward tags: only members whose tier unlocks one of them (the tier's "
        "`reward_tags`) may redeem it; empty: no tag needed.",
    )
    locations = _CodesField(required=False, help_text="Location codes where vouchers work; empty: anywhere.")
    is_active = serializers.BooleanField(required=False)
    voucher_amount = MoneyField(
        min_value=Decimal("0.001"), max_value=MAX_MONEY, allow_null=True, required=False
    )
    voucher_percent = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        min_value=Decimal("0.01"),
        max_value=Decimal("100"),
        allow_null=True,
        required=False,
    )
    sku = serializers.CharField(max_length=64, allow_blank=True, required=False)
    voucher_min_spend = MoneyField(
        min_value=Decimal("0"), max_value=MAX_MONEY, allow_null=True, required=False
    )
    voucher_skus = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=500, required=False
    )
    voucher_valid_days = serializers.IntegerField(
        min_value=0, max_value=3660, allow_null=True, required=False
    )
    target_currency = serializers.CharField(max_length=20, allow_null=True, required=False)
    target_points = serializers.IntegerField(
        min_value=1, max_value=MAX_POINTS, allow_null=True, required=False
    )

    def validate_costs(self, value: list[dict]) -> list[dict]:
        # A PATCH is partial at the top level only: a replaced cost still needs both fields
        # (DRF lets nested items of a partial serializer skip required fields).
        errors = {
            str(index): {
                name: ["This field is required."] for name in ("currency", "points") if name not in item
            }
            for index, item in enumerate(value)
            if not {"currency", "points"} <= item.keys()
        }
        if errors:
            raise serializers.ValidationError(errors, code="required")
        return value


class RewardCreateSerializer(RewardUpdateSerializer):
    code = serializers.SlugField(max_length=50)


# --- A member's catalog ---------------------------------------------------------------------


class MemberRewardSerializer(RewardSerializer):
    available = serializers.SerializerMethodField()
    reasons = serializers.SerializerMethodField(
        help_text=f"Why it cannot be redeemed now (empty when available): {', '.join(REASONS)}."
    )
    redeemed_total = serializers.IntegerField(source="used_total", read_only=True)
    redeemed_in_period = serializers.IntegerField(source="used_in_period", read_only=True)

    class Meta(RewardSerializer.Meta):
        fields = [
            *RewardSerializer.Meta.fields,
            "available",
            "reasons",
            "redeemed_total",
            "redeemed_in_period",
        ]
        read_only_fields = fields

    def get_reasons(self, reward: Reward) -> list[str]:
        return self.context["reasons"][reward.pk]

    def get_available(self, reward: Reward) -> bool:
        return not self.context["reasons"][reward.pk]


# --- Redemptions ------------------------------------------------------------------------------


class ShippingAddressSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    address_line1 = serializers.CharField(max_length=200)
    address_line2 = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    city = serializers.CharField(max_length=100)
    postal_code = serializers.CharField(max_length=20, allow_blank=True, required=False, default="")
    region = serializers.CharField(max_length=100, allow_blank=True, required=False, default="")
    country = serializers.RegexField(r"^[A-Za-z]{2}$", help_text="ISO 3166 alpha-2.")
    phone = serializers.CharField(max_length=30, allow_blank=True, required=False, default="")

    def validate_country(self, value: str) -> str:
        return value.upper()


class RewardRedeemSerializer(StrictSerializer):
    currency = serializers.CharField(
        max_length=20,
        required=False,
        help_text="The currency to pay in; default: the reward's only cost, or the program's default "
        "currency.",
    )
    reference = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="Your id for this redemption, unique in the program: repeating it returns the original.",
    )
    location = serializers.SlugField(max_length=40, required=False, help_text="Location code.")
    address = ShippingAddressSerializer(required=False, help_text="Shipping address (physical rewards).")


class VoucherSerializer(serializers.ModelSerializer):
    code = serializers.SerializerMethodField()
    amount = MoneyField(allow_null=True)
    min_spend = MoneyField(allow_null=True)
    locations = serializers.SerializerMethodField()
    member_id = serializers.IntegerField(allow_null=True)
    redemption_id = serializers.IntegerField(allow_null=True)
    used_location = serializers.CharField(source="used_location.code", allow_null=True, default=None)

    class Meta:
        model = Voucher
        fields = [
            "code",
            "status",
            "value_kind",
            "amount",
            "percent",
            "sku",
            "min_spend",
            "skus",
            "locations",
            "valid_until",
            "member_id",
            "redemption_id",
            "issued_at",
            "used_at",
            "used_reference",
            "used_location",
            "closed_at",
            "closed_reason",
        ]
        read_only_fields = fields

    def get_code(self, voucher: Voucher) -> str:
        return format_code(voucher.code)

    def get_locations(self, voucher: Voucher) -> list[str]:
        return sorted(location.code for location in voucher.locations.all())


class ShipmentSerializer(serializers.Serializer):
    name = serializers.CharField()
    address_line1 = serializers.CharField()
    address_line2 = serializers.CharField()
    city = serializers.CharField()
    postal_code = serializers.CharField()
    region = serializers.CharField()
    country = serializers.CharField()
    phone = serializers.CharField()
    status = serializers.CharField()
    tracking = serializers.CharField()
    shipped_at = serializers.DateTimeField(allow_null=True)


class RedemptionSerializer(serializers.ModelSerializer):
    member_id = serializers.IntegerField()
    reward = serializers.CharField(source="reward.code")
    reward_kind = serializers.CharField(source="reward.kind")
    currency = serializers.CharField(source="currency.code")
    location = serializers.CharField(source="location.code", allow_null=True, default=None)
    points_transaction_id = serializers.IntegerField()
    conversion_transaction_id = serializers.IntegerField(allow_null=True)
    reversal_transaction_id = serializers.IntegerField(allow_null=True)
    voucher = serializers.SerializerMethodField()
    shipment = serializers.SerializerMethodField()

    class Meta:
        model = Redemption
        fields = [
            "id",
            "member_id",
            "reward",
            "reward_kind",
            "currency",
            "points",
            "status",
            "reference",
            "location",
            "points_transaction_id",
            "conversion_transaction_id",
            "reversal_transaction_id",
            "redeemed_at",
            "cancelled_at",
            "cancel_reason",
            "voucher",
            "shipment",
        ]
        read_only_fields = fields

    @extend_schema_field(VoucherSerializer(allow_null=True))
    def get_voucher(self, redemption: Redemption) -> dict | None:
        voucher = getattr(redemption, "voucher", None)
        return VoucherSerializer(voucher, context=self.context).data if voucher is not None else None

    @extend_schema_field(ShipmentSerializer(allow_null=True))
    def get_shipment(self, redemption: Redemption) -> dict | None:
        shipment = getattr(redemption, "shipment", None)
        return ShipmentSerializer(shipment).data if shipment is not None else None


class RedemptionResultSerializer(serializers.Serializer):
    redemption = RedemptionSerializer()
    balance = AccountBalanceSerializer(help_text="The member's balance in the currency paid, now.")


# --- Vouchers -----------------------------------------------------------------------------------


class VoucherCheckSerializer(serializers.Serializer):
    voucher = VoucherSerializer()
    usable = serializers.BooleanField()
    reasons = serializers.ListField(
        child=serializers.CharField(),
        help_text="used, cancelled, expired, other_member, below_min_spend, location_not_allowed, "
        "sku_not_in_basket.",
    )
    unchecked = serializers.ListField(
        child=serializers.CharField(),
        help_text="Conditions not checked because the query did not give their value (amount, "
        "location, skus); using the voucher requires them.",
    )


class VoucherUseSerializer(StrictSerializer):
    reference = serializers.CharField(max_length=100, help_text="The purchase (receipt or order id).")
    amount = MoneyField(
        min_value=Decimal("0"), max_value=MAX_MONEY, required=False, help_text="The basket total."
    )
    location = serializers.SlugField(max_length=40, required=False)
    skus = serializers.ListField(child=serializers.CharField(max_length=64), max_length=1000, required=False)
    member_id = serializers.IntegerField(
        min_value=1, required=False, help_text="The member paying, if known."
    )


# --- Pay with points ----------------------------------------------------------------------------


class PaySerializer(StrictSerializer):
    bill_amount = MoneyField(min_value=Decimal("0.001"), max_value=MAX_MONEY)
    amount = MoneyField(
        min_value=Decimal("0.001"), max_value=MAX_MONEY, required=False, help_text="The money to cover."
    )
    points = serializers.IntegerField(
        min_value=1, max_value=MAX_POINTS, required=False, help_text="Or the points to spend."
    )
    currency = serializers.CharField(max_length=20, required=False)
    hold = serializers.BooleanField(
        default=False, help_text="Put the points on hold (web checkout) instead of redeeming them now."
    )
    expires_in_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, required=False)
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    location = serializers.SlugField(max_length=40, required=False)

    def validate(self, data):
        if ("amount" in data) == ("points" in data):
            raise serializers.ValidationError(
                {"amount": ["Give either amount (money to cover) or points."]}, code="amount_or_points"
            )
        if "expires_in_minutes" in data and not data["hold"]:
            raise serializers.ValidationError(
                {"expires_in_minutes": ["Only for holds."]}, code="only_for_holds"
            )
        return data


class PayResultSerializer(serializers.Serializer):
    member_id = serializers.IntegerField()
    currency = serializers.CharField()
    points = serializers.IntegerField(help_text="Points spent (or held).")
    money_currency = serializers.CharField()
    bill_amount = MoneyField()
    money_covered = MoneyField(help_text="What the points pay.")
    remaining_to_pay = MoneyField(help_text="The bill less what the points pay.")
    max_amount = MoneyField(help_text="The most points may pay of this bill (the share cap).")
    transaction_id = serializers.IntegerField()
    hold_id = serializers.IntegerField(allow_null=True)
    hold_expires_at = serializers.DateTimeField(allow_null=True)
    balance = AccountBalanceSerializer()


class PayRuleSerializer(serializers.ModelSerializer):
    currency = serializers.CharField(source="currency.code")
    minimum_bill = MoneyField()
    value_points = serializers.IntegerField(
        source="currency.value_points", help_text="The currency's cash value: this many points..."
    )
    value_amount = MoneyField(source="currency.value_amount", allow_null=True, help_text="...are worth this.")

    class Meta:
        model = PayWithPointsRule
        fields = [
            "currency",
            "is_active",
            "minimum_points",
            "step",
            "max_share_percent",
            "minimum_bill",
            "value_points",
            "value_amount",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PayRuleWriteSerializer(StrictSerializer):
    is_active = serializers.BooleanField(default=True)
    minimum_points = serializers.IntegerField(
        min_value=0, max_value=10**9, default=1, help_text="Fewest points one payment may use."
    )
    step = serializers.IntegerField(
        min_value=1, max_value=10**9, default=1, help_text="Points are spent in multiples of this."
    )
    max_share_percent = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        min_value=Decimal("0.01"),
        max_value=Decimal("100"),
        default=Decimal("100"),
        help_text="At most this share of the bill may be paid with points.",
    )
    minimum_bill = MoneyField(
        min_value=Decimal("0"),
        max_value=MAX_MONEY,
        default=Decimal("0"),
        help_text="Smaller bills cannot use points.",
    )


# --- Member pricing ------------------------------------------------------------------------------


class PriceLineSerializer(StrictSerializer):
    sku = serializers.CharField(max_length=64, allow_blank=True, default="")
    category = serializers.CharField(max_length=64, allow_blank=True, default="")
    quantity = serializers.IntegerField(min_value=1, max_value=10**6, default=1)
    unit_price = MoneyField(min_value=Decimal("0"), max_value=MAX_MONEY)


class PricingRequestSerializer(StrictSerializer):
    lines = PriceLineSerializer(many=True, allow_empty=False, max_length=1000)


class PricedLineSerializer(serializers.Serializer):
    sku = serializers.CharField()
    category = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = MoneyField()
    gross = MoneyField()
    discount_percent = serializers.DecimalField(max_digits=5, decimal_places=2)
    discount = MoneyField()
    net = MoneyField()
    source = serializers.ChoiceField(choices=["tier", "sku", "category", "excluded"])


class PricingResultSerializer(serializers.Serializer):
    member_id = serializers.IntegerField()
    tier = serializers.CharField(allow_null=True)
    currency = serializers.CharField()
    lines = PricedLineSerializer(many=True)
    gross = MoneyField()
    discount = MoneyField()
    net = MoneyField()
