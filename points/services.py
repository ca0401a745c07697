"""Writes of the points ledger: currencies, earn, redeem, adjust, transfer, reverse and
holds. Each service is one database transaction that also writes its event(s).

Every member-facing service returns a ``PointsResult``: the transaction, the member's
account with its balances after it, and ``created=False`` when a repeated ``reference``
returned the original instead of writing a second transaction.

Lock order (everyone keeps it, so nothing deadlocks): a caller's own rows first (e.g. the
tier row that ``tiers.services.activity_record`` locks in a purchase), then the members'
points accounts in id order, then the members' event counters (taken when the events are
written, at the end). A purchase service therefore records tier activity *before* calling
``points_earn`` / ``points_reverse`` in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from members.models import Member
from membership_site.actors import Actor
from membership_site.errors import InvalidInputError
from programs.models import Location, Program

from . import posting as ledger
from .errors import (
    BelowMinimumRedemptionError,
    CaptureExceedsHoldError,
    CurrencyCodeTakenError,
    CurrencyInactiveError,
    DuplicateReferenceError,
    HoldNotActiveError,
    InsufficientPointsError,
    InvalidExpiryPolicyError,
    MemberNotActiveError,
    MemberSuspendedError,
    MemberTerminatedError,
    NegativeBalancesExistError,
    NotReversibleError,
    RecipientNotFoundError,
    ReversalExceedsRemainingError,
    TransferToSelfError,
)
from .events import emit_transaction, hold_payload
from .expiry import lot_expiry
from .models import Account, Currency, Entry, Hold, Lot, Transaction
from .selectors import default_currency

B = Entry.Bucket
K = Transaction.Kind
SYS = Account.Kind
MS = Member.Status
P = Currency.ExpiryPolicy

REVERSIBLE_KINDS = {K.EARN, K.REDEEM, K.ADJUST, K.TRANSFER, K.CAPTURE}
MAX_POINTS = 10**12


@dataclass(frozen=True)
class PointsResult:
    transaction: Transaction
    account: Account
    created: bool = True
    counterparty_account: Account | None = None
    hold: Hold | None = None


# --- Checks ------------------------------------------------------------------------------


def _check_amount(amount: int, *, field: str = "amount", signed: bool = False) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidInputError("Points are whole numbers.", field=field)
    if (amount == 0 if signed else amount <= 0) or abs(amount) > MAX_POINTS:
        expected = "non-zero" if signed else "positive"
        raise InvalidInputError(f"The amount must be {expected} and at most {MAX_POINTS}.", field=field)


def check_member(member: Member, *, spending: bool) -> None:
    """Terminated members can do nothing; pending and suspended ones cannot spend
    (redeem, hold, capture, transfer out)."""
    if member.status == MS.TERMINATED:
        raise MemberTerminatedError(f"Member {member.number} is terminated.", member_id=member.pk)
    if spending and member.status == MS.SUSPENDED:
        raise MemberSuspendedError(f"Member {member.number} is suspended.", member_id=member.pk)
    if spending and member.status == MS.PENDING:
        raise MemberNotActiveError(f"Member {member.number} is not active yet.", member_id=member.pk)


def _active_currency(member: Member, currency: Currency | None) -> Currency:
    currency = currency or default_currency(program_id=member.program_id)
    if not currency.is_active:
        raise CurrencyInactiveError(f"The currency {currency.code} is not active.", currency=currency.code)
    return currency


def _requested_currency(member: Member, currency: Currency | None, reference: str) -> Currency | None:
    """The currency to use, or None for the program's default when it can be found while
    locking the account (one query instead of two on the hot path)."""
    if currency is None and reference:
        return default_currency(program_id=member.program_id)
    return currency


def _lock_for(member: Member, currency: Currency | None) -> tuple[Currency, Account]:
    """(currency, the member's account in it, locked); an inactive currency is refused."""
    account = None
    if currency is None:
        account = ledger.lock_default_account(member)
        currency = account.currency if account is not None else default_currency(program_id=member.program_id)
    if account is None:
        account = ledger.lock_account(member, currency)
    if not currency.is_active:
        raise CurrencyInactiveError(f"The currency {currency.code} is not active.", currency=currency.code)
    return currency, account


def _check_minimum(currency: Currency, amount: int) -> None:
    if amount < currency.minimum_redemption:
        raise BelowMinimumRedemptionError(
            f"At least {currency.minimum_redemption} {currency.code} per redemption.",
            minimum=currency.minimum_redemption,
            requested=amount,
        )


def _check_sufficient(account: Account, amount: int) -> None:
    if account.available - amount < 0 and not account.allow_negative:
        raise InsufficientPointsError(
            f"{amount} points requested, {max(account.available, 0)} available.",
            available=max(account.available, 0),
            requested=amount,
            currency=account.currency.code,
        )


def _touch(account: Account, at: datetime) -> None:
    """Record activity (earning or redeeming) for the inactivity expiry policy."""
    if account.last_activity_at is None or at > account.last_activity_at:
        account.last_activity_at = at


# --- Reference handling ------------------------------------------------------------------


def _replayed(
    *,
    program_id: int,
    kind: str,
    reference: str,
    member: Member,
    currency: Currency,
    signed_amount: int | None,
    reverses_id: int | None = None,
) -> PointsResult | None:
    """The earlier transaction with this reference, if any, as a result with the member's
    current balances. A reference reused for a different member, currency, amount or
    original transaction is a 409."""
    if not reference:
        return None
    txn = (
        Transaction.objects.select_related("location", "currency", "hold")
        .filter(program_id=program_id, kind=kind, reference=reference)
        .first()
    )
    if txn is None:
        return None
    same = (
        txn.member_id == member.pk
        and txn.currency_id == currency.pk
        and (signed_amount is None or txn.signed_amount == signed_amount)
        and (reverses_id is None or txn.reverses_id == reverses_id)
    )
    if not same:
        raise DuplicateReferenceError(
            f"Reference '{reference}' was already used for transaction {txn.pk}.",
            transaction_id=txn.pk,
        )
    account = Account.objects.get(member_id=txn.member_id, currency_id=txn.currency_id)
    account.currency = currency
    counterparty = None
    if txn.counterparty_id:
        counterparty = Account.objects.get(member_id=txn.counterparty_id, currency_id=txn.currency_id)
        counterparty.currency = currency
    return PointsResult(txn, account, created=False, counterparty_account=counterparty, hold=txn.hold)


def _create_txn(replay_args: dict[str, Any], **fields: Any) -> Transaction | PointsResult:
    """Insert the transaction; a reference taken by a concurrent request that committed
    first gives that request's result instead."""
    try:
        return ledger.create_transaction(**fields)
    except IntegrityError as error:
        if fields.get("reference") and ledger.is_reference_clash(error):
            replay = _replayed(**replay_args)
            if replay is not None:
                return replay
        raise


def _txn_fields(
    *,
    member: Member,
    currency: Currency,
    kind: str,
    amount: int,
    direction: int,
    actor: Actor,
    now: datetime,
    reference: str = "",
    description: str = "",
    reason: str = "",
    occurred_at: datetime | None = None,
    location: Location | None = None,
    metadata: dict | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "program_id": member.program_id,
        "currency": currency,
        "kind": kind,
        "member": member,
        "amount": amount,
        "direction": direction,
        "reference": reference or "",
        "description": description or "",
        "reason": reason or "",
        "occurred_at": occurred_at or now,
        "location": location,
        "metadata": metadata or {},
        **actor.as_fields(),
        **extra,
    }


# --- Currencies --------------------------------------------------------------------------

_CURRENCY_FIELDS = (
    "name",
    "is_default",
    "value_points",
    "value_amount",
    "allow_negative",
    "expiry_policy",
    "expiry_period",
    "expiry_month",
    "expiry_day",
    "minimum_redemption",
    "is_active",
)


def currency_check_policy(currency: Currency) -> None:
    """Refuse expiry and value settings that do not fit together (no database access)."""
    policy = currency.expiry_policy
    if policy not in P.values:
        raise InvalidExpiryPolicyError(f"Unknown expiry policy '{policy}'.", field="expiry_policy")
    if policy in (P.ROLLING_DAYS, P.ROLLING_MONTHS, P.INACTIVITY) and not currency.expiry_period:
        raise InvalidExpiryPolicyError(
            f"The {policy} policy needs expiry_period >= 1.", field="expiry_period"
        )
    if policy == P.FIXED_DATE:
        month, day = currency.expiry_month, currency.expiry_day
        if not month or not 1 <= month <= 12:
            raise InvalidExpiryPolicyError("A fixed date needs expiry_month 1-12.", field="expiry_month")
        longest = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}.get(month, 31)
        if not day or not 1 <= day <= longest:
            raise InvalidExpiryPolicyError(f"Month {month} has no day {day}.", field="expiry_day")
    else:
        currency.expiry_month = currency.expiry_day = None
    if currency.value_points is None or currency.value_points <= 0:
        raise InvalidInputError("value_points must be positive.", field="value_points")
    if currency.value_amount is None or Decimal(currency.value_amount) < 0:
        raise InvalidInputError("value_amount cannot be negative.", field="value_amount")


