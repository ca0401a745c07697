"""Reads for rewards: the catalog, what a member can get now (and why not), redemptions,
vouchers and their validation, member pricing, the GDPR export section.

``member_catalog`` decides availability for a whole catalog in a fixed number of queries:
the member's tier (tiers selectors), labels and balances are read once, and one query over
the rewards annotates, per reward, the facts the rules need (tier and label match, stock,
the member's redemptions in total and in the current period, whether any cost is
affordable). ``reward_reasons`` turns those facts into reasons; ``AVAILABLE`` is the same
rules as a filter, for the default (available only) list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import (
    Case,
    Count,
    DateTimeField,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from members.errors import MemberNotFoundError
from members.models import Member, MemberLabel
from points.models import Account
from programs.currencies import money_quantum
from programs.models import Program
from tiers.selectors import TierBenefits, member_benefits

from .codes import format_code, is_well_formed, normalize_code
from .errors import RedemptionNotFoundError, RewardNotFoundError, VoucherNotFoundError
from .models import PricingException, Redemption, Reward, RewardCost, Voucher

# The reasons a reward is greyed out for a member, in the order they are reported.
REASONS = (
    "member_not_active",
    "member_suspended",
    "member_terminated",
    "inactive",
    "not_yet_valid",
    "expired",
    "not_eligible_tier",
    "not_eligible_label",
    "out_of_stock",
    "limit_reached",
    "insufficient_points",
)


# A member who may not spend points (``points.services.check_member``) can redeem nothing:
# every reward is greyed out with the reason of the member's status.
MEMBER_STATUS_REASONS = {
    Member.Status.PENDING: "member_not_active",
    Member.Status.SUSPENDED: "member_suspended",
    Member.Status.TERMINATED: "member_terminated",
}


# --- Catalog --------------------------------------------------------------------------------


def _catalog_prefetches(queryset: QuerySet[Reward]) -> QuerySet[Reward]:
    return queryset.select_related("program", "target_currency").prefetch_related(
        Prefetch("costs", queryset=RewardCost.objects.select_related("currency").order_by("currency__code")),
        "eligible_tiers",
        "eligible_labels",
        "locations",
    )


def reward_list(*, program: Program) -> QuerySet[Reward]:
    return _catalog_prefetches(Reward.objects.filter(program=program))


def reward_get(*, program: Program, code: str) -> Reward:
    try:
        return reward_list(program=program).get(code=code)
    except Reward.DoesNotExist:
        raise RewardNotFoundError(f"No reward '{code}' in this program.") from None


def member_for_rewards(*, program: Program, member_id: int | str) -> Member:
    try:
        return Member.objects.select_related("program").get(program=program, pk=int(member_id))
    except (Member.DoesNotExist, ValueError, TypeError):
        raise MemberNotFoundError(f"No member {member_id} in this program.") from None


def period_starts(program: Program, now: datetime) -> dict[str, datetime]:
    """The start (UTC) of the current day, week (Monday), month and year in the program's
    time zone: the windows of the per-period member limits."""
    today = now.astimezone(program.tz).date()

    def start(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=program.tz).astimezone(UTC)

    return {
        Reward.Period.DAY: start(today),
        Reward.Period.WEEK: start(today - timedelta(days=today.weekday())),
        Reward.Period.MONTH: start(today.replace(day=1)),
        Reward.Period.YEAR: start(today.replace(month=1, day=1)),
    }


@dataclass(frozen=True)
class MemberContext:
    """What availability depends on, about the member, read once per request."""

    member: Member
    benefits: TierBenefits
    label_ids: frozenset[int]
    balances: dict[int, int]  # currency id -> available points
    now: datetime
    period_starts: dict[str, datetime] = field(default_factory=dict)


def member_context(*, member: Member, now: datetime | None = None) -> MemberContext:
    """Three to four queries: the tier (one or two), the labels, the balances."""
    now = now or timezone.now()
    return MemberContext(
        member=member,
        benefits=member_benefits(member=member),
        label_ids=frozenset(MemberLabel.objects.filter(member=member).values_list("label_id", flat=True)),
        balances=dict(
            Account.objects.filter(member=member, currency__is_active=True).values_list(
                "currency_id", "available"
            )
        ),
        now=now,
        period_starts=period_starts(member.program, now),
    )


def _annotate_for_member(queryset: QuerySet[Reward], ctx: MemberContext) -> QuerySet[Reward]:
    member = ctx.member
    tiers_through = Reward.eligible_tiers.through.objects.filter(reward_id=OuterRef("pk"))
    labels_through = Reward.eligible_labels.through.objects.filter(reward_id=OuterRef("pk"))
    tier_code = ctx.benefits.tier_code
    affordable = Q(pk__in=[])
    for currency_id, available in ctx.balances.items():
        affordable |= Q(currency_id=currency_id, points__lte=available)
    mine = Redemption.objects.filter(
        reward_id=OuterRef("pk"), member_id=member.pk, status=Redemption.Status.COMPLETED
    )

    def count(queryset):
        return Coalesce(
            Subquery(queryset.values("reward_id").annotate(n=Count("pk")).values("n")[:1]),
            0,
            output_field=IntegerField(),
        )

    period_start = Case(
        *[When(limit_period=period, then=Value(start)) for period, start in ctx.period_starts.items()],
        default=Value(None),
        output_field=DateTimeField(),
    )
    return queryset.annotate(
        has_tiers=Exists(tiers_through),
        in_tiers=Exists(tiers_through.filter(tier__code=tier_code)) if tier_code else Value(False),
        has_labels=Exists(labels_through),
        in_labels=Exists(labels_through.filter(label_id__in=list(ctx.label_ids)))
        if ctx.label_ids
        else Value(False),
        affordable=Exists(
            RewardCost.objects.filter(reward_id=OuterRef("pk"), currency__is_active=True).filter(affordable)
        ),
        period_start=period_start,
        used_total=count(mine),
        used_in_period=count(mine.filter(redeemed_at__gte=OuterRef("period_start"))),
    )


def _tag_blocked(ctx: MemberContext) -> list[int]:
    """The program's rewards restricted to tier tags that the member's tier does not
    unlock (one query; catalogs hold few tagged rewards). Tags are a JSON list, and JSON
    containment is not portable to SQLite (``make run``), hence ids."""
    tagged = (
        Reward.objects.filter(program_id=ctx.member.program_id)
        .exclude(tier_tags=[])
        .values_list("pk", "tier_tags")
    )
    return [pk for pk, tags in tagged if not ctx.benefits.allows_reward(tags)]


def _available(ctx: MemberContext, tag_blocked: list[int]) -> Q:
    """The rules of ``reward_reasons`` as a filter on the annotated catalog."""
    now = ctx.now
    if ctx.member.status in MEMBER_STATUS_REASONS:
        return Q(pk__in=[])
    tier_ok = Q(has_tiers=False) | Q(in_tiers=True) if ctx.benefits.rewards_eligible else Q(pk__in=[])
    if tag_blocked:
        tier_ok &= ~Q(pk__in=tag_blocked)
    return (
        Q(is_active=True)
        & (Q(valid_from__isnull=True) | Q(valid_from__lte=now))
        & (Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        & tier_ok
        & (Q(has_labels=False) | Q(in_labels=True))
        & (Q(stock__isnull=True) | Q(stock__gt=0))
        & (Q(limit_total__isnull=True) | Q(used_total__lt=F("limit_total")))
        & (Q(limit_per_period__isnull=True) | Q(used_in_period__lt=F("limit_per_period")))
        & Q(affordable=True)
    )


def member_catalog(
    *, member: Member, ctx: MemberContext | None = None, include_unavailable: bool = False
) -> QuerySet[Reward]:
    """The program's rewards annotated for ``member`` (see ``reward_reasons``): by default
    only those the member can redeem now."""
    ctx = ctx or member_context(member=member)
    queryset = _annotate_for_member(
        _catalog_prefetches(Reward.objects.filter(program_id=member.program_id)), ctx
    )
    if not include_unavailable:
        queryset = queryset.filter(_available(ctx, _tag_blocked(ctx)))
    return queryset


def reward_reasons(reward: Reward, ctx: MemberContext) -> list[str]:
    """Why ``member`` cannot redeem ``reward`` now (empty: it can). ``reward`` comes from
    ``member_catalog`` (the annotations); no query."""
    now = ctx.now
    reasons = []
    if ctx.member.status in MEMBER_STATUS_REASONS:
        reasons.append(MEMBER_STATUS_REASONS[ctx.member.status])
    if not reward.is_active:
        reasons.append("inactive")
    if reward.valid_from is not None and reward.valid_from > now:
        reasons.append("not_yet_valid")
    if reward.valid_until is not None and reward.valid_until <= now:
        reasons.append("expired")
    if not ctx.benefits.allows_reward(reward.tier_tags) or (reward.has_tiers and not reward.in_tiers):
        reasons.append("not_eligible_tier")
    if reward.has_labels and not reward.in_labels:
        reasons.append("not_eligible_label")
    if reward.stock is not None and reward.stock <= 0:
        reasons.append("out_of_stock")
    if (reward.limit_total is not None and reward.used_total >= reward.limit_total) or (
        reward.limit_per_period is not None and reward.used_in_period >= reward.limit_per_period
    ):
        reasons.append("limit_reached")
    if not reward.affordable:
        reasons.append("insufficient_points")
    return reasons


def reward_for_member(*, reward: Reward, ctx: MemberContext) -> Reward:
    """One reward, annotated for the member, with its costs and locations (what the redeem
    service needs, nothing more: it is on the hot path)."""
    queryset = Reward.objects.filter(pk=reward.pk).select_related("program", "target_currency")
    queryset = queryset.prefetch_related(
        Prefetch("costs", queryset=RewardCost.objects.select_related("currency").order_by("currency__code")),
        "locations",
    )
    return _annotate_for_member(queryset, ctx).get()


# --- Redemptions ------------------------------------------------------------------------------


def redemption_list(*, program: Program) -> QuerySet[Redemption]:
    return Redemption.objects.filter(program=program).select_related(
        "reward", "currency", "location", "voucher", "shipment"
    )


def member_redemptions(*, member: Member) -> QuerySet[Redemption]:
    return redemption_list(program=member.program).filter(member=member)


def redemption_get(*, program: Program, redemption_id: int | str) -> Redemption:
    try:
        return redemption_list(program=program).get(pk=int(redemption_id))
    except (Redemption.DoesNotExist, ValueError, TypeError):
        raise RedemptionNotFoundError(f"No redemption {redemption_id} in this program.") from None


# --- Vouchers ------------------------------------------------------------------------------------


def voucher_list(*, program: Program) -> QuerySet[Voucher]:
    return Voucher.objects.filter(program=program).prefetch_related("locations")


def member_vouchers(*, member: Member) -> QuerySet[Voucher]:
    return voucher_list(program=member.program).filter(member=member)


def voucher_get(*, program: Program, code: str) -> Voucher:
    """By code as a person types it (any case, spaces or dashes); a code whose check
    character does not match is not looked up."""
    normalized = normalize_code(code)
    if is_well_formed(normalized):
        voucher = voucher_list(program=program).filter(code=normalized).first()
        if voucher is not None:
            return voucher
    raise VoucherNotFoundError(f"No voucher '{code}' in this program.")


@dataclass(frozen=True)
class BasketInput:
    """What a till knows about the purchase (each optional for a validation)."""

    amount: Decimal | None = None
    location_code: str | None = None
    skus: tuple[str, ...] | None = None
    member_id: int | None = None


@dataclass(frozen=True)
class VoucherCheck:
    usable: bool
    reasons: list[str]
    unchecked: list[str]


def voucher_check(*, voucher: Voucher, basket: BasketInput, now: datetime | None = None) -> VoucherCheck:
    """Whether ``voucher`` can be used for ``basket`` now. Conditions whose basket value is
    not given are listed in ``unchecked`` (the use service requires them)."""
    now = now or timezone.now()
    reasons: list[str] = []
    unchecked: list[str] = []
    if voucher.status == Voucher.Status.USED:
        reasons.append("used")
    elif voucher.status == Voucher.Status.CANCELLED:
        reasons.append("cancelled")
    elif voucher.status == Voucher.Status.EXPIRED or (
        voucher.valid_until is not None and voucher.valid_until <= now
    ):
        reasons.append("expired")
    if (
        basket.member_id is not None
        and voucher.member_id is not None
        and voucher.member_id != basket.member_id
    ):
        reasons.append("other_member")
    if voucher.min_spend is not None:
        if basket.amount is None:
            unchecked.append("amount")
        elif basket.amount < voucher.min_spend:
            reasons.append("below_min_spend")
    location_codes = {location.code for location in voucher.locations.all()}
    if location_codes:
        if not basket.location_code:
            unchecked.append("location")
        elif basket.location_code not in location_codes:
            reasons.append("location_not_allowed")
    needed = set(voucher.skus) | ({voucher.sku} if voucher.sku else set())
    if needed:
        if basket.skus is None:
            unchecked.append("skus")
        else:
            in_basket = set(basket.skus)
            if (voucher.sku and voucher.sku not in in_basket) or (
                voucher.skus and not set(voucher.skus) & in_basket
            ):
                reasons.append("sku_not_in_basket")
    return VoucherCheck(usable=not reasons, reasons=reasons, unchecked=unchecked)


# --- Member pricing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceLine:
    sku: str
    category: str
    quantity: int
    unit_price: Decimal


def member_pricing(*, member: Member, lines: list[PriceLine]) -> dict[str, Any]:
    """The member's tier discount per line: a SKU exception of the tier, else a category
    exception, else the tier's ``discount_percent``. The discount is computed on the line
    total (unit price x quantity) and rounded half-up to the money currency's minor unit,
    once per line. Three queries whatever the number of lines."""
    benefits = member_benefits(member=member)
    money = member.program.currency
    quantum = money_quantum(money)
    sku_rules: dict[str, PricingException] = {}
    category_rules: dict[str, PricingException] = {}
    if benefits.tier_code is not None:
        skus = {line.sku for line in lines if line.sku}
        categories = {line.category for line in lines if line.category}
        exceptions = PricingException.objects.filter(
            program_id=member.program_id, tier__code=benefits.tier_code
        ).filter(Q(sku__in=skus) | Q(category__in=categories))
        for exception in exceptions:
            (sku_rules if exception.sku else category_rules)[exception.sku or exception.category] = exception
    out = []
    totals = {"gross": Decimal(0), "discount": Decimal(0), "net": Decimal(0)}
    for line in lines:
        rule = sku_rules.get(line.sku) or category_rules.get(line.category)
        if rule is None:
            percent, source = benefits.discount_percent, "tier"
        elif rule.excluded:
            percent, source = Decimal(0), "excluded"
        else:
            percent, source = rule.percent, "sku" if rule.sku else "category"
        gross = (line.unit_price * line.quantity).quantize(quantum, rounding=ROUND_HALF_UP)
        discount = (gross * percent / 100).quantize(quantum, rounding=ROUND_HALF_UP)
        out.append(
            {
                "sku": line.sku,
                "category": line.category,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "gross": gross,
                "discount_percent": percent,
                "discount": discount,
                "net": gross - discount,
                "source": source,
            }
        )
        totals["gross"] += gross
        totals["discount"] += discount
        totals["net"] += gross - discount
    return {
        "member_id": member.pk,
        "tier": benefits.tier_code,
        "currency": money,
        "lines": out,
        **{name: value.quantize(quantum) for name, value in totals.items()},
    }


# --- GDPR export ------------------------------------------------------------------------------


def export_section(*, member: Member) -> tuple[str, dict[str, Any]]:
    """The ``export_sections`` receiver: everything the rewards app holds about the member
    (redemptions with their shipping addresses, and the member's vouchers)."""
    redemptions = []
    for redemption in (
        Redemption.objects.filter(member=member)
        .select_related("reward", "currency", "shipment")
        .order_by("id")
    ):
        shipment = getattr(redemption, "shipment", None)
        redemptions.append(
            {
                "id": redemption.pk,
                "reward": redemption.reward.code,
                "currency": redemption.currency.code,
                "points": redemption.points,
                "status": redemption.status,
                "reference": redemption.reference,
                "redeemed_at": redemption.redeemed_at,
                "cancelled_at": redemption.cancelled_at,
                "shipment": None
                if shipment is None
                else {
                    "name": shipment.name,
                    "address_line1": shipment.address_line1,
                    "address_line2": shipment.address_line2,
                    "city": shipment.city,
                    "postal_code": shipment.postal_code,
                    "region": shipment.region,
                    "country": shipment.country,
                    "phone": shipment.phone,
                    "status": shipment.status,
                    "tracking": shipment.tracking,
                    "shipped_at": shipment.shipped_at,
                },
            }
        )
    vouchers = [
        {
            "code": format_code(voucher.code),
            "status": voucher.status,
            "value_kind": voucher.value_kind,
            "amount": None if voucher.amount is None else str(voucher.amount),
            "percent": None if voucher.percent is None else str(voucher.percent),
            "sku": voucher.sku,
            "valid_until": voucher.valid_until,
            "issued_at": voucher.issued_at,
            "used_at": voucher.used_at,
            "used_reference": voucher.used_reference,
        }
        for voucher in Voucher.objects.filter(member=member).order_by("id")
    ]
    return "rewards", {"redemptions": redemptions, "vouchers": vouchers}
