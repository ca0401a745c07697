""" "What would this rule have given?": a rule or campaign run against the program's recent
purchases, read-only (the admin's preview action).

Each purchase of the period is computed twice with today's other active rules and
campaigns of the same currency: with the previewed one (as if active and in its date range)
and without it; the difference is what it would have added. Members' tiers and labels are
taken as they are now, and whether a purchase was the member's first as recorded. The
per-purchase cap applies; per-member caps and budgets do not (they depend on the order the
points would have been issued in).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from members.models import Member, MemberLabel
from tiers.selectors import members_benefits

from ..models import Purchase, RuleBase
from . import compute
from .selectors import active_rules, rule_specs, spec_of


@dataclass(frozen=True)
class Preview:
    code: str
    name: str
    since: datetime
    until: datetime
    purchases: int  # purchases looked at
    applied: int  # purchases it would have changed
    members: int
    points: int  # points it would have added
    truncated: bool  # more purchases than the limit in the period: the latest were looked at


def rule_preview(*, rule: RuleBase, days: int = 30, now: datetime | None = None) -> Preview:
    """Run ``rule`` against the purchases of the last ``days`` days (see the module
    docstring); a fixed number of queries whatever the number of purchases."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    program = rule.program
    limit = settings.EARNING_PREVIEW_MAX_PURCHASES
    purchases = list(
        Purchase.objects.filter(program=program, occurred_at__gte=since, occurred_at__lte=now)
        .select_related("location")
        .prefetch_related("lines")
        .order_by("-occurred_at", "-id")[: limit + 1]
    )
    truncated = len(purchases) > limit
    purchases = purchases[:limit]
    rules, campaigns = active_rules(program=program, on=now.astimezone(program.tz).date())
    target = replace(spec_of(rule), starts_on=None, ends_on=None)
    others = [
        spec
        for spec in rule_specs([*rules, *campaigns])
        if spec.currency_id == rule.currency_id and spec.key != target.key
    ]
    member_ids = {purchase.member_id for purchase in purchases}
    members = list(Member.objects.filter(pk__in=member_ids).only("pk", "program_id"))
    benefits = members_benefits(members=members)
    labels: dict[int, set[str]] = {pk: set() for pk in member_ids}
    for member_id, code in MemberLabel.objects.filter(member_id__in=member_ids).values_list(
        "member_id", "label__code"
    ):
        labels[member_id].add(code)
    applied, added, touched = 0, 0, set()
    for purchase in purchases:
        basket = compute.Basket(
            when=purchase.occurred_at.astimezone(program.tz),
            location=purchase.location.code if purchase.location_id else None,
            lines=tuple(
                compute.Line(line.number, line.sku, line.category, line.quantity, line.amount, line.eligible)
                for line in purchase.lines.all()
            ),
        )
        benefit = benefits.get(purchase.member_id)
        facts = compute.MemberFacts(
            tier_code=benefit.tier_code if benefit else None,
            tier_name=benefit.tier_name if benefit else "",
            earn_multiplier=benefit.earn_multiplier if benefit else compute.ONE,
            labels=frozenset(labels.get(purchase.member_id, ())),
            first_purchase=purchase.first_purchase,
        )
        with_it = compute.compute(basket=basket, member=facts, rules=[*others, target])
        without = compute.compute(basket=basket, member=facts, rules=others)
        difference = with_it.points_in(rule.currency_id) - without.points_in(rule.currency_id)
        if difference:
            applied += 1
            added += difference
            touched.add(purchase.member_id)
    return Preview(
        code=rule.code,
        name=rule.name,
        since=since,
        until=now,
        purchases=len(purchases),
        applied=applied,
        members=len(touched),
        points=added,
        truncated=truncated,
    )