@transaction.atomic
def currency_create(
    *,
    program: Program,
    code: str,
    name: str,
    actor: Actor,
    is_default: bool = False,
    **fields: Any,
) -> Currency:
    """Create a points currency (with its system accounts). The program's first currency
    becomes its default."""
    unknown = set(fields) - set(_CURRENCY_FIELDS)
    if unknown:
        raise TypeError(f"Unknown currency fields: {sorted(unknown)}")
    code = code.upper()
    if Currency.objects.filter(program=program, code=code).exists():
        raise CurrencyCodeTakenError(f"Currency '{code}' already exists.", field="code")
    currency = Currency(program=program, code=code, name=name, **fields)
    currency_check_policy(currency)
    has_default = Currency.objects.filter(program=program, is_default=True).exists()
    if is_default and has_default:
        Currency.objects.filter(program=program, is_default=True).update(is_default=False)
    currency.is_default = is_default or not has_default
    try:
        with transaction.atomic():
            currency.save()
    except IntegrityError:
        raise CurrencyCodeTakenError(f"Currency '{code}' already exists.", field="code") from None
    currency.program = program
    ledger.ensure_system_accounts(currency)
    return currency


@transaction.atomic
def currency_update(*, currency: Currency, actor: Actor, **fields: Any) -> Currency:
    """Change a currency's settings. Expiry policy changes apply to points earned from now
    on; switching off negative balances is refused while any account is negative."""
    unknown = set(fields) - set(_CURRENCY_FIELDS)
    if unknown:
        raise TypeError(f"Unknown currency fields: {sorted(unknown)}")
    currency = Currency.objects.select_for_update().select_related("program").get(pk=currency.pk)
    if fields.get("is_default") is False and currency.is_default:
        raise InvalidInputError(
            "Make another currency the default instead of unsetting this one.", field="is_default"
        )
    for name, value in fields.items():
        setattr(currency, name, value)
    currency_check_policy(currency)
    if fields.get("is_default"):
        Currency.objects.filter(program_id=currency.program_id, is_default=True).exclude(
            pk=currency.pk
        ).update(is_default=False)
    currency.save()
    if "allow_negative" in fields:
        accounts = Account.objects.filter(currency=currency, kind=SYS.MEMBER)
        if not currency.allow_negative and accounts.filter(available__lt=0).exists():
            raise NegativeBalancesExistError("Some member accounts are below zero.", field="allow_negative")
        try:
            with transaction.atomic():
                accounts.exclude(allow_negative=currency.allow_negative).update(
                    allow_negative=currency.allow_negative
                )
        except IntegrityError:  # an account went negative meanwhile: the CHECK refused
            raise NegativeBalancesExistError(
                "Some member accounts are below zero.", field="allow_negative"
            ) from None
    return currency


def program_default_currency(*, program: Program, actor: Actor) -> Currency:
    """The ``program_created`` hook: every program starts with PTS (no expiry)."""
    existing = Currency.objects.filter(program=program, code="PTS").first()
    return existing or currency_create(
        program=program, code="PTS", name="Points", is_default=True, actor=actor
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
) -> PointsResult:
    """Credit earned points in a new lot expiring by the currency's policy (counted from
    ``occurred_at``). With ``pending_until`` in the future they are pending until then:
    visible, not spendable."""
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
    currency, account = _lock_for(member, currency)
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
    emit_transaction("points.earned", txn, account)
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
) -> PointsResult:
    """A manual correction: positive amounts credit a new lot (expiring by the policy from
    now), negative ones are taken from available points first-to-expire."""
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
    currency, account = _lock_for(member, currency)
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
) -> PointsResult:
    """Undo part or all (``amount`` None) of an earn, redemption, adjustment, transfer or
    capture, never more than what remains reversible. Reversing a redemption gives the
    points back to the lots they came from, with their original expiry; reversing a
    pending earn cancels (part of) it."""
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
    emit_transaction("points.reversed", txn, *accounts_changed, reason=txn.reason)
    return PointsResult(txn, primary, counterparty_account=counterparty)


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
