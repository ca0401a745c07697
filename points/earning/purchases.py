"""Recording purchases and refunds (and quoting a purchase's points without recording).

A purchase, in one database transaction: check the money, lock the member's tier row and
points accounts (``qualifying.lock_members``), compute the points (``compute.compute``, the
same function the quote uses), store the purchase, its lines and breakdown, record the
qualifying activity (which may upgrade the member: the next purchase earns with the new
tier), post the points to the ledger (pending for the program's return window), count the
points of budgeted campaigns against their budgets, complete a pending referral on the
member's first purchase, and write the events.

Budgets are hot rows (every purchase of a campaign updates the same one), so they are
locked as late as possible: the computation uses the budgets as read, and the budget rows
are locked and checked at the end. If a concurrent purchase took the points meanwhile, the
work is rolled back to a savepoint and done again with the budgets locked before computing
(two purchases can never both take a budget's last points; a CHECK constraint is the last
guard).

A refund takes points back in proportion of the eligible amount refunded, cumulatively:
after refunds covering a share *s* of the eligible amount, ``floor(points × s)`` points
have been taken back (all of them once the purchase is fully refunded), so partial refunds
never take more than one refund of the same total would. Still-pending points are
cancelled; available points are reversed, below zero only where the currency allows it;
what the member no longer has is recorded as a shortfall. Points of the earn already
reversed outside refunds (the generic reversal API) count as taken back, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from members.models import Card, Member
from membership_site.actors import Actor
from membership_site.errors import InvalidInputError
from programs.currencies import money_quantum
from programs.models import Location, Program

from .. import posting as ledger
from .. import services
from ..errors import DuplicateReferenceError, MemberSuspendedError, MemberTerminatedError
from ..models import (
    Account,
    Campaign,
    Currency,
    EarningRule,
    Lot,
    PointsAward,
    Purchase,
    PurchaseEarning,
    PurchaseLine,
    Referral,
    Refund,
    RefundEarning,
    RefundLine,
)
from ..selectors import default_currency
from . import compute, selectors
from .basket import CheckedBasket, LineInput, check_basket
from .bonuses import referral_complete
from .errors import (
    CurrencyMismatchError,
    InvalidAmountError,
    PurchaseFullyRefundedError,
    RefundExceedsPurchaseError,
    UnknownLineError,
)
from .events import breakdown_summary, emit_purchase_recorded, emit_purchase_refunded
from .qualifying import Source, lock_members, record

ZERO = Decimal(0)
MS = Member.Status


@dataclass(frozen=True)
class Quote:
    """What a basket would earn the member now."""

    basket: CheckedBasket
    computation: compute.Computation
    currencies: dict[int, Currency]
    occurred_at: datetime
    pending_until: datetime | None


@dataclass(frozen=True)
class PurchaseResult:
    purchase: Purchase
    created: bool


@dataclass(frozen=True)
class RefundResult:
    refund: Refund
    created: bool


def check_member_may_purchase(member: Member) -> None:
    """Suspended and terminated members cannot earn from purchases."""
    if member.status == MS.TERMINATED:
        raise MemberTerminatedError(f"Member {member.number} is terminated.", member_id=member.pk)
    if member.status == MS.SUSPENDED:
        raise MemberSuspendedError(f"Member {member.number} is suspended.", member_id=member.pk)


@dataclass(frozen=True)
class _Context:
    basket: CheckedBasket
    occurred_at: datetime
    local: datetime
    rules: list[EarningRule]
    campaigns: list[Campaign]
    currencies: dict[int, Currency]
    location: Location | None

    @property
    def all_rules(self) -> list:
        return [*self.rules, *self.campaigns]

    def basket_for_compute(self) -> compute.Basket:
        return compute.Basket(
            when=self.local,
            location=self.location.code if self.location else None,
            lines=tuple(line.for_compute() for line in self.basket.lines),
        )


def _context(
    *,
    program: Program,
    lines: Sequence[LineInput],
    currency: str | None,
    total: Decimal | None,
    tax: Decimal,
    shipping: Decimal,
    location: Location | None,
    occurred_at: datetime | None,
) -> _Context:
    if currency is not None and currency.upper() != program.currency:
        raise CurrencyMismatchError(
            f"This program's purchases are in {program.currency}.",
            field="currency",
            expected=program.currency,
        )
    if location is not None and location.program_id != program.pk:
        raise InvalidInputError("The location belongs to another program.", field="location")
    basket = check_basket(currency=program.currency, lines=lines, total=total, tax=tax, shipping=shipping)
    occurred_at = occurred_at or timezone.now()
    local = occurred_at.astimezone(program.tz)
    rules, campaigns = selectors.active_rules(program=program, on=local.date())
    currency_ids = {obj.currency_id for obj in [*rules, *campaigns]}
    currencies = {c.pk: c for c in Currency.objects.filter(pk__in=currency_ids)}
    for found in currencies.values():
        found.program = program
    return _Context(basket, occurred_at, local, rules, campaigns, currencies, location)


def _pending_until(program: Program, occurred_at: datetime, settings_=None) -> datetime | None:
    settings_ = settings_ or selectors.earning_settings_get(program=program)
    if not settings_.return_window_days:
        return None
    until = occurred_at + timedelta(days=settings_.return_window_days)
    return until if until > timezone.now() else None


def purchase_quote(
    *,
    program: Program,
    member: Member,
    lines: Sequence[LineInput],
    currency: str | None = None,
    total: Decimal | None = None,
    tax: Decimal = ZERO,
    shipping: Decimal = ZERO,
    location: Location | None = None,
    occurred_at: datetime | None = None,
) -> Quote:
    """The points the basket would earn now: the same computation as ``purchase_record``
    (caps and budgets as they stand), writing nothing."""
    check_member_may_purchase(member)
    context = _context(
        program=program,
        lines=lines,
        currency=currency,
        total=total,
        tax=tax,
        shipping=shipping,
        location=location,
        occurred_at=occurred_at,
    )
    facts = selectors.member_facts(member=member)
    limits = selectors.cap_limits(member=member, rules=context.all_rules, on=context.local.date())
    computation = compute.compute(
        basket=context.basket_for_compute(),
        member=facts,
        rules=selectors.rule_specs(context.all_rules),
        limits=limits,
    )
    _check_points(computation)
    return Quote(
        basket=context.basket,
        computation=computation,
        currencies=context.currencies,
        occurred_at=context.occurred_at,
        pending_until=_pending_until(program, context.occurred_at),
    )


def _replayed_purchase(
    program: Program, reference: str, member: Member, total: Decimal
) -> PurchaseResult | None:
    existing = Purchase.objects.filter(program=program, reference=reference).first()
    if existing is None:
        return None
    if existing.member_id != member.pk or existing.total != total:
        raise DuplicateReferenceError(
            f"Purchase '{reference}' was already recorded for another member or total.",
            field="reference",
            purchase_reference=reference,
        )
    return PurchaseResult(existing, created=False)


def _lock_budgets(specs, basket, facts) -> dict[int, tuple[int, int]]:
    """Lock the budgeted campaigns this basket may use (in id order) and read their budgets:
    two purchases then cannot both take a budget's last points."""
    ids = [
        spec.id
        for spec in specs
        if spec.source == compute.CAMPAIGN and spec.has_budget and compute.applies(spec, basket, facts)
    ]
    if not ids:
        return {}
    rows = Campaign.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    return {pk: (budget, used) for pk, budget, used in rows.values_list("pk", "budget_points", "budget_used")}


