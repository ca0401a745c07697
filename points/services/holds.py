"""Holds: create, capture, release (two-phase redemptions for web checkouts)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from members.models import Member
from membership_site.actors import Actor

from .. import posting as ledger
from ..errors import (
    CaptureExceedsHoldError,
    DuplicateReferenceError,
    HoldNotActiveError,
)
from ..events import emit_transaction, hold_payload
from ..models import Account, Currency, Hold, Transaction
from .common import (
    SYS,
    B,
    K,
    PointsResult,
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

# --- Holds -------------------------------------------------------------------------------


def _lock_hold(hold: Hold) -> tuple[Hold, Account]:
    """Lock the hold's account, then read the hold (holds change only under that lock)."""
    account = (
        Account.objects.select_for_update(of=("self",))
        .select_related("currency__program")
        .get(pk=hold.account_id)
    )
    return Hold.objects.select_related("member").get(pk=hold.pk), account


@transaction.atomic
def hold_create(
    *,
    member: Member,
    amount: int,
    actor: Actor,
    currency: Currency | None = None,
    expires_in: timedelta | None = None,
    reference: str = "",
    description: str = "",
    metadata: dict | None = None,
) -> PointsResult:
    """Reserve available points (e.g. during a web checkout) until captured, released or
    expired (``POINTS_HOLD_DEFAULT_MINUTES`` by default)."""
    _check_amount(amount)
    currency = _requested_currency(member, currency, reference)
    check_member(member, spending=True)
    replay_args = {
        "program_id": member.program_id,
        "kind": K.HOLD,
        "reference": reference,
        "member": member,
        "currency": currency,
        "signed_amount": None,
    }
    replay = _replayed(**replay_args)
    if replay:
        if replay.transaction.amount != amount:
            raise DuplicateReferenceError(
                f"Reference '{reference}' was already used for hold {replay.hold.pk}.",
                transaction_id=replay.transaction.pk,
            )
        return replay
    now = timezone.now()
    expires_in = expires_in or timedelta(minutes=settings.POINTS_HOLD_DEFAULT_MINUTES)
    currency, account = _lock_for(member, currency)
    _check_minimum(currency, amount)
    lots = ledger.expire_due(account, actor=actor, now=now)
    _check_sufficient(account, amount)
    try:
        with transaction.atomic():
            hold = Hold.objects.create(
                program_id=member.program_id,
                member=member,
                account=account,
                amount=amount,
                expires_at=now + expires_in,
                reference=reference or "",
                description=description or "",
                metadata=metadata or {},
            )
            txn = Transaction.objects.create(
                **_txn_fields(
                    member=member,
                    currency=currency,
                    kind=K.HOLD,
                    amount=amount,
                    direction=0,
                    actor=actor,
                    now=now,
                    reference=reference,
                    description=description,
                    metadata=metadata,
                    hold=hold,
                )
            )
    except IntegrityError as error:
        if reference and ledger.is_reference_clash(error):
            replay = _replayed(**replay_args)
            if replay:
                return replay
        raise
    post = ledger.Posting(txn)
    ledger.debit(post, account, amount, now=now, prefer_lots=lots)
    post.entry(account, B.HELD, amount)
    ledger.post(post)
    emit_transaction("hold.created", txn, account, hold=hold_payload(hold))
    return PointsResult(txn, account, hold=hold)


def _ensure_open(hold: Hold, now: datetime) -> None:
    if hold.state != Hold.State.ACTIVE:
        raise HoldNotActiveError(f"Hold {hold.pk} is {hold.state}.", state=hold.state)
    if hold.expires_at <= now:
        raise HoldNotActiveError(
            f"Hold {hold.pk} expired at {hold.expires_at:%Y-%m-%d %H:%M}Z.", state="expired"
        )


