"""Earn, redeem, adjust, transfer and reverse."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from members.models import Member
from membership_site.actors import Actor
from membership_site.errors import InvalidInputError
from programs.models import Location
from webhooks.services import event_record_many

from .. import posting as ledger
from ..errors import (
    DuplicateReferenceError,
    NotReversibleError,
    RecipientNotFoundError,
    ReversalExceedsRemainingError,
    TransferToSelfError,
)
from ..events import emit_transaction, transaction_event
from ..expiry import lot_expiry
from ..models import Account, Currency, Lot, Transaction
from .common import (
    MAX_POINTS,
    REVERSIBLE_KINDS,
    SYS,
    B,
    K,
    P,
    PointsResult,
    _active_currency,
    _check_amount,
    _check_minimum,
    _check_sufficient,
    _create_txn,
    _lock_for,
    _replayed,
    _requested_currency,
    _touch,
    _txn_fields,
    check_member,
)

# --- Earn, redeem, adjust ----------------------------------------------------------------


@transaction.atomic
def points_earn(
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
    event_data: dict | None = None,
    account: Account | None = None,
) -> PointsResult:
    """Credit earned points in a new lot expiring by the currency's policy (counted from
    ``occurred_at``). With ``pending_until`` in the future they are pending until then:
    visible, not spendable. ``event_data``: extra members of the ``points.earned`` event
    (e.g. the purchase that earned them).
    ``account``: the member's account in ``currency`` when the caller has already locked it
    in this transaction (``earning.qualifying.lock_members``)."""
    _check_amount(amount)
    currency = _requested_currency(member, currency, reference)
    check_member(member, spending=False)
    replay_args = {
        "program_id": member.program_id,
        "kind": K.EARN,
        "reference": reference,
        "member": member,
        "currency": currency,
        "signed_amount": amount,
    }
    replay = _replayed(**replay_args)
    if replay:
        return replay
    now = timezone.now()
    currency, account = _lock_for(member, currency, account)
    if currency.expiry_policy == P.INACTIVITY:
        ledger.expire_due(account, actor=actor, now=now)
    pending = pending_until is not None and pending_until > now
    txn = _create_txn(
        replay_args,
        **_txn_fields(
            member=member,
            currency=currency,
            kind=K.EARN,
            amount=amount,
            direction=1,
            actor=actor,
            now=now,
            reference=reference,
            description=description,
            occurred_at=occurred_at,
            location=location,
            metadata=metadata,
            pending_until=pending_until if pending else None,
        ),
    )
    if isinstance(txn, PointsResult):
        return txn
    post = ledger.Posting(txn)
    ledger.credit_new_lot(
        post,
        account,
        amount,
        earned_at=txn.occurred_at,
        expires_at=lot_expiry(currency, txn.occurred_at),
        bucket=B.PENDING if pending else B.AVAILABLE,
        available_at=pending_until,
    )
    post.entry(ledger.system_account_id(currency, SYS.ISSUED), B.AVAILABLE, -amount)
    account.lifetime_earned += amount
    _touch(account, txn.occurred_at)
    ledger.post(post)
    emit_transaction("points.earned", txn, account, **(event_data or {}))
    return PointsResult(txn, account)


@transaction.atomic
def points_redeem(
    *,
    member: Member,
    amount: int,
    actor: Actor,
    currency: Currency | None = None,
    reference: str = "",
    occurred_at: datetime | None = None,
    location: Location | None = None,
    metadata: dict | None = None,
    description: str = "",
) -> PointsResult:
    """Spend available points, consuming lots first-to-expire."""
    _check_amount(amount)
    currency = _requested_currency(member, currency, reference)
    check_member(member, spending=True)
    replay_args = {
        "program_id": member.program_id,
        "kind": K.REDEEM,
        "reference": reference,
        "member": member,
        "currency": currency,
        "signed_amount": -amount,
    }
    replay = _replayed(**replay_args)
    if replay:
        return replay
    now = timezone.now()
    currency, account = _lock_for(member, currency)
    _check_minimum(currency, amount)
    lots = ledger.expire_due(account, actor=actor, now=now)
    _check_sufficient(account, amount)
    txn = _create_txn(
        replay_args,
        **_txn_fields(
            member=member,
            currency=currency,
            kind=K.REDEEM,
            amount=amount,
            direction=-1,
            actor=actor,
            now=now,
            reference=reference,
            description=description,
            occurred_at=occurred_at,
            location=location,
            metadata=metadata,
        ),
    )
    if isinstance(txn, PointsResult):
        return txn
    post = ledger.Posting(txn)
    ledger.debit(post, account, amount, now=now, prefer_lots=lots)
    post.entry(ledger.system_account_id(currency, SYS.REDEEMED), B.AVAILABLE, amount)
    _touch(account, txn.occurred_at)
    ledger.post(post)
    emit_transaction("points.redeemed", txn, account)
    return PointsResult(txn, account)


@transaction.atomic
def points_adjust(
    *,
    member: Member,
    amount: int,
    reason: str,
    actor: Actor,
    currency: Currency | None = None,
    reference: str = "",
    description: str = "",
    metadata: dict | None = None,
    occurred_at: datetime | None = None,
    account: Account | None = None,
) -> PointsResult:
    """A manual correction: positive amounts credit a new lot (expiring by the policy from
    now), negative ones are taken from available points first-to-expire.
    ``account``: the member's account in ``currency`` when the caller has already locked it
    in this transaction (``earning.qualifying.lock_members``)."""
    _check_amount(amount, signed=True)
    if not (reason or "").strip():
        raise InvalidInputError("An adjustment needs a reason.", field="reason")
    currency = _requested_currency(member, currency, reference)
    check_member(member, spending=False)
    replay_args = {
        "program_id": member.program_id,
        "kind": K.ADJUST,
        "reference": reference,
        "member": member,
        "currency": currency,
        "signed_amount": amount,
    }
    replay = _replayed(**replay_args)
    if replay:
        return replay
    now = timezone.now()
    currency, account = _lock_for(member, currency, account)
    lots = []
    if amount < 0 or currency.expiry_policy == P.INACTIVITY:
        lots = ledger.expire_due(account, actor=actor, now=now)
    if amount < 0:
        _check_sufficient(account, -amount)
    txn = _create_txn(
        replay_args,
        **_txn_fields(
            member=member,
            currency=currency,
            kind=K.ADJUST,
            amount=abs(amount),
            direction=1 if amount > 0 else -1,
            actor=actor,
            now=now,
            reference=reference,
            description=description,
            reason=reason.strip(),
            occurred_at=occurred_at,
            metadata=metadata,
        ),
    )
    if isinstance(txn, PointsResult):
        return txn
    post = ledger.Posting(txn)
    if amount > 0:
        ledger.credit_new_lot(post, account, amount, earned_at=now, expires_at=lot_expiry(currency, now))
    else:
        ledger.debit(post, account, -amount, now=now, prefer_lots=lots)
    post.entry(ledger.system_account_id(currency, SYS.ADJUSTED), B.AVAILABLE, -amount)
    ledger.post(post)
    emit_transaction("points.adjusted", txn, account, reason=txn.reason)
    return PointsResult(txn, account)


@dataclass(frozen=True)
class Credit:
    """One positive adjustment for ``points_adjust_credits``: ``account`` is the member's
    account in the currency, locked by the caller in this transaction."""

    member: Member
    account: Account
    amount: int
    reason: str
    reference: str
    description: str = ""
    metadata: dict | None = None


def credit_batchable(*, member: Member, currency: Currency, account: Account, amount: int) -> bool:
    """Whether a positive adjustment can go through ``points_adjust_credits``; the others
    (debits, an account with a negative balance to pay off, a currency with the inactivity
    policy, which expires points first, and anything ``points_adjust`` refuses) go through
    ``points_adjust``."""
    return (
        0 < amount <= MAX_POINTS
        and currency.is_active
        and currency.expiry_policy != P.INACTIVITY
        and member.status != Member.Status.TERMINATED
        and account.available >= 0
        and account.member_id == member.pk
        and account.currency_id == currency.pk
    )


@transaction.atomic
def points_adjust_credits(
    *, currency: Currency, credits: Sequence[Credit], actor: Actor
) -> list[Transaction]:
    """Many positive adjustments in ``currency`` at once (bulk imports), each what
    ``points_adjust`` would write: its transaction, a new lot expiring by the policy from now,
    the entries against the system account and its ``points.adjusted`` event with the
    balance after it; in three statements whatever their number. Each credit must be
    ``credit_batchable`` and carry a reference that is not used yet (the caller checks;
    the unique constraint fails the whole call otherwise, IntegrityError)."""
    if not credits:
        return []
    references = [credit.reference for credit in credits]
    if not all(references) or len(set(references)) != len(references):
        raise ValueError("Every credit needs a reference of its own.")
    for credit in credits:
        if not (credit.reason or "").strip():
            raise InvalidInputError("An adjustment needs a reason.", field="reason")
        if not credit_batchable(
            member=credit.member, currency=currency, account=credit.account, amount=credit.amount
        ):
            raise ValueError(f"Credit {credit.reference} must go through points_adjust.")
        credit.account.currency = currency
    now = timezone.now()
    txns = Transaction.objects.bulk_create(
        [
            Transaction(
                **_txn_fields(
                    member=credit.member,
                    currency=currency,
                    kind=K.ADJUST,
                    amount=credit.amount,
                    direction=1,
                    actor=actor,
                    now=now,
                    reference=credit.reference,
                    description=credit.description,
                    reason=credit.reason.strip(),
                    metadata=credit.metadata,
                )
            )
            for credit in credits
        ]
    )
    system = ledger.system_account_id(currency, SYS.ADJUSTED)
    expires_at = lot_expiry(currency, now)
    postings, events = [], []
    for credit, txn in zip(credits, txns, strict=True):
        post = ledger.Posting(txn)
        ledger.credit_new_lot(post, credit.account, credit.amount, earned_at=now, expires_at=expires_at)
        post.entry(system, B.AVAILABLE, -credit.amount)
        postings.append(post)
        # The balance after this credit (the account object carries the running balance).
        events.append(transaction_event("points.adjusted", txn, credit.account, reason=txn.reason))
    ledger.post_many(postings)
    event_record_many(events=events)
    return txns


# --- Transfers ---------------------------------------------------------------------------


@transaction.atomic
def points_transfer(
    *,
    member: Member,
    to_member: Member,
    amount: int,
    actor: Actor,
    currency: Currency | None = None,
    reference: str = "",
    description: str = "",
    metadata: dict | None = None,
    occurred_at: datetime | None = None,
) -> PointsResult:
    """Move available points to another member of the same program, in the same currency.
    The recipient's new lots keep the expiry dates of the sender's lots they came from."""
    _check_amount(amount)
    if to_member.program_id != member.program_id:
        raise RecipientNotFoundError("No such member in this program.", field="to_member")
    if to_member.pk == member.pk:
        raise TransferToSelfError("The recipient is the sender.", field="to_member")
    currency = _active_currency(member, currency)
    check_member(member, spending=True)
    check_member(to_member, spending=False)
    replay_args = {
        "program_id": member.program_id,
        "kind": K.TRANSFER,
        "reference": reference,
        "member": member,
        "currency": currency,
        "signed_amount": -amount,
    }
    replay = _replayed(**replay_args)
    if replay:
        if replay.transaction.counterparty_id != to_member.pk:
            raise DuplicateReferenceError(
                f"Reference '{reference}' was already used for transaction {replay.transaction.pk}.",
                transaction_id=replay.transaction.pk,
            )
        return replay
    now = timezone.now()
    accounts = ledger.lock_accounts([member, to_member], currency)
    source, target = accounts[member.pk], accounts[to_member.pk]
    lots = ledger.expire_due(source, actor=actor, now=now)
    if currency.expiry_policy == P.INACTIVITY:
        ledger.expire_due(target, actor=actor, now=now)
    _check_sufficient(source, amount)
    txn = _create_txn(
        replay_args,
        **_txn_fields(
            member=member,
            currency=currency,
            kind=K.TRANSFER,
            amount=amount,
            direction=-1,
            actor=actor,
            now=now,
            reference=reference,
            description=description,
            occurred_at=occurred_at,
            metadata=metadata,
            counterparty=to_member,
        ),
    )
    if isinstance(txn, PointsResult):
        return txn
    post = ledger.Posting(txn)
    consumed = ledger.debit(post, source, amount, now=now, prefer_lots=lots)
    for lot, taken in consumed:
        ledger.credit_new_lot(post, target, taken, earned_at=lot.earned_at, expires_at=lot.expires_at)
    unbacked = amount - sum(taken for _lot, taken in consumed)
    if unbacked:  # the sender went below zero (allowed by the currency)
        ledger.credit_new_lot(post, target, unbacked, earned_at=now, expires_at=lot_expiry(currency, now))
    _touch(source, txn.occurred_at)
    _touch(target, txn.occurred_at)
    ledger.post(post)
    emit_transaction("points.transferred", txn, source, target)
    return PointsResult(txn, source, counterparty_account=target)


# --- Reversals ---------------------------------------------------------------------------


def reversible_amount(txn: Transaction) -> int:
    if txn.kind not in REVERSIBLE_KINDS:
        return 0
    reversed_ = Transaction.objects.filter(reverses=txn).aggregate(total=Sum("amount"))["total"] or 0
    return txn.amount - reversed_


def _take_back_credit(post, account: Account, original: Transaction, amount: int, now: datetime) -> None:
    """Undo (part of) a credit: the points come out of the lots the original created first."""
    own_lots = list(Lot.objects.filter(source=original, account=account).order_by("-id"))
    ledger.debit(post, account, amount, now=now, prefer_lots=own_lots)


@transaction.atomic
def points_reverse(
    *,
    transaction: Transaction,
    actor: Actor,
    amount: int | None = None,
    reason: str = "",
    reference: str = "",
    description: str = "",
    metadata: dict | None = None,
    event_data: dict | None = None,
) -> PointsResult:
    """Undo part or all (``amount`` None) of an earn, redemption, adjustment, transfer or
    capture, never more than what remains reversible. Reversing a redemption gives the
    points back to the lots they came from, with their original expiry; reversing a
    pending earn cancels (part of) it. ``event_data``: extra members of the
    ``points.reversed`` event (e.g. the refund)."""
    original = transaction
    if original.kind not in REVERSIBLE_KINDS:
        raise NotReversibleError(f"A {original.kind} transaction cannot be reversed.", kind=original.kind)
    if amount is not None:
        _check_amount(amount)
    currency = Currency.objects.select_related("program").get(pk=original.currency_id)
    members = [Member.objects.get(pk=original.member_id)]
    if original.counterparty_id:
        members.append(Member.objects.get(pk=original.counterparty_id))
    for member in members:
        check_member(member, spending=False)
    member = members[0]
    replay_args = {
        "program_id": original.program_id,
        "kind": K.REVERSE,
        "reference": reference,
        "member": member,
        "currency": currency,
        "signed_amount": None,
        "reverses_id": original.pk,
    }
    replay = _replayed(**replay_args)
    if replay:
        return replay
    now = timezone.now()
    accounts = ledger.lock_accounts(members, currency)
    remaining = reversible_amount(original)
    amount = remaining if amount is None else amount
    if remaining <= 0 or amount > remaining:
        raise ReversalExceedsRemainingError(
            f"{remaining} points of transaction {original.pk} remain reversible.",
            reversible=remaining,
            requested=amount,
        )
    primary = accounts[member.pk]
    if original.direction > 0:  # the original credited the member: take points back
        ledger.expire_due(primary, actor=actor, now=now)
    if original.kind == K.TRANSFER:
        ledger.expire_due(accounts[original.counterparty_id], actor=actor, now=now)
    txn = _create_txn(
        replay_args,
        **_txn_fields(
            member=member,
            currency=currency,
            kind=K.REVERSE,
            amount=amount,
            direction=-original.direction,
            actor=actor,
            now=now,
            reference=reference,
            description=description or f"Reversal of #{original.pk}",
            reason=reason,
            metadata=metadata,
            location=None,
            reverses=original,
            counterparty_id=original.counterparty_id,
        ),
    )
    if isinstance(txn, PointsResult):
        return txn
    post = ledger.Posting(txn)
    family = [original.pk, *Transaction.objects.filter(reverses=original).values_list("pk", flat=True)]
    counterparty = None
    if original.kind == K.EARN:
        lot = Lot.objects.filter(source=original, account=primary).first()
        if lot is not None and lot.is_pending:
            post.entry(primary, B.PENDING, -amount)
            post.move(lot, -amount)
            if lot.remaining == 0:
                lot.is_pending = False  # cancelled: nothing left to activate
        else:
            _check_sufficient(primary, amount)
            _take_back_credit(post, primary, original, amount, now)
        post.entry(ledger.system_account_id(currency, SYS.ISSUED), B.AVAILABLE, amount)
        primary.lifetime_earned -= amount
    elif original.kind == K.ADJUST and original.direction > 0:
        _check_sufficient(primary, amount)
        _take_back_credit(post, primary, original, amount, now)
        post.entry(ledger.system_account_id(currency, SYS.ADJUSTED), B.AVAILABLE, amount)
    elif original.kind == K.ADJUST:
        ledger.credit_restoring(post, primary, amount, from_txn_ids=family, now=now)
        post.entry(ledger.system_account_id(currency, SYS.ADJUSTED), B.AVAILABLE, -amount)
    elif original.kind == K.REDEEM:
        ledger.credit_restoring(post, primary, amount, from_txn_ids=family, now=now)
        post.entry(ledger.system_account_id(currency, SYS.REDEEMED), B.AVAILABLE, -amount)
    elif original.kind == K.CAPTURE:
        hold_txn = Transaction.objects.get(hold_id=original.hold_id, kind=K.HOLD)
        ledger.credit_restoring(post, primary, amount, from_txn_ids=[hold_txn.pk, *family], now=now)
        post.entry(ledger.system_account_id(currency, SYS.REDEEMED), B.AVAILABLE, -amount)
    else:  # transfer: the recipient gives back, the sender's lots are restored
        counterparty = accounts[original.counterparty_id]
        _check_sufficient(counterparty, amount)
        _take_back_credit(post, counterparty, original, amount, now)
        ledger.credit_restoring(post, primary, amount, from_txn_ids=family, now=now)
    ledger.post(post)
    accounts_changed = [primary] if counterparty is None else [primary, counterparty]
    emit_transaction("points.reversed", txn, *accounts_changed, reason=txn.reason, **(event_data or {}))
    return PointsResult(txn, primary, counterparty_account=counterparty)
