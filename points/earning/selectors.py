"""Reads for earning: settings, rules and campaigns (as ``RuleSpec``), what the member's
tier, labels and history say, the caps already used, purchases and refunds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet, Sum

from members.models import Member, MemberLabel
from programs.currencies import money_quantum
from programs.models import Program
from tiers.selectors import member_benefits

from ..models import Campaign, EarningRule, EarningSettings, PointsAward, Purchase, Refund, RuleBase
from . import compute
from .errors import CampaignNotFoundError, PurchaseNotFoundError, RuleNotFoundError


def earning_settings_get(*, program: Program) -> EarningSettings:
    """The program's earning settings (the defaults, unsaved, when never changed)."""
    found = EarningSettings.objects.select_related("bonus_currency").filter(program=program).first()
    return found or EarningSettings(program=program)


# --- Rules and campaigns -----------------------------------------------------------------


def rule_list(*, program: Program) -> QuerySet[EarningRule]:
    return (
        EarningRule.objects.filter(program=program).select_related("currency").order_by("-priority", "code")
    )


def rule_get(*, program: Program, code: str) -> EarningRule:
    try:
        return rule_list(program=program).get(code=code)
    except EarningRule.DoesNotExist:
        raise RuleNotFoundError(f"No earning rule '{code}' in this program.") from None


def campaign_list(*, program: Program) -> QuerySet[Campaign]:
    return Campaign.objects.filter(program=program).select_related("currency").order_by("-priority", "code")


def campaign_get(*, program: Program, code: str) -> Campaign:
    try:
        return campaign_list(program=program).get(code=code)
    except Campaign.DoesNotExist:
        raise CampaignNotFoundError(f"No campaign '{code}' in this program.") from None


def spec_of(obj: RuleBase) -> compute.RuleSpec:
    is_campaign = isinstance(obj, Campaign)
    return compute.RuleSpec(
        source=compute.CAMPAIGN if is_campaign else compute.RULE,
        id=obj.pk,
        code=obj.code,
        name=obj.name,
        currency_id=obj.currency_id,
        effect=obj.effect,
        scope=obj.scope,
        value=Decimal(obj.value),
        stacking=obj.stacking,
        priority=obj.priority,
        starts_on=obj.starts_on,
        ends_on=obj.ends_on,
        hours_from=obj.hours_from,
        hours_to=obj.hours_to,
        weekdays=frozenset(obj.weekdays or ()),
        locations=frozenset(obj.locations or ()),
        skus=frozenset(obj.skus or ()),
        categories=frozenset(obj.categories or ()),
        min_spend=obj.min_spend,
        tiers=frozenset(obj.tiers or ()),
        labels=frozenset(obj.labels or ()),
        first_purchase_only=obj.first_purchase_only,
        max_points_per_purchase=obj.max_points_per_purchase,
        has_member_caps=obj.max_points_per_member_day is not None
        or obj.max_points_per_member_month is not None,
        has_budget=is_campaign and obj.budget_points is not None,
    )


def active_rules(*, program: Program, on: date) -> tuple[list[EarningRule], list[Campaign]]:
    """The rules and campaigns that may apply on day ``on`` (active, not ended), in two
    queries."""
    current = Q(program=program, is_active=True) & (Q(ends_on__isnull=True) | Q(ends_on__gte=on))
    return list(EarningRule.objects.filter(current)), list(Campaign.objects.filter(current))


def rule_specs(rules: Iterable[RuleBase]) -> list[compute.RuleSpec]:
    return [spec_of(obj) for obj in rules]


# --- The member --------------------------------------------------------------------------


def member_facts(*, member: Member, first_purchase: bool | None = None) -> compute.MemberFacts:
    """What the rules look at: the member's tier (and its multiplier), labels, and whether
    they have purchased before (``first_purchase`` when the caller knows it)."""
    benefits = member_benefits(member=member)
    labels = frozenset(MemberLabel.objects.filter(member_id=member.pk).values_list("label__code", flat=True))
    if first_purchase is None:
        first_purchase = not Purchase.objects.filter(member_id=member.pk).exists()
    return compute.MemberFacts(
        tier_code=benefits.tier_code,
        tier_name=benefits.tier_name,
        earn_multiplier=benefits.earn_multiplier,
        labels=labels,
        first_purchase=first_purchase,
    )


def _month_bounds(day: date) -> tuple[date, date]:
    start = day.replace(day=1)
    end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start, end


def cap_limits(
    *,
    member: Member,
    rules: Sequence[RuleBase],
    on: date,
    budgets: dict[int, tuple[int, int]] | None = None,
) -> dict[tuple[str, int], compute.Limit]:
    """What is left of each rule's per-member day and month caps for ``member`` on program
    day ``on`` (one query, only when a rule has such a cap) and of each campaign's budget
    (``budgets``: campaign id -> (budget, used), e.g. read under lock; else the rows')."""
    limits: dict[tuple[str, int], compute.Limit] = {}

    def tighten(key: tuple[str, int], points: int, reason: str) -> None:
        current = limits.get(key)
        if current is None or points < current.points:
            limits[key] = compute.Limit(max(points, 0), reason)

    capped = [
        obj
        for obj in rules
        if obj.max_points_per_member_day is not None or obj.max_points_per_member_month is not None
    ]
    if capped:
        start, end = _month_bounds(on)
        rule_ids = [obj.pk for obj in capped if isinstance(obj, EarningRule)]
        campaign_ids = [obj.pk for obj in capped if isinstance(obj, Campaign)]
        rows = (
            PointsAward.objects.filter(member_id=member.pk, occurred_on__gte=start, occurred_on__lt=end)
            .filter(Q(rule_id__in=rule_ids) | Q(campaign_id__in=campaign_ids))
            .values("rule_id", "campaign_id", "occurred_on")
            .annotate(points=Sum("points"))
            .order_by()
        )
        day_used: dict[tuple[str, int], int] = defaultdict(int)
        month_used: dict[tuple[str, int], int] = defaultdict(int)
        for row in rows:
            key = (compute.RULE, row["rule_id"]) if row["rule_id"] else (compute.CAMPAIGN, row["campaign_id"])
            month_used[key] += row["points"]
            if row["occurred_on"] == on:
                day_used[key] += row["points"]
        for obj in capped:
            key = (compute.CAMPAIGN if isinstance(obj, Campaign) else compute.RULE, obj.pk)
            if obj.max_points_per_member_day is not None:
                tighten(key, obj.max_points_per_member_day - day_used[key], "member_day")
            if obj.max_points_per_member_month is not None:
                tighten(key, obj.max_points_per_member_month - month_used[key], "member_month")
    for obj in rules:
        if isinstance(obj, Campaign) and obj.budget_points is not None:
            budget, used = (budgets or {}).get(obj.pk, (obj.budget_points, obj.budget_used))
            tighten((compute.CAMPAIGN, obj.pk), budget - used, "budget")
    return limits