@transaction.atomic
def purchase_record(
    *,
    program: Program,
    member: Member,
    reference: str,
    lines: Sequence[LineInput],
    actor: Actor,
    card: Card | None = None,
    currency: str | None = None,
    total: Decimal | None = None,
    tax: Decimal = ZERO,
    shipping: Decimal = ZERO,
    location: Location | None = None,
    occurred_at: datetime | None = None,
    metadata: dict | None = None,
) -> PurchaseResult:
    """Record a purchase and credit its points (see the module docstring). A ``reference``
    recorded before returns the original purchase (``created=False``); the same reference
    for another member or total is ``DuplicateReferenceError``."""
    reference = (reference or "").strip()
    if not reference:
        raise InvalidInputError("A purchase needs its receipt or order reference.", field="reference")
    context = _context(
        program=program,
        lines=lines,
        currency=currency,
        total=total,
        tax=tax,
        shipping=shipping,
        location=location,
        occurred_at=occurred_at,
    )
    replay = _replayed_purchase(program, reference, member, context.basket.total)
    if replay is not None:
        return replay
    check_member_may_purchase(member)
    settings_ = selectors.earning_settings_get(program=program)
    default = default_currency(program_id=program.pk)
    currencies = {**context.currencies, default.pk: default}
    referral = (
        Referral.objects.select_related("referrer__program")
        .filter(referee_id=member.pk, status=Referral.Status.PENDING)
        .first()
    )
    if referral is not None:
        bonus_currency = settings_.bonus_currency or default
        currencies[bonus_currency.pk] = bonus_currency
    accounts = lock_members(
        [member, *([referral.referrer] if referral else [])], currencies.values(), actor=actor
    )
    arguments = {
        "program": program,
        "member": member,
        "reference": reference,
        "card": card,
        "metadata": metadata,
        "actor": actor,
        "context": context,
        "settings_": settings_,
        "default": default,
        "currencies": currencies,
        "referral": referral,
    }
    try:
        with transaction.atomic():
            return _record(**arguments, budgets_locked=False, accounts=accounts)
    except _BudgetTaken:
        # A concurrent purchase took budget points this one counted on: do it again, with
        # the budgets locked before computing. The first attempt's account objects carry
        # the balances it rolled back: the ledger reads the accounts afresh this time.
        return _record(**arguments, budgets_locked=True, accounts=None)


