"""Reads of the points ledger: currencies, balances, transactions, holds, expiring points."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from members.errors import MemberNotFoundError
from members.models import Member
from programs.models import Program

from .errors import (
    CurrencyNotFoundError,
    HoldNotFoundError,
    TransactionNotFoundError,
    UnknownCurrencyError,
)
from .expiry import inactivity_expiry, last_valid_day
from .models import Account, Currency, Hold, Lot, Transaction


def currency_list(*, program: Program) -> QuerySet[Currency]:
    return Currency.objects.filter(program=program).select_related("program").order_by("code")


def currency_get(*, program: Program, code: str) -> Currency:
    try:
        return currency_list(program=program).get(code=code.upper())
    except Currency.DoesNotExist:
        raise CurrencyNotFoundError(f"No currency '{code}' in this program.") from None


def default_currency(*, program_id: int) -> Currency:
    currency = (
        Currency.objects.select_related("program").filter(program_id=program_id, is_default=True).first()
    )
    if currency is None:
        raise UnknownCurrencyError("This program has no default points currency.", field="currency")
    return currency


def currency_for_request(*, program: Program, code: str | None, field: str = "currency") -> Currency | None:
    """The currency a request names (None: the program's default, chosen by the service)."""
    if not code:
        return None
    currency = Currency.objects.select_related("program").filter(program=program, code=code.upper()).first()
    if currency is None:
        raise UnknownCurrencyError(f"No currency '{code}' in this program.", field=field)
    return currency


def member_for_points(*, program: Program, member_id: int | str, field: str | None = None) -> Member:
    """The member (no prefetches: ledger writes need only its status and program)."""
    try:
        member = Member.objects.get(program=program, pk=int(member_id))
    except (Member.DoesNotExist, ValueError, TypeError):
        raise MemberNotFoundError(f"No member {member_id} in this program.") from None
    member.program = program  # known already: no join needed
    return member


def transaction_list(*, program: Program) -> QuerySet[Transaction]:
    return Transaction.objects.filter(program=program).select_related("currency", "location")


def member_transactions(*, member: Member) -> QuerySet[Transaction]:
    """Every transaction that moved the member's points (as owner or transfer recipient)."""
    return Transaction.objects.filter(Q(member=member) | Q(counterparty=member)).select_related(
        "currency", "location"
    )


def transaction_get(*, program: Program, transaction_id: int | str) -> Transaction:
    try:
        return transaction_list(program=program).get(pk=int(transaction_id))
    except (Transaction.DoesNotExist, ValueError, TypeError):
        raise TransactionNotFoundError(f"No transaction {transaction_id} in this program.") from None


def hold_get(*, program: Program, hold_id: int | str) -> Hold:
    try:
        return Hold.objects.select_related("account__currency").get(program=program, pk=int(hold_id))
    except (Hold.DoesNotExist, ValueError, TypeError):
        raise HoldNotFoundError(f"No hold {hold_id} in this program.") from None


# --- Balances ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    currency: Currency
    available: int = 0
    pending: int = 0
    held: int = 0
    lifetime_earned: int = 0
    next_expiry_at: datetime | None = None
    next_expiry_amount: int = 0

    @property
    def next_expiry_on(self) -> date | None:
        if self.next_expiry_at is None:
            return None
        return last_valid_day(self.next_expiry_at, self.currency.program.tz)

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency.code,
            "available": self.available,
            "pending": self.pending,
            "held": self.held,
            "lifetime_earned": self.lifetime_earned,
            "next_expiry_at": self.next_expiry_at,
            "next_expiry_on": self.next_expiry_on,
            "next_expiry_amount": self.next_expiry_amount,
        }


def _next_expiries(account_ids: list[int]) -> dict[int, tuple[datetime, int]]:
    """Per account: the earliest expiry of its spendable lots and how many points expire
    then (one query)."""
    if not account_ids:
        return {}
    earliest = (
        Lot.objects.filter(
            account_id=OuterRef("account_id"), remaining__gt=0, is_pending=False, expires_at__isnull=False
        )
        .order_by("expires_at")
        .values("expires_at")[:1]
    )
    rows = (
        Lot.objects.filter(account_id__in=account_ids, remaining__gt=0, is_pending=False)
        .filter(expires_at=Subquery(earliest))
        .values("account_id", "expires_at")
        .annotate(total=Sum("remaining"))
        .order_by()
    )
    return {row["account_id"]: (row["expires_at"], row["total"]) for row in rows}