@transaction.atomic
def hold_capture(
    *,
    hold: Hold,
    actor: Actor,
    amount: int | None = None,
    reference: str = "",
    description: str = "",
    metadata: dict | None = None,
) -> PointsResult:
    """Redeem all or part (``amount``) of an active hold and release the rest."""
    if amount is not None:
        _check_amount(amount)
    if reference:
        earlier = Transaction.objects.filter(
            program_id=hold.program_id, kind=K.CAPTURE, reference=reference
        ).first()
        if earlier is not None and earlier.hold_id != hold.pk:
            raise DuplicateReferenceError(
                f"Reference '{reference}' was already used for transaction {earlier.pk}.",
                transaction_id=earlier.pk,
            )
        if earlier is not None:
            account = Account.objects.select_related("currency").get(pk=hold.account_id)
            return PointsResult(earlier, account, created=False, hold=Hold.objects.get(pk=hold.pk))
    now = timezone.now()
    hold, account = _lock_hold(hold)
    check_member(hold.member, spending=True)
    _ensure_open(hold, now)
    amount = hold.amount if amount is None else amount
    if amount > hold.amount:
        raise CaptureExceedsHoldError(
            f"The hold is for {hold.amount} points; {amount} cannot be captured.", field="amount"
        )
    currency = account.currency
    replay_args = {
        "program_id": hold.program_id,
        "kind": K.CAPTURE,
        "reference": reference,
        "member": hold.member,
        "currency": currency,
        "signed_amount": None,
    }
    txn = _create_txn(
        replay_args,
        **_txn_fields(
            member=hold.member,
            currency=currency,
            kind=K.CAPTURE,
            amount=amount,
            direction=-1,
            actor=actor,
            now=now,
            reference=reference,
            description=description or hold.description,
            metadata=metadata or hold.metadata,
            hold=hold,
        ),
    )
    if isinstance(txn, PointsResult):
        return txn
    post = ledger.Posting(txn)
    post.entry(account, B.HELD, -hold.amount)
    post.entry(ledger.system_account_id(currency, SYS.REDEEMED), B.AVAILABLE, amount)
    rest = hold.amount - amount
    if rest:
        hold_txn = Transaction.objects.get(hold=hold, kind=K.HOLD)
        ledger.credit_restoring(post, account, rest, from_txn_ids=[hold_txn.pk], now=now)
    _touch(account, now)
    ledger.post(post)
    hold.state = Hold.State.CAPTURED
    hold.captured_amount = amount
    hold.closed_at = now
    hold.save(update_fields=["state", "captured_amount", "closed_at"])
    emit_transaction("hold.captured", txn, account, hold=hold_payload(hold))
    return PointsResult(txn, account, hold=hold)


@transaction.atomic
def hold_release(*, hold: Hold, actor: Actor, reason: str = "", expired: bool = False) -> PointsResult:
    """Give held points back to the lots they came from. ``expired`` is for the job that
    releases holds past their expiry (it also runs for terminated members)."""
    now = timezone.now()
    hold, account = _lock_hold(hold)
    if not expired:
        check_member(hold.member, spending=False)
    if hold.state != Hold.State.ACTIVE:
        raise HoldNotActiveError(f"Hold {hold.pk} is {hold.state}.", state=hold.state)
    if expired and hold.expires_at > now:
        raise HoldNotActiveError(f"Hold {hold.pk} has not expired.", state=hold.state)
    txn = Transaction.objects.create(
        **_txn_fields(
            member=hold.member,
            currency=account.currency,
            kind=K.RELEASE,
            amount=hold.amount,
            direction=0,
            actor=actor,
            now=now,
            description="Hold expired" if expired else "Hold released",
            reason=reason,
            hold=hold,
        )
    )
    post = ledger.Posting(txn)
    hold_txn = Transaction.objects.get(hold=hold, kind=K.HOLD)
    ledger.credit_restoring(
        post, account, hold.amount, from_txn_ids=[hold_txn.pk], now=now, bucket_from=B.HELD
    )
    ledger.post(post)
    hold.state = Hold.State.EXPIRED if expired else Hold.State.RELEASED
    hold.closed_at = now
    hold.save(update_fields=["state", "closed_at"])
    emit_transaction("hold.released", txn, account, hold=hold_payload(hold))
    return PointsResult(txn, account, hold=hold)
