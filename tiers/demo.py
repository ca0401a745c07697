"""Demo tiers: Bronze (default), Silver and Gold on a rolling 12-month window. Safe to
re-run: only missing tiers are created; members without a tier get Bronze."""

from __future__ import annotations

from decimal import Decimal

from membership_site.actors import Actor
from programs.models import Program

from . import services
from .models import Tier

DEMO_TIERS = [
    {
        "code": "bronze",
        "name": "Bronze",
        "rank": 10,
        "is_default": True,
        "perks": "Member prices on selected items.",
    },
    {
        "code": "silver",
        "name": "Silver",
        "rank": 20,
        "qualify_spend": Decimal("200"),
        "qualify_visits": 10,
        "retain_spend": Decimal("150"),
        "retain_visits": 8,
        "grace_months": 3,
        "earn_multiplier": Decimal("1.25"),
        "discount_percent": Decimal("5"),
        "perks": "A free coffee on your birthday.",
    },
    {
        "code": "gold",
        "name": "Gold",
        "rank": 30,
        "qualify_spend": Decimal("1000"),
        "retain_spend": Decimal("800"),
        "grace_months": 3,
        "earn_multiplier": Decimal("1.5"),
        "discount_percent": Decimal("10"),
        "perks": "Free delivery and priority support.",
        "reward_tags": ["gold"],
    },
]


def load(*, program: Program, actor: Actor) -> None:
    existing = set(Tier.objects.filter(program=program).values_list("code", flat=True))
    for spec in DEMO_TIERS:
        if spec["code"] not in existing:
            services.tier_create(program=program, actor=actor, **spec)
    services.member_tiers_fill_missing(program=program, actor=actor)
