"""Reads for tiers: definitions, a member's tier and benefits, progress and history.

For the apps above: ``member_benefits`` (one member) and ``members_benefits`` (a list, in
two queries) give the earn multiplier for the earning rules and the discount and reward
eligibility for the rewards code. They read the current transaction's state, so right after
``tiers.services.activity_record`` upgraded a member they return the new tier's benefits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from members.errors import MemberNotFoundError
from members.models import Member
from programs.currencies import money_quantum
from programs.models import Program

from . import rules
from .errors import TierNotFoundError, UnknownTierError
from .models import MemberTier, Tier, TierActivity, TierChange, TierEvaluation, TierSettings
from .rules import local_today

HISTORY_IN_PROGRESS = 20


# --- Definitions ------------------------------------------------------------------------


def tier_list(*, program: Program) -> QuerySet[Tier]:
    return Tier.objects.filter(program=program).select_related("program").order_by("rank")


def tier_get(*, program: Program, code: str) -> Tier:
    try:
        return tier_list(program=program).get(code=code)
    except Tier.DoesNotExist:
        raise TierNotFoundError(f"No tier '{code}' in this program.") from None


def tier_for_assignment(*, program: Program, code: str) -> Tier:
    """A tier named in a request body: an unknown code is a 400 on the ``tier`` field."""
    try:
        return Tier.objects.get(program=program, code=code)
    except Tier.DoesNotExist:
        raise UnknownTierError(f"No tier '{code}' in this program.", field="tier") from None


def member_for_tiers(*, program: Program, member_id: int | str) -> Member:
    """A member of ``program`` (404 for other programs' members)."""
    try:
        return Member.objects.select_related("program").get(program=program, pk=int(member_id))
    except (Member.DoesNotExist, ValueError, TypeError):
        raise MemberNotFoundError(f"No member {member_id} in this program.") from None


def tier_settings_get(*, program: Program) -> TierSettings:
    """The program's tier settings (the defaults, unsaved, when never changed)."""
    return TierSettings.objects.filter(program=program).first() or TierSettings(program=program)


def adjustments_qualify(*, program_id: int) -> bool:
    """Whether the program counts manual points adjustments as qualifying activity."""
    return bool(
        TierSettings.objects.filter(program_id=program_id)
        .values_list("adjustments_qualify", flat=True)
        .first()
    )


def default_tier(*, program_id: int) -> Tier | None:
    return Tier.objects.filter(program_id=program_id, is_default=True).first()


# --- A member's tier and benefits -------------------------------------------------------


@dataclass(frozen=True)
class TierBenefits:
    """What a member's tier gives. Members of a program without tiers get ``NO_TIER``."""

    tier_code: str | None
    tier_name: str
    rank: int | None
    earn_multiplier: Decimal
    discount_percent: Decimal
    perks: str
    rewards_eligible: bool
    reward_tags: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, tier: Tier | None) -> TierBenefits:
        if tier is None:
            return NO_TIER
        return cls(
            tier_code=tier.code,
            tier_name=tier.name,
            rank=tier.rank,
            earn_multiplier=tier.earn_multiplier,
            discount_percent=tier.discount_percent,
            perks=tier.perks,
            rewards_eligible=tier.rewards_eligible,
            reward_tags=tuple(tier.reward_tags or ()),
        )

    def allows_reward(self, required_tags: Iterable[str] = ()) -> bool:
        """Whether a reward restricted to ``required_tags`` (any one of them; none = open to
        all) may be redeemed. A reward may also compare ``rank`` to a minimum."""
        required = set(required_tags)
        return self.rewards_eligible and (not required or bool(required & set(self.reward_tags)))


NO_TIER = TierBenefits(
    tier_code=None,
    tier_name="",
    rank=None,
    earn_multiplier=Decimal("1"),
    discount_percent=Decimal("0"),
    perks="",
    rewards_eligible=True,
)


