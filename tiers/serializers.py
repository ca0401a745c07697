"""API representations of tiers, a member's tier progress, history and activity.

Money amounts are rendered with the program currency's decimals: views pass
``context={"currency": program.currency}``.
"""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from membership_site.api.serializers import StrictSerializer
from programs.serializers import MoneyField

from .models import Tier, TierActivity, TierChange
from .services import MAX_EARN_MULTIPLIER, MAX_GRACE_MONTHS, MAX_WINDOW_MONTHS

# The columns' ranges (points: the ledger's ceiling, as points.services.MAX_POINTS; visits: a
# PositiveIntegerField), so a larger number is a 400 rather than a database error.
MAX_THRESHOLD_POINTS = 10**12
MAX_THRESHOLD_VISITS = 2**31 - 1


def _money_input(**kwargs) -> MoneyField:
    return MoneyField(required=False, allow_null=True, **kwargs)


class TierSerializer(serializers.ModelSerializer):
    qualify_spend = MoneyField(allow_null=True, read_only=True)
    retain_spend = MoneyField(allow_null=True, read_only=True)

    class Meta:
        model = Tier
        fields = [
            "code",
            "name",
            "rank",
            "is_default",
            "qualify_mode",
            "qualify_spend",
            "qualify_points",
            "qualify_visits",
            "retain_spend",
            "retain_points",
            "retain_visits",
            "window_kind",
            "window_months",
            "grace_months",
            "downgrade_policy",
            "earn_multiplier",
            "discount_percent",
            "perks",
            "rewards_eligible",
            "reward_tags",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TierUpdateSerializer(StrictSerializer):
    """A tier's definition; in a PATCH only the fields sent change. ``null`` for a threshold
    means "not used" (qualification) or "same as the qualification threshold" (retention)."""

    name = serializers.CharField(max_length=100)
    rank = serializers.IntegerField(min_value=0, max_value=32767, help_text="Higher is better.")
    is_default = serializers.BooleanField(
        default=False, help_text="true moves the program's default tier here."
    )
    qualify_mode = serializers.ChoiceField(choices=Tier.Mode.choices, default=Tier.Mode.ANY)
    qualify_spend = _money_input(min_value=Decimal("0.001"))
    qualify_points = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_THRESHOLD_POINTS
    )
    qualify_visits = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_THRESHOLD_VISITS
    )
    retain_spend = _money_input(min_value=Decimal("0"))
    retain_points = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_THRESHOLD_POINTS
    )
    retain_visits = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_THRESHOLD_VISITS
    )
    window_kind = serializers.ChoiceField(choices=Tier.Window.choices, default=Tier.Window.ROLLING_MONTHS)
    window_months = serializers.IntegerField(min_value=1, max_value=MAX_WINDOW_MONTHS, default=12)
    grace_months = serializers.IntegerField(min_value=0, max_value=MAX_GRACE_MONTHS, default=0)
    downgrade_policy = serializers.ChoiceField(
        choices=Tier.Downgrade.choices, default=Tier.Downgrade.ONE_LEVEL
    )
    earn_multiplier = serializers.DecimalField(
        max_digits=6,
        decimal_places=3,
        min_value=Decimal("0"),
        max_value=MAX_EARN_MULTIPLIER,
        default=Decimal("1"),
        help_text=Tier._meta.get_field("earn_multiplier").help_text,
    )
    discount_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0"), max_value=Decimal("100"), default=Decimal("0")
    )
    perks = serializers.CharField(allow_blank=True, default="")
    rewards_eligible = serializers.BooleanField(default=True)
    reward_tags = serializers.ListField(child=serializers.SlugField(max_length=50), default=list)


class TierCreateSerializer(TierUpdateSerializer):
    code = serializers.SlugField(max_length=40)


class TierSettingsSerializer(StrictSerializer):
    adjustments_qualify = serializers.BooleanField(
        help_text="Whether manual points adjustments count as qualifying activity."
    )


# --- A member's tier ----------------------------------------------------------------------


class TierBenefitsSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tier
        fields = [
            "code",
            "name",
            "rank",
            "earn_multiplier",
            "discount_percent",
            "perks",
            "rewards_eligible",
            "reward_tags",
        ]
        read_only_fields = fields