class _BudgetTaken(Exception):
    pass


def _record(
    *,
    program: Program,
    member: Member,
    reference: str,
    card: Card | None,
    metadata: dict | None,
    actor: Actor,
    context: _Context,
    settings_,
    default: Currency,
    currencies: dict[int, Currency],
    referral: Referral | None,
    budgets_locked: bool,
    accounts: dict[tuple[int, int], Account] | None,
) -> PurchaseResult:
    """The purchase once the member's rows are locked. Budgets are read as they stand and
    checked under lock at the end (``budgets_locked=False``: the hot campaign rows are held
    only from there to the commit), or locked before computing (the retry after a race).
    ``accounts``: the accounts as ``lock_members`` locked them, handed to the ledger (None:
    it locks them itself)."""
    first = not Purchase.objects.filter(member_id=member.pk).exists()
    facts = selectors.member_facts(member=member, first_purchase=first)
    basket = context.basket_for_compute()
    specs = selectors.rule_specs(context.all_rules)
    budgets = _lock_budgets(specs, basket, facts) if budgets_locked else None
    limits = selectors.cap_limits(
        member=member, rules=context.all_rules, on=context.local.date(), budgets=budgets
    )
    computation = compute.compute(basket=basket, member=facts, rules=specs, limits=limits)
    _check_points(computation)
    checked = context.basket
    try:
        with transaction.atomic():
            purchase = Purchase.objects.create(
                program=program,
                member=member,
                card=card,
                reference=reference,
                location=context.location,
                occurred_at=context.occurred_at,
                occurred_on=context.local.date(),
                currency=program.currency,
                total=checked.total,
                tax=checked.tax,
                shipping=checked.shipping,
                eligible_amount=checked.eligible_amount,
                first_purchase=first,
                points=computation.points_in(default.pk),
                metadata=metadata or {},
                **actor.as_fields(),
            )
    except IntegrityError:  # a concurrent request recorded the same reference first
        replay = _replayed_purchase(program, reference, member, checked.total)
        if replay is not None:
            return replay
        raise
    PurchaseLine.objects.bulk_create(
        [
            PurchaseLine(
                purchase=purchase,
                number=line.number,
                sku=line.sku,
                category=line.category,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_total=line.line_total,
                discount=line.discount,
                amount=line.amount,
                gift_card=line.gift_card,
                excluded=line.excluded,
            )
            for line in checked.lines
        ]
    )
    awards = _store_awards(purchase, computation)

    record(
        member=member,
        source=Source.PURCHASE,
        reference=reference,
        occurred_at=purchase.occurred_at,
        spend=checked.eligible_amount,
        points=purchase.points,
        visits=1,
        actor=actor,
    )
    pending_until = _pending_until(program, purchase.occurred_at, settings_)
    earnings, points_by_code = [], {}
    for currency_id, result in computation.currencies.items():
        if result.points <= 0:
            continue
        points_currency = currencies[currency_id]
        earned = services.points_earn(
            member=member,
            account=accounts[(member.pk, currency_id)] if accounts else None,
            amount=result.points,
            actor=actor,
            currency=points_currency,
            occurred_at=purchase.occurred_at,
            location=purchase.location,
            pending_until=pending_until,
            metadata={"purchase": reference},
            description=f"Purchase {reference}",
            event_data={
                "purchase": {
                    "reference": reference,
                    "breakdown": breakdown_summary(a for a in awards if a.currency_id == currency_id),
                }
            },
        )
        earnings.append(
            PurchaseEarning(
                purchase=purchase,
                currency=points_currency,
                transaction=earned.transaction,
                points=result.points,
            )
        )
        points_by_code[points_currency.code] = result.points
    PurchaseEarning.objects.bulk_create(earnings)
    _use_budgets(awards, specs, locked=budgets_locked)
    if referral is not None and first:
        referral_complete(referral=referral, purchase=purchase, settings_=settings_, actor=actor)
    emit_purchase_recorded(purchase, points_by_code)
    return PurchaseResult(purchase, created=True)


