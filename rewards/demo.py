"""Demo rewards: vouchers, a free coffee for Silver and Gold, a breakfast unlocked by the
Gold tier's reward tag, a mug to ship (limited stock) and a pay-with-points rule. Safe to
re-run: only missing rewards are created."""

from __future__ import annotations

from decimal import Decimal

from membership_site.actors import Actor
from points.models import Currency
from programs.models import Location, Program
from tiers.models import Tier

from . import payments, services
from .models import PayWithPointsRule, Reward

K = Reward.Kind


def load(*, program: Program, actor: Actor) -> None:
    pts = Currency.objects.select_related("program").filter(program=program, is_default=True).first()
    if pts is None:
        return
    tiers = {tier.code: tier for tier in Tier.objects.filter(program=program, code__in=["silver", "gold"])}
    stores = list(Location.objects.filter(program=program, kind=Location.Kind.STORE))
    specs = [
        {
            "code": "voucher-5",
            "name": "5 EUR off your next purchase",
            "kind": K.AMOUNT_VOUCHER,
            "costs": {pts: 500},
            "voucher_amount": Decimal("5.00"),
            "voucher_min_spend": Decimal("15.00"),
        },
        {
            "code": "percent-10",
            "name": "10% off one purchase",
            "kind": K.PERCENT_VOUCHER,
            "costs": {pts: 800},
            "voucher_percent": Decimal("10"),
            "limit_per_period": 1,
            "limit_period": Reward.Period.MONTH,
        },
        {
            "code": "free-coffee",
            "name": "A free coffee",
            "kind": K.FREE_ITEM,
            "costs": {pts: 300},
            "sku": "COFFEE-REG",
            "eligible_tiers": list(tiers.values()),
            "locations": stores,
        },
        {
            # Unlocked by the tiers' reward tags: the demo Gold tier lists "gold".
            "code": "gold-breakfast",
            "name": "Breakfast for two (Gold)",
            "kind": K.FREE_ITEM,
            "costs": {pts: 1200},
            "sku": "BREAKFAST-2",
            "tier_tags": ["gold"],
            "limit_per_period": 1,
            "limit_period": Reward.Period.MONTH,
        },
        {
            "code": "mug",
            "name": "Demo Coffee Co. mug",
            "kind": K.PHYSICAL,
            "costs": {pts: 1500},
            "stock": 25,
            "limit_total": 1,
        },
    ]
    existing = set(Reward.objects.filter(program=program).values_list("code", flat=True))
    for spec in specs:
        if spec["code"] not in existing:
            services.reward_create(program=program, actor=actor, **spec)
    if not PayWithPointsRule.objects.filter(currency=pts).exists():
        payments.pay_rule_save(
            currency=pts,
            minimum_points=100,
            step=100,
            max_share_percent=Decimal("50"),
            minimum_bill=Decimal("5"),
            actor=actor,
        )
