"""Qualifying activity for tiers, and the lock order every earning write keeps.

Tiers never read the ledger: what counts towards a tier is recorded here, in the same
transaction as the ledger write, with ``tiers.services.activity_record``:

- an earn through the API (``points_earn_qualifying``): source ``earn``, the points
  (default currency only);
- a purchase: source ``purchase``, its eligible spend, its points (default currency) and
  one visit (``points.earning.purchases``);
- a refund: source ``refund``, negative spend and points, and minus one visit when it
  leaves nothing of the purchase;
- a reversal of an earn: source ``reversal``, negative points; of an adjustment: source
  ``adjustment``;
- a manual adjustment: source ``adjustment``, signed points (tiers counts them only when
  the program's ``adjustments_qualify`` setting says so).

Event bonuses (enrolment, birthday, referral, profile completion), transfers, redemptions
and rewards' point conversions are not qualifying activity.

**Lock order** (``points.services`` documents it for every writer): the members' tier rows
(in member id order), then their points accounts (in account id order), then campaign rows
(budgets), then the members' event counters (taken by the events, last). ``lock_members``
takes the first two at the start of the transaction: ``activity_record`` can then upgrade
a member and write ``tier.changed`` before or after the ledger write without ever waiting
for an account while holding an event counter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import transaction

from members.models import Member
from membership_site.actors import Actor
from programs.models import Location, Program
from tiers import services as tier_services
from tiers.models import MemberTier, TierActivity

from .. import services
from ..models import Account, Currency, PurchaseEarning, Transaction
from ..selectors import default_currency

Source = TierActivity.Source


def lock_members(
    members: Sequence[Member], currencies: Iterable[Currency], *, actor: Actor
) -> dict[tuple[int, int], Account]:
    """Lock the members' tier rows, then their accounts in ``currencies`` (created on first
    use); returns the accounts by (member id, currency id). Members of a program with tiers
    who have no tier row yet get the default tier first (as ``activity_record`` would)."""
    by_id = {member.pk: member for member in members}
    ids = sorted(by_id)
    locked = set(
        MemberTier.objects.select_for_update()
        .filter(member_id__in=ids)
        .order_by("member_id")
        .values_list("member_id", flat=True)
    )
    missing = [by_id[pk] for pk in ids if pk not in locked and by_id[pk].status != Member.Status.TERMINATED]
    if missing and tier_services.members_assign_default(members=missing, actor=actor):
        list(
            MemberTier.objects.select_for_update()
            .filter(member_id__in=[m.pk for m in missing])
            .order_by("member_id")
            .values_list("member_id", flat=True)
        )
    currencies = {currency.pk: currency for currency in currencies}
    if not currencies:
        return {}
    # Lock first: the accounts usually exist, so one query serves. Missing ones are
    # created (a concurrent creator is ignored) and the whole set locked again in id order,
    # so the lock order stays the same whichever accounts were new.
    result = _lock_accounts(ids, currencies)
    missing = sorted({(m, c) for m in ids for c in currencies} - set(result))
    if missing:
        Account.objects.bulk_create(
            [
                Account(
                    program_id=currencies[currency_id].program_id,
                    currency=currencies[currency_id],
                    kind=Account.Kind.MEMBER,
                    member_id=member_id,
                    allow_negative=currencies[currency_id].allow_negative,
                )
                for member_id, currency_id in missing
            ],
            ignore_conflicts=True,
        )
        result = _lock_accounts(ids, currencies)
    return result


def _lock_accounts(member_ids: list[int], currencies: dict[int, Currency]) -> dict[tuple[int, int], Account]:
    accounts = (
        Account.objects.select_for_update()
        .filter(member_id__in=member_ids, currency_id__in=currencies)
        .order_by("pk")
    )
    result = {}
    for account in accounts:
        account.currency = currencies[account.currency_id]
        result[(account.member_id, account.currency_id)] = account
    return result


def record(
    *,
    member: Member,
    source: str,
    reference: str,
    occurred_at: datetime,
    actor: Actor,
    spend=None,
    points: int = 0,
    visits: int = 0,
):
    """``tiers.services.activity_record`` with the defaults of the earning code, for a member
    whose rows ``lock_members`` has locked in this transaction (every caller here does)."""
    kwargs = {"spend": spend} if spend is not None else {}
    return tier_services.activity_record(
        locked=True,
        member=member,
        occurred_at=occurred_at,
        source=source,
        reference=reference,
        points=points,
        visits=visits,
        actor=actor,
        **kwargs,
    )


def _is_default(currency: Currency) -> bool:
    return currency.is_default


def _qualified(original: Transaction) -> bool:
    """Whether ``original`` was recorded as qualifying activity: a purchase's earning, or an
    earn or adjustment made through this module (``earn:<id>`` / ``adjust:<id>``)."""
    if (
        original.kind == Transaction.Kind.EARN
        and PurchaseEarning.objects.filter(transaction=original).exists()
    ):
        return True
    source, prefix = (
        (Source.EARN, "earn") if original.kind == Transaction.Kind.EARN else (Source.ADJUSTMENT, "adjust")
    )
    return TierActivity.objects.filter(
        member_id=original.member_id, source=source, reference=f"{prefix}:{original.pk}"
    ).exists()


@transaction.atomic
def points_earn_qualifying(
    *,
    member: Member,
    amount: int,
    actor: Actor,
    currency: Currency | None = None,
    reference: str = "",
    occurred_at: datetime | None = None,
    location: Location | None = None,
    pending_until: datetime | None = None,
    metadata: dict | None = None,
    description: str = "",
) -> services.PointsResult:
    """``points_earn`` that also records the points as qualifying activity (source
    ``earn``, reference ``earn:<transaction id>``) when they are in the default currency."""
    currency = currency or default_currency(program_id=member.program_id)
    accounts = lock_members([member], [currency], actor=actor)
    result = services.points_earn(
        member=member,
        account=accounts[(member.pk, currency.pk)],
        amount=amount,
        actor=actor,
        currency=currency,
        reference=reference,
        occurred_at=occurred_at,
        location=location,
        pending_until=pending_until,
        metadata=metadata,
        description=description,
    )
    if result.created and _is_default(currency):
        txn = result.transaction
        record(
            member=member,
            source=Source.EARN,
            reference=f"earn:{txn.pk}",
            occurred_at=txn.occurred_at,
            points=amount,
            actor=actor,
        )
    return result


@transaction.atomic
def points_adjust_qualifying(
    *,
    member: Member,
    amount: int,
    reason: str,
    actor: Actor,
    currency: Currency | None = None,
    reference: str = "",
    description: str = "",
    metadata: dict | None = None,
) -> services.PointsResult:
    """``points_adjust`` that records the signed points as activity of source
    ``adjustment`` (tiers counts it only if the program says adjustments qualify)."""
    currency = currency or default_currency(program_id=member.program_id)
    accounts = lock_members([member], [currency], actor=actor)
    result = services.points_adjust(
        member=member,
        account=accounts[(member.pk, currency.pk)],
        amount=amount,
        reason=reason,
        actor=actor,
        currency=currency,
        reference=reference,
        description=description,
        metadata=metadata,
    )
    if result.created and _is_default(currency):
        txn = result.transaction
        record(
            member=member,
            source=Source.ADJUSTMENT,
            reference=f"adjust:{txn.pk}",
            occurred_at=txn.occurred_at,
            points=txn.signed_amount,
            actor=actor,
        )
    return result


@transaction.atomic
def points_adjust_credits_qualifying(
    *, program: Program, currency: Currency, credits: Sequence[services.Credit], actor: Actor
) -> list[Transaction]:
    """``points_adjust_credits`` (many positive adjustments at once, bulk imports) that
    records each credit in the default currency as ``points_adjust_qualifying`` does
    (source ``adjustment``, reference ``adjust:<transaction id>``), the activities together
    (``tiers.services.activity_record_many``). The caller has locked the members with
    ``lock_members`` and their accounts in ``currency``."""
    txns = services.points_adjust_credits(currency=currency, credits=credits, actor=actor)
    if _is_default(currency):
        tier_services.activity_record_many(
            program=program,
            activities=[
                tier_services.Activity(
                    member=credit.member,
                    occurred_at=txn.occurred_at,
                    source=Source.ADJUSTMENT,
                    reference=f"adjust:{txn.pk}",
                    points=txn.signed_amount,
                )
                for credit, txn in zip(credits, txns, strict=True)
            ],
            actor=actor,
        )
    return txns


@transaction.atomic
def points_reverse_qualifying(
    *,
    transaction: Transaction,
    actor: Actor,
    amount: int | None = None,
    reason: str = "",
    reference: str = "",
    description: str = "",
    metadata: dict | None = None,
) -> services.PointsResult:
    """``points_reverse`` that takes qualifying points back: reversing a qualifying earn
    records negative points (source ``reversal``), reversing an adjustment the opposite of
    its points (source ``adjustment``). What never qualified (event bonuses, conversions,
    other kinds) takes nothing back."""
    original = transaction
    currency = Currency.objects.select_related("program").get(pk=original.currency_id)
    members = list(Member.objects.filter(pk__in={original.member_id, original.counterparty_id} - {None}))
    lock_members(members, [currency], actor=actor)
    result = services.points_reverse(
        transaction=original,
        actor=actor,
        amount=amount,
        reason=reason,
        reference=reference,
        description=description,
        metadata=metadata,
    )
    source = {Transaction.Kind.EARN: Source.REVERSAL, Transaction.Kind.ADJUST: Source.ADJUSTMENT}.get(
        original.kind
    )
    if result.created and source is not None and _is_default(currency) and _qualified(original):
        txn = result.transaction
        member = next(m for m in members if m.pk == original.member_id)
        record(
            member=member,
            source=source,
            reference=f"reverse:{txn.pk}",
            occurred_at=original.occurred_at,
            points=txn.signed_amount,
            actor=actor,
        )
    return result