def member_tier_state(*, member: Member) -> MemberTier | None:
    return MemberTier.objects.select_related("tier", "lifetime_tier").filter(member_id=member.pk).first()


def member_tier(*, member: Member) -> Tier | None:
    """The member's current tier: the default tier until the member has a tier row; None
    when the program has no tiers. One or two queries."""
    state = MemberTier.objects.select_related("tier").filter(member_id=member.pk).first()
    return state.tier if state is not None else default_tier(program_id=member.program_id)


def member_benefits(*, member: Member) -> TierBenefits:
    """The member's tier benefits (``earn_multiplier`` for the earning rules,
    ``discount_percent`` and ``allows_reward`` for rewards)."""
    return TierBenefits.of(member_tier(member=member))


def _tiers_of(members: Sequence[Member]) -> dict[int, Tier | None]:
    """member id -> current tier (or the program default), in at most two queries."""
    ids = [member.pk for member in members]
    states = {
        state.member_id: state.tier
        for state in MemberTier.objects.select_related("tier").filter(member_id__in=ids)
    }
    without = {member.program_id for member in members if member.pk not in states}
    defaults = (
        {tier.program_id: tier for tier in Tier.objects.filter(program_id__in=without, is_default=True)}
        if without
        else {}
    )
    return {member.pk: states.get(member.pk) or defaults.get(member.program_id) for member in members}


def members_benefits(*, members: Sequence[Member]) -> dict[int, TierBenefits]:
    """Benefits of many members at once (member id -> benefits), in at most two queries."""
    return {member_id: TierBenefits.of(tier) for member_id, tier in _tiers_of(members).items()}


def profile_section(*, members: Sequence[Member]) -> tuple[str, dict[int, Any]]:
    """The ``tier`` section of the till lookup's compact profile (``profile_sections``
    hook): at most three queries for the whole list."""
    if not members:
        return "tier", {}
    ids = [member.pk for member in members]
    states = {
        state.member_id: state
        for state in MemberTier.objects.select_related("tier").filter(member_id__in=ids)
    }
    tiers = (
        _tiers_of([member for member in members if member.pk not in states]) if len(states) < len(ids) else {}
    )
    section: dict[int, Any] = {}
    for member in members:
        state = states.get(member.pk)
        tier = state.tier if state else tiers.get(member.pk)
        section[member.pk] = (
            None
            if tier is None
            else {
                "code": tier.code,
                "name": tier.name,
                "rank": tier.rank,
                "since": state.since if state else None,
                "grace_until": state.grace_until if state else None,
                "earn_multiplier": str(tier.earn_multiplier),
                "discount_percent": str(tier.discount_percent),
            }
        )
    return "tier", section


def export_section(*, member: Member) -> tuple[str, dict[str, Any]]:
    """What the tiers app holds about a member, for the GDPR export (``export_sections``
    hook): the tier state, the whole tier history and the qualifying activity."""
    state = member_tier_state(member=member)
    quantum = money_quantum(member.program.currency)
    return "tiers", {
        "tier": state.tier.code if state else None,
        "since": state.since if state else None,
        "grace_until": state.grace_until if state else None,
        "locked_until": state.locked_until if state else None,
        "lifetime_tier": state.lifetime_tier.code if state and state.lifetime_tier else None,
        "history": list(
            tier_history(member=member)
            .order_by("at", "id")
            .values("reason", "from_tier__code", "to_tier__code", "note", "grace_until", "effective_on", "at")
        ),
        "activity": [
            # Money as a string with the currency's decimals (JSON numbers would be floats).
            {**row, "spend": str(row["spend"].quantize(quantum))}
            for row in member_activity(member=member)
            .order_by("id")
            .values("occurred_at", "source", "reference", "spend", "points", "visits")
        ],
    }