def _check_points(computation: compute.Computation) -> None:
    if any(result.points > services.MAX_POINTS for result in computation.currencies.values()):
        raise InvalidAmountError(
            f"The purchase would earn more than {services.MAX_POINTS} points.", field="lines"
        )


def _store_awards(purchase: Purchase, computation: compute.Computation) -> list[PointsAward]:
    rows = []
    for result in computation.currencies.values():
        for award in result.awards:
            rows.append(
                PointsAward(
                    purchase=purchase,
                    program_id=purchase.program_id,
                    member_id=purchase.member_id,
                    currency_id=result.currency_id,
                    occurred_on=purchase.occurred_on,
                    position=len(rows),
                    source=award.source,
                    rule_id=award.id if award.source == compute.RULE else None,
                    campaign_id=award.id if award.source == compute.CAMPAIGN else None,
                    code=award.code[:50],
                    name=award.name[:200],
                    effect=award.effect,
                    lines=list(award.lines),
                    base=award.base,
                    value=award.value,
                    exact=award.exact,
                    points=award.points,
                    capped_by=award.capped_by,
                )
            )
    return PointsAward.objects.bulk_create(rows)


def _use_budgets(awards: Sequence[PointsAward], specs: Sequence[compute.RuleSpec], *, locked: bool) -> None:
    """Count the budgeted campaigns' points against their budgets, in one statement. Unless
    they were locked before computing, lock them now (in id order, as everywhere) and check
    the points are still there; if not, ``_BudgetTaken`` sends the purchase to its retry."""
    budgeted = {spec.id for spec in specs if spec.source == compute.CAMPAIGN and spec.has_budget}
    used: dict[int, int] = {}
    for award in awards:
        if award.campaign_id in budgeted and award.points > 0:
            used[award.campaign_id] = used.get(award.campaign_id, 0) + award.points
    if not used:
        return
    if not locked:
        rows = Campaign.objects.select_for_update().filter(pk__in=used).order_by("pk")
        for pk, budget, spent in rows.values_list("pk", "budget_points", "budget_used"):
            if budget is None or spent + used[pk] > budget:
                raise _BudgetTaken
    Campaign.objects.filter(pk__in=used).update(
        budget_used=F("budget_used") + Case(*(When(pk=pk, then=Value(n)) for pk, n in used.items()))
    )