def member_balances(*, members: list[Member]) -> dict[int, list[Balance]]:
    """Balances per member, one per active currency of their program (zeros before first
    use) plus inactive currencies they still hold points in; three queries for any number
    of members."""
    if not members:
        return {}
    program_ids = {member.program_id for member in members}
    currencies = list(Currency.objects.filter(program_id__in=program_ids).select_related("program"))
    accounts = list(Account.objects.filter(member_id__in=[m.pk for m in members]))
    expiries = _next_expiries([account.pk for account in accounts])
    by_member: dict[int, dict[int, Account]] = defaultdict(dict)
    for account in accounts:
        by_member[account.member_id][account.currency_id] = account
    result: dict[int, list[Balance]] = {}
    for member in members:
        balances = []
        for currency in sorted(currencies, key=lambda c: (not c.is_default, c.code)):
            if currency.program_id != member.program_id:
                continue
            account = by_member[member.pk].get(currency.pk)
            if account is None:
                if currency.is_active:
                    balances.append(Balance(currency=currency))
                continue
            next_at, next_amount = expiries.get(account.pk, (None, 0))
            deadline = inactivity_expiry(currency, account.last_activity_at)
            if deadline is not None and account.available > 0:
                next_at, next_amount = deadline, account.available
            balances.append(
                Balance(
                    currency=currency,
                    available=account.available,
                    pending=account.pending,
                    held=account.held,
                    lifetime_earned=account.lifetime_earned,
                    next_expiry_at=next_at,
                    next_expiry_amount=next_amount,
                )
            )
        result[member.pk] = balances
    return result


def profile_balances(*, members: list[Member]) -> tuple[str, dict[int, list[dict[str, Any]]]]:
    """The ``members.hooks.profile_sections`` receiver: a "balances" section."""
    balances = member_balances(members=members)
    return "balances", {
        member_id: [balance.as_dict() for balance in items] for member_id, items in balances.items()
    }


# --- Expiring points ---------------------------------------------------------------------


def member_expiring(
    *, member: Member, within: timedelta, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Points that expire within ``within`` from now, per currency and expiry date (points
    already past their expiry that the expiry job has not processed yet included)."""
    now = now or timezone.now()
    until = now + within
    currencies = {
        c.pk: c for c in Currency.objects.filter(program_id=member.program_id).select_related("program")
    }
    rows = (
        Lot.objects.filter(account__member=member, remaining__gt=0, is_pending=False, expires_at__lte=until)
        .values("account__currency_id", "expires_at")
        .annotate(amount=Sum("remaining"))
        .order_by("expires_at", "account__currency_id")
    )
    items = [
        {
            "currency": currencies[row["account__currency_id"]].code,
            "expires_at": row["expires_at"],
            "expires_on": last_valid_day(row["expires_at"], member.program.tz),
            "amount": row["amount"],
        }
        for row in rows
    ]
    for account in Account.objects.filter(member=member, available__gt=0):
        currency = currencies[account.currency_id]
        deadline = inactivity_expiry(currency, account.last_activity_at)
        if deadline is not None and deadline <= until:
            items.append(
                {
                    "currency": currency.code,
                    "expires_at": deadline,
                    "expires_on": last_valid_day(deadline, member.program.tz),
                    "amount": account.available,
                }
            )
    items.sort(key=lambda item: (item["expires_at"], item["currency"]))
    return items


# --- Liability (admin) -------------------------------------------------------------------


def currency_liability(*, currency: Currency) -> dict[str, Any]:
    """Points the program owes its members in this currency and their money value."""
    totals = Account.objects.filter(currency=currency, kind=Account.Kind.MEMBER).aggregate(
        available=Sum("available"), pending=Sum("pending"), held=Sum("held")
    )
    totals = {name: value or 0 for name, value in totals.items()}
    outstanding = totals["available"] + totals["pending"] + totals["held"]
    money = currency.program.currency
    return {
        **totals,
        "outstanding": outstanding,
        "money_currency": money,
        "money_value": currency.money_value(outstanding, money),
    }


def export_section(*, member: Member) -> tuple[str, dict[str, Any]]:
    """The ``members.hooks.export_sections`` receiver (GDPR right of access): the member's
    balances, every transaction that moved their points, and their holds."""
    from .serializers import transaction_data

    transactions = member_transactions(member=member).order_by("id")
    holds = Hold.objects.filter(member=member).select_related("account__currency").order_by("id")
    return "points", {
        "balances": [balance.as_dict() for balance in member_balances(members=[member])[member.pk]],
        "transactions": [transaction_data(txn, member.pk) for txn in transactions],
        "holds": [
            {
                "id": hold.pk,
                "currency": hold.account.currency.code,
                "amount": hold.amount,
                "captured_amount": hold.captured_amount,
                "state": hold.state,
                "reference": hold.reference,
                "created_at": hold.created_at,
                "expires_at": hold.expires_at,
                "closed_at": hold.closed_at,
            }
            for hold in holds
        ],
    }
