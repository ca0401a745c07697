"""Demo earning data for the demo program: earning settings (a 14-day return window and
event bonuses), a base rule of 1 point per EUR, a double-points campaign on coffee with a
budget, and a few purchases (one refunded in part). Safe to re-run: settings are set to the
same values, rules and campaigns are created once, and the purchase and refund references
make each happen once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from members.models import Member
from membership_site.actors import Actor
from programs.models import Location, Program

from ..models import Campaign, EarningRule
from . import config, purchases
from .basket import LineInput

D = Decimal


def load(*, program: Program, actor: Actor) -> None:
    config.earning_settings_update(
        program=program,
        actor=actor,
        return_window_days=14,
        enrolment_bonus=100,
        birthday_bonus=200,
        referral_referrer_bonus=300,
        referral_referee_bonus=150,
        profile_completion_bonus=50,
        profile_completion_fields=["phone", "birth_date"],
    )
    if not EarningRule.objects.filter(program=program, code="base").exists():
        config.earning_rule_create(
            program=program, code="base", name="1 point per euro", value=D(1), actor=actor
        )
    if not Campaign.objects.filter(program=program, code="coffee-double").exists():
        config.campaign_create(
            program=program,
            code="coffee-double",
            name="Double points on coffee",
            effect="multiplier",
            value=D(2),
            categories=["coffee"],
            priority=10,
            budget_points=50_000,
            max_points_per_member_day=500,
            actor=actor,
        )
    members = list(
        Member.objects.filter(program=program, status=Member.Status.ACTIVE)
        .select_related("program")
        .order_by("pk")
    )[:3]
    location = Location.objects.filter(program=program, code="paris-01").first()
    now = timezone.now()
    for index, member in enumerate(members):
        result = purchases.purchase_record(
            program=program,
            member=member,
            reference=f"demo-receipt-{member.number}",
            location=location,
            occurred_at=now - timedelta(days=3 + index),
            tax=D("2.10"),
            lines=[
                LineInput(sku="BEANS-250", category="coffee", quantity=D(2), unit_price=D("8.90")),
                LineInput(sku="MUG", category="kitchen", unit_price=D("12.50"), discount=D("2.50")),
                LineInput(sku="GIFT-25", category="gift", unit_price=D("25.00"), gift_card=True),
            ],
            actor=actor,
        )
        if index == 0:
            purchases.refund_record(
                purchase=result.purchase,
                reference=f"demo-refund-{member.number}",
                lines=[(2, None)],
                reason="Mug returned",
                actor=actor,
            )