# --- Purchases and refunds ---------------------------------------------------------------


def purchase_list(*, program: Program) -> QuerySet[Purchase]:
    """Purchases with what their representation shows, in a fixed number of queries."""
    return (
        Purchase.objects.filter(program=program)
        .select_related("location", "card")
        .prefetch_related(
            "lines",
            Prefetch("earnings", queryset=_earnings_queryset()),
            "awards",
        )
    )


def _earnings_queryset():
    from ..models import PurchaseEarning

    return PurchaseEarning.objects.select_related("currency", "transaction").order_by("currency_id")


def purchase_get(*, program: Program, reference: str) -> Purchase:
    try:
        return purchase_list(program=program).get(reference=reference)
    except Purchase.DoesNotExist:
        raise PurchaseNotFoundError(f"No purchase '{reference}' in this program.") from None


def refund_list(*, purchase: Purchase) -> QuerySet[Refund]:
    return (
        Refund.objects.filter(purchase=purchase)
        .select_related("purchase")
        .prefetch_related("lines__line", "earnings__currency")
    )


def campaign_points_issued(*, campaign_ids: Iterable[int]) -> dict[int, int]:
    """Points each campaign has given so far (from the purchase breakdowns; one query)."""
    rows = (
        PointsAward.objects.filter(campaign_id__in=list(campaign_ids))
        .values("campaign_id")
        .annotate(points=Sum("points"))
        .order_by()
    )
    return {row["campaign_id"]: row["points"] for row in rows}


def rule_points_issued(*, rule_ids: Iterable[int]) -> dict[int, int]:
    rows = (
        PointsAward.objects.filter(rule_id__in=list(rule_ids))
        .values("rule_id")
        .annotate(points=Sum("points"))
        .order_by()
    )
    return {row["rule_id"]: row["points"] for row in rows}


def referral_summary(*, member: Member, code: str) -> dict[str, Any]:
    """The member's referral code, who referred them and how many they referred."""
    from ..models import Referral

    referred_by = Referral.objects.select_related("referrer").filter(referee_id=member.pk).first()
    counts = dict(
        Referral.objects.filter(referrer_id=member.pk)
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("status", "n")
    )
    return {
        "member_id": member.pk,
        "code": code,
        "referred_by": (
            {
                "member_id": referred_by.referrer_id,
                "number": referred_by.referrer.number,
                "code": referred_by.code,
                "status": referred_by.status,
            }
            if referred_by
            else None
        ),
        "referrals": {
            "pending": counts.get(Referral.Status.PENDING, 0),
            "completed": counts.get(Referral.Status.COMPLETED, 0),
        },
    }


def _money(value: Decimal, currency: str) -> str:
    return str(value.quantize(money_quantum(currency)))


def export_section(*, member: Member) -> tuple[str, dict[str, Any]]:
    """The ``members.hooks.export_sections`` receiver: the member's purchases (with lines),
    refunds, bonuses and referral (GDPR right of access)."""
    from ..models import BonusAward, Referral, ReferralCode

    purchases = (
        Purchase.objects.filter(member_id=member.pk)
        .select_related("location")
        .prefetch_related("lines")
        .order_by("id")
    )
    code = ReferralCode.objects.filter(member_id=member.pk).values_list("code", flat=True).first()
    referral = Referral.objects.filter(referee_id=member.pk).select_related("referrer").first()
    return "earning", {
        "purchases": [
            {
                "reference": purchase.reference,
                "location": purchase.location.code if purchase.location else None,
                "occurred_at": purchase.occurred_at,
                "currency": purchase.currency,
                "total": _money(purchase.total, purchase.currency),
                "points": purchase.points,
                "refunded_amount": _money(purchase.refunded_amount, purchase.currency),
                "lines": [
                    {
                        "sku": line.sku,
                        "quantity": format(line.quantity.normalize(), "f"),
                        "amount": _money(line.amount, purchase.currency),
                    }
                    for line in purchase.lines.all()
                ],
            }
            for purchase in purchases
        ],
        "refunds": [
            {**row, "amount": _money(row["amount"], member.program.currency)}
            for row in Refund.objects.filter(member_id=member.pk)
            .order_by("id")
            .values("reference", "purchase__reference", "occurred_at", "amount")
        ],
        "bonuses": list(
            BonusAward.objects.filter(member_id=member.pk)
            .order_by("id")
            .values("kind", "key", "points", "awarded_at")
        ),
        "referral_code": code,
        "referred_by": referral.referrer.number if referral else None,
    }