# --- Refunds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _RefundPlan:
    amount: Decimal
    base: Decimal
    lines: list[tuple[PurchaseLine, Decimal, Decimal]]  # (line, quantity, money)
    completes: bool


def _line_money(line: PurchaseLine, quantity: Decimal, quantum: Decimal) -> Decimal:
    """Money of ``quantity`` more units of ``line`` refunded, rounded cumulatively so that
    refunding the whole line in parts gives exactly its amount."""

    def share(units: Decimal) -> Decimal:
        return (line.amount * units / line.quantity).quantize(quantum, rounding=ROUND_HALF_UP)

    return share(line.refunded_quantity + quantity) - share(line.refunded_quantity)


def _refund_plan(
    purchase: Purchase,
    purchase_lines: list[PurchaseLine],
    lines: Sequence[tuple[int, Decimal | None]] | None,
    amount: Decimal | None,
) -> _RefundPlan:
    quantum = money_quantum(purchase.currency)
    refundable = purchase.total - purchase.refunded_amount
    base_left = purchase.eligible_amount - purchase.refunded_base
    by_number = {line.number: line for line in purchase_lines}
    if lines is None and amount is None:
        planned = [
            (
                line,
                line.quantity - line.refunded_quantity,
                _line_money(line, line.quantity - line.refunded_quantity, quantum),
            )
            for line in purchase_lines
            if line.refunded_quantity < line.quantity
        ]
        return _RefundPlan(refundable, base_left, planned, completes=True)
    if lines is not None:
        planned, seen = [], set()
        for index, (number, quantity) in enumerate(lines):
            line = by_number.get(number)
            if line is None:
                raise UnknownLineError(f"The purchase has no line {number}.", field=f"lines.{index}.line")
            if number in seen:
                raise InvalidInputError(f"Line {number} is listed twice.", field=f"lines.{index}.line")
            seen.add(number)
            left = line.quantity - line.refunded_quantity
            quantity = left if quantity is None else quantity
            if left <= 0 or quantity <= 0 or quantity > left:
                raise RefundExceedsPurchaseError(
                    f"Line {number} has {left} left to refund.",
                    field=f"lines.{index}.quantity",
                    remaining=str(left),
                )
            planned.append((line, quantity, _line_money(line, quantity, quantum)))
        money = min(sum((m for _l, _q, m in planned), ZERO), refundable)
        base = min(sum((m for line, _q, m in planned if line.eligible), ZERO), base_left)
        done = {line.pk: q for line, q, _m in planned}
        all_lines = all(
            line.refunded_quantity + done.get(line.pk, ZERO) >= line.quantity for line in purchase_lines
        )
        completes = all_lines or money >= refundable
        return _RefundPlan(money, base_left if completes else base, planned, completes)
    if amount != amount.quantize(quantum) or amount <= 0:
        raise InvalidAmountError(
            f"The amount is a positive {purchase.currency} amount with its currency's decimals.",
            field="amount",
        )
    if amount > refundable:
        raise RefundExceedsPurchaseError(
            f"Only {refundable} {purchase.currency} remain refundable.",
            field="amount",
            refundable=str(refundable),
        )
    completes = amount == refundable
    if completes or purchase.total == 0:
        base = base_left if completes else ZERO
    else:
        base = min(
            (amount * purchase.eligible_amount / purchase.total).quantize(quantum, ROUND_HALF_UP), base_left
        )
    return _RefundPlan(amount, base, [], completes)