# --- Progress ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TierStanding:
    """A member's activity measured against one tier's thresholds in that tier's window."""

    tier: Tier
    window: rules.WindowKey
    bounds: rules.WindowBounds
    metrics: rules.WindowMetrics
    thresholds: rules.Thresholds
    met: bool
    remaining: dict[str, Any]


@dataclass(frozen=True)
class TierProgress:
    member_id: int
    tier: Tier | None
    since: datetime | None
    grace_until: date | None
    locked_until: date | None
    lifetime_tier: Tier | None
    as_of: datetime
    keep: TierStanding | None  # retention of the current tier; None when nothing can be lost
    next: TierStanding | None  # the next tier reachable by activity; None at the top
    history: list[TierChange]


def _standing(
    tier: Tier, thresholds: rules.Thresholds, metrics, joined_on: date, today: date
) -> TierStanding:
    key = rules.WindowKey.of(tier)
    window_metrics = metrics.get(key, rules.EMPTY_WINDOW)
    met = any(thresholds.met_by(m) for m in window_metrics.sets())
    remaining = thresholds.remaining(window_metrics.current)
    if met:
        remaining = {name: (None if value is None else type(value)(0)) for name, value in remaining.items()}
    return TierStanding(
        tier=tier,
        window=key,
        bounds=rules.window_bounds(key, on=today, joined_on=joined_on),
        metrics=window_metrics,
        thresholds=thresholds,
        met=met,
        remaining=remaining,
    )


def member_tier_progress(*, member: Member) -> TierProgress:
    """Where the member stands now (activity recorded so far counts): the current tier and
    what keeps it, the next tier and what it needs, and the latest history."""
    program = member.program
    state = member_tier_state(member=member)
    tiers = list(Tier.objects.filter(program=program).order_by("rank"))
    current = state.tier if state else next((tier for tier in tiers if tier.is_default), None)
    history = list(tier_history(member=member)[:HISTORY_IN_PROGRESS])
    now = timezone.now()
    if current is None:
        return TierProgress(member.pk, None, None, None, None, None, now, None, None, history)
    ladder = rules.Ladder.of(tiers)
    today = local_today(program)
    metrics = rules.window_metrics(
        TierActivity.objects.filter(member_id=member.pk),
        ladder.windows,
        on=today,
        live=True,
        tz=program.tz,
        adjustments_qualify=adjustments_qualify(program_id=program.pk),
    ).get(member.pk, {})
    joined_on = member.joined_at.astimezone(program.tz).date()
    current_rule = ladder.by_id[current.pk]
    keep = (
        None
        if current_rule.retention.is_empty
        else _standing(current, current_rule.retention, metrics, joined_on, today)
    )
    above = [tier for tier in tiers if tier.rank > current.rank and ladder.by_id[tier.pk].reachable]
    upcoming = (
        _standing(above[0], ladder.by_id[above[0].pk].entry, metrics, joined_on, today) if above else None
    )
    return TierProgress(
        member_id=member.pk,
        tier=current,
        since=state.since if state else None,
        grace_until=state.grace_until if state else None,
        locked_until=state.locked_until if state else None,
        lifetime_tier=state.lifetime_tier if state else None,
        as_of=now,
        keep=keep,
        next=upcoming,
        history=history,
    )


# --- History, activity and evaluation runs ----------------------------------------------


def tier_history(*, member: Member) -> QuerySet[TierChange]:
    return (
        TierChange.objects.filter(member_id=member.pk)
        .select_related("from_tier", "to_tier")
        .order_by("-at", "-id")
    )


def member_activity(*, member: Member) -> QuerySet[TierActivity]:
    return TierActivity.objects.filter(member_id=member.pk).order_by("-id")


def evaluation_due(*, program: Program, on: date) -> bool:
    """Whether ``program`` has no finished evaluation for day ``on`` yet."""
    return not TierEvaluation.objects.filter(
        program=program, as_of=on, status=TierEvaluation.Status.FINISHED
    ).exists()