class TierMetricsSerializer(serializers.Serializer):
    spend = MoneyField()
    points = serializers.IntegerField()
    visits = serializers.IntegerField()


class TierThresholdsSerializer(serializers.Serializer):
    mode = serializers.CharField()
    spend = MoneyField(allow_null=True)
    points = serializers.IntegerField(allow_null=True)
    visits = serializers.IntegerField(allow_null=True)


class TierRemainingSerializer(serializers.Serializer):
    spend = MoneyField(allow_null=True)
    points = serializers.IntegerField(allow_null=True)
    visits = serializers.IntegerField(allow_null=True)


class TierWindowSerializer(serializers.Serializer):
    kind = serializers.CharField(source="window.kind")
    months = serializers.IntegerField(source="window.months", help_text="Rolling windows only (else 0).")
    start = serializers.DateField(
        source="bounds.start", allow_null=True, help_text="First day counted (null: lifetime)."
    )
    previous_start = serializers.DateField(
        source="bounds.previous_start",
        allow_null=True,
        help_text="Yearly windows: first day of the last complete year, which also counts.",
    )


class TierStandingSerializer(serializers.Serializer):
    tier = serializers.CharField(source="tier.code")
    window = TierWindowSerializer(source="*")
    metrics = TierMetricsSerializer(source="metrics.current", help_text="Activity in the current window.")
    previous_metrics = TierMetricsSerializer(
        source="metrics.previous", allow_null=True, help_text="Yearly windows: the last complete year."
    )
    thresholds = TierThresholdsSerializer()
    met = serializers.BooleanField()
    remaining = TierRemainingSerializer(help_text="What the current window still lacks, per metric.")


class TierChangeSerializer(serializers.ModelSerializer):
    from_tier = serializers.CharField(source="from_tier.code", allow_null=True, default=None)
    to_tier = serializers.CharField(source="to_tier.code")
    actor = serializers.SerializerMethodField()

    class Meta:
        model = TierChange
        fields = [
            "id",
            "reason",
            "from_tier",
            "to_tier",
            "note",
            "grace_until",
            "locked_until",
            "effective_on",
            "at",
            "actor",
        ]
        read_only_fields = fields

    def get_actor(self, change: TierChange) -> str:
        if change.actor_user_id:
            return f"user:{change.actor_user_id}"
        if change.actor_integration_id:
            return f"integration:{change.actor_integration_id}"
        return "system"


class MemberTierSerializer(serializers.Serializer):
    """A member's tier and progress."""

    member_id = serializers.IntegerField()
    tier = TierBenefitsSerializer(allow_null=True, help_text="null: the program has no tiers.")
    since = serializers.DateTimeField(allow_null=True)
    grace_until = serializers.DateField(
        allow_null=True, help_text="In grace: moved down on this day unless the member re-qualifies."
    )
    locked_until = serializers.DateField(allow_null=True, help_text="Not moved down before this day.")
    lifetime_tier = serializers.CharField(
        source="lifetime_tier.code", allow_null=True, default=None, help_text="Never below this tier."
    )
    as_of = serializers.DateTimeField()
    keep = TierStandingSerializer(allow_null=True, help_text="What keeps the current tier (null: nothing).")
    next = TierStandingSerializer(allow_null=True, help_text="What the next tier needs (null: at the top).")
    history = TierChangeSerializer(many=True, help_text="The latest changes, newest first.")


class MemberTierAssignSerializer(StrictSerializer):
    tier = serializers.SlugField(max_length=40, help_text="Code of the tier to assign.")
    reason = serializers.CharField(max_length=500)
    locked_until = serializers.DateField(
        required=False, allow_null=True, help_text="Not moved down before this day (after today)."
    )
    lifetime = serializers.BooleanField(default=False, help_text="Never moved below this tier.")


class TierActivitySerializer(serializers.ModelSerializer):
    spend = MoneyField(read_only=True)

    class Meta:
        model = TierActivity
        fields = [
            "id",
            "occurred_at",
            "occurred_on",
            "source",
            "reference",
            "spend",
            "points",
            "visits",
            "recorded_at",
        ]
        read_only_fields = fields