def _points_target(
    earning: PurchaseEarning, purchase: Purchase, refunded_base: Decimal, completes: bool
) -> int:
    """Points refunds should have taken back once ``refunded_base`` of the eligible amount
    is refunded: floor(points × share), all of them when the purchase is fully refunded."""
    if completes or refunded_base >= purchase.eligible_amount:
        return earning.points
    if purchase.eligible_amount <= 0:
        return 0
    share = Decimal(earning.points) * refunded_base / purchase.eligible_amount
    return int(share.to_integral_value(rounding=ROUND_FLOOR))


def _replayed_refund(program_id: int, reference: str, purchase: Purchase) -> RefundResult | None:
    existing = Refund.objects.filter(program_id=program_id, reference=reference).first()
    if existing is None:
        return None
    if existing.purchase_id != purchase.pk:
        raise DuplicateReferenceError(
            f"Refund '{reference}' was already recorded for another purchase.",
            field="reference",
            refund_reference=reference,
        )
    return RefundResult(existing, created=False)


def _take_back(
    *,
    member: Member,
    earning: PurchaseEarning,
    wanted: int,
    account,
    refund: Refund,
    purchase: Purchase,
    actor: Actor,
) -> tuple[int, bool, object]:
    """Reverse up to ``wanted`` points of the purchase's earn: cancel them while pending;
    otherwise take what the balance allows. Returns (points reversed, were pending, the
    reversal transaction or None)."""
    if member.status == MS.TERMINATED:  # nothing can move any more: all of it is shortfall
        return 0, False, None
    txn = earning.transaction
    remaining = services.reversible_amount(txn)
    lot = Lot.objects.filter(source=txn, account=account).first()
    pending = lot is not None and lot.is_pending
    if pending:
        take = min(wanted, remaining, lot.remaining)
    else:
        ledger.expire_due(account, actor=actor, now=timezone.now())
        take = min(wanted, remaining)
        if not account.allow_negative:
            take = min(take, max(account.available, 0))
    if take <= 0:
        return 0, pending, None
    result = services.points_reverse(
        transaction=txn,
        amount=take,
        actor=actor,
        reason=refund.reason,
        description=f"Refund {refund.reference} of purchase {purchase.reference}",
        metadata={"purchase": purchase.reference, "refund": refund.reference},
        event_data={"refund": {"reference": refund.reference, "purchase_reference": purchase.reference}},
    )
    return take, pending, result.transaction


