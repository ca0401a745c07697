"""What the points services share: the result type, checks, reference replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError

from members.models import Member
from membership_site.actors import Actor
from membership_site.errors import InvalidInputError
from programs.models import Location

from .. import posting as ledger
from ..errors import (
    BelowMinimumRedemptionError,
    CurrencyInactiveError,
    DuplicateReferenceError,
    InsufficientPointsError,
    MemberNotActiveError,
    MemberSuspendedError,
    MemberTerminatedError,
)
from ..models import Account, Currency, Entry, Hold, Transaction
from ..selectors import default_currency

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


def _lock_for(
    member: Member, currency: Currency | None, locked: Account | None = None
) -> tuple[Currency, Account]:
    """(currency, the member's account in it, locked); an inactive currency is refused.
    ``locked``: that account, when the caller has already locked it in this transaction
    (``earning.qualifying.lock_members``); it is not locked a second time."""
    if locked is not None:
        if currency is None or locked.member_id != member.pk or locked.currency_id != currency.pk:
            raise ValueError("The locked account must be the member's account in the currency.")
        return _active_currency(member, currency), locked
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
    # Usually there is none (a new reference): the plain lookup compiles in half the time of
    # one joining the related rows, which only a replay needs.
    found = Transaction.objects.filter(program_id=program_id, kind=kind, reference=reference).values_list(
        "pk", flat=True
    )[:1]
    if not found:
        return None
    txn = Transaction.objects.select_related("location", "currency", "hold").get(pk=found[0])
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