@transaction.atomic
def refund_record(
    *,
    purchase: Purchase,
    reference: str,
    actor: Actor,
    lines: Sequence[tuple[int, Decimal | None]] | None = None,
    amount: Decimal | None = None,
    occurred_at: datetime | None = None,
    reason: str = "",
    metadata: dict | None = None,
) -> RefundResult:
    """Refund all of a purchase (neither ``lines`` nor ``amount``), some lines ((line
    number, quantity or None for all that is left)), or an ``amount`` of money. A refund
    ``reference`` recorded before returns the original (``created=False``)."""
    reference = (reference or "").strip()
    if not reference:
        raise InvalidInputError("A refund needs its own reference.", field="reference")
    if lines is not None and amount is not None:
        raise InvalidInputError("Give the lines or an amount, not both.", field="amount")
    replay = _replayed_refund(purchase.program_id, reference, purchase)
    if replay is not None:
        return replay
    member = Member.objects.select_related("program").get(pk=purchase.member_id)
    program = member.program
    default = default_currency(program_id=program.pk)
    earning_currencies = list(
        Currency.objects.filter(
            pk__in=PurchaseEarning.objects.filter(purchase=purchase).values("currency_id")
        )
    )
    accounts = lock_members([member], [default, *earning_currencies], actor=actor)
    purchase = Purchase.objects.select_for_update(of=("self",)).select_related("location").get(pk=purchase.pk)
    if purchase.fully_refunded:
        raise PurchaseFullyRefundedError(f"Purchase {purchase.reference} was refunded in full.")
    purchase_lines = list(PurchaseLine.objects.filter(purchase=purchase).order_by("number"))
    plan = _refund_plan(purchase, purchase_lines, lines, amount)
    try:
        with transaction.atomic():
            refund = Refund.objects.create(
                program_id=purchase.program_id,
                purchase=purchase,
                member_id=purchase.member_id,
                reference=reference,
                occurred_at=occurred_at or timezone.now(),
                amount=plan.amount,
                base=plan.base,
                completes_purchase=plan.completes,
                reason=reason or "",
                metadata=metadata or {},
                **actor.as_fields(),
            )
    except IntegrityError:
        replay = _replayed_refund(purchase.program_id, reference, purchase)
        if replay is not None:
            return replay
        raise
    RefundLine.objects.bulk_create(
        [RefundLine(refund=refund, line=line, quantity=q, amount=m) for line, q, m in plan.lines]
    )
    refunded_base = purchase.refunded_base + plan.base
    earnings = list(
        PurchaseEarning.objects.filter(purchase=purchase).select_related("currency", "transaction")
    )
    wanted = {
        e.pk: max(_points_target(e, purchase, refunded_base, plan.completes) - e.reversed - e.shortfall, 0)
        for e in earnings
    }
    # Points of the earn reversed outside refunds (POST /transactions/{id}/reverse) and not
    # yet counted by a refund are already gone: they count as taken back, neither reversed
    # twice nor reported as a shortfall, and that reversal already lowered the qualifying
    # points.
    already = {
        e.pk: min(wanted[e.pk], max(e.points - e.reversed - services.reversible_amount(e.transaction), 0))
        for e in earnings
    }
    record(
        member=member,
        source=Source.REFUND,
        reference=reference,
        occurred_at=purchase.occurred_at,
        spend=-plan.base,
        points=-sum(wanted[e.pk] - already[e.pk] for e in earnings if e.currency_id == default.pk),
        visits=-1 if plan.completes else 0,
        actor=actor,
    )
    refund_earnings, taken = [], {}
    for earning in earnings:
        if not wanted[earning.pk]:
            continue
        reversed_, pending, txn = _take_back(
            member=member,
            earning=earning,
            wanted=wanted[earning.pk] - already[earning.pk],
            account=accounts[(member.pk, earning.currency_id)],
            refund=refund,
            purchase=purchase,
            actor=actor,
        )
        reversed_ += already[earning.pk]
        shortfall = wanted[earning.pk] - reversed_
        earning.reversed += reversed_
        earning.shortfall += shortfall
        refund_earnings.append(
            RefundEarning(
                refund=refund,
                currency=earning.currency,
                transaction=txn,
                points=wanted[earning.pk],
                reversed=reversed_,
                shortfall=shortfall,
                from_pending=pending,
            )
        )
        taken[earning.currency.code] = {"reversed": reversed_, "shortfall": shortfall}
    RefundEarning.objects.bulk_create(refund_earnings)
    if refund_earnings:
        PurchaseEarning.objects.bulk_update(earnings, ["reversed", "shortfall"])
    for line, quantity, _money in plan.lines:
        line.refunded_quantity += quantity
    if plan.lines:
        PurchaseLine.objects.bulk_update([line for line, _q, _m in plan.lines], ["refunded_quantity"])
    purchase.refunded_amount += plan.amount
    purchase.refunded_base = refunded_base
    purchase.fully_refunded = plan.completes
    purchase.save(update_fields=["refunded_amount", "refunded_base", "fully_refunded"])
    emit_purchase_refunded(purchase, refund, {e.currency.code: e.points for e in earnings}, taken)
    return RefundResult(refund, created=True)
