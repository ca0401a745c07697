"""Export kinds of the points app (jobs app), as CSV or JSON files:

- ``transactions``: the ledger transactions of a range of days (program time zone);
- ``balances``: every member account's balances;
- ``liability``: per currency, the points members hold and their money value.

Rows are read with ``.iterator()`` as plain values (no model instances), so writing a
file of any length keeps memory flat.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.utils import timezone
from rest_framework import serializers

from jobs.registry import Column, ExportKind, register_export
from membership_site.api.serializers import StrictSerializer
from programs.models import Program

from .models import Account, Currency, Transaction

_STREAM_CHUNK = 2000


class _CurrencyParams(StrictSerializer):
    currency = serializers.CharField(
        required=False, max_length=20, help_text="Only this points currency (code). Default: all."
    )

    def validate_currency(self, value: str) -> str:
        code = value.strip().upper()
        program_id = self.context.get("program_id")
        if program_id is not None and not Currency.objects.filter(program_id=program_id, code=code).exists():
            raise serializers.ValidationError(
                f"No currency '{value}' in this program.", code="unknown_currency"
            )
        return code


class TransactionsExportParams(_CurrencyParams):
    """``from`` and ``to`` are days in the program's time zone, both included."""

    kind = serializers.ChoiceField(
        choices=Transaction.Kind.choices, required=False, help_text="Only this transaction kind."
    )

    def get_fields(self):
        # "from" is a Python keyword: the fields are added here rather than as attributes.
        fields = super().get_fields()
        fields["from"] = serializers.DateField(
            help_text="First day (YYYY-MM-DD, program time zone), included. By occurred_at."
        )
        fields["to"] = serializers.DateField(help_text="Last day (YYYY-MM-DD, program time zone), included.")
        return fields

    def validate(self, data):
        if data["to"] < data["from"]:
            raise serializers.ValidationError({"to": ["'to' is before 'from'."]}, code="invalid")
        if data["to"] >= date.max:  # the range ends at midnight after 'to' (day_range)
            raise serializers.ValidationError({"to": ["'to' is before 9999-12-31."]}, code="invalid")
        return data


def day_range(program: Program, first: date, last: date) -> tuple[datetime, datetime]:
    """The instants [start, end) covering the program-local days ``first`` to ``last``:
    from local midnight of ``first`` to local midnight of the day after ``last``."""
    tz = program.tz
    start = timezone.make_aware(datetime.combine(first, time.min), tz)
    end = timezone.make_aware(datetime.combine(last + timedelta(days=1), time.min), tz)
    return start, end


# --- transactions ----------------------------------------------------------------------------

TRANSACTION_COLUMNS = (
    Column("id", "Ledger transaction id (the API's transaction id)."),
    Column("occurred_at", "When it happened (ISO 8601, UTC); the range is on this time."),
    Column("recorded_at", "When the ledger recorded it."),
    Column("kind", "earn, redeem, adjust, transfer, reverse, expire, activate, hold, capture, release."),
    Column("currency", "Points currency code."),
    Column("member_id", "The member whose points moved."),
    Column("member_number", "Their member number."),
    Column("counterparty_member_id", "Transfers: the recipient."),
    Column("counterparty_number", "Transfers: the recipient's member number."),
    Column("amount", "Points, always positive."),
    Column(
        "signed_amount",
        "The change to the member's points: negative for debits, 0 for holds, releases and activations.",
    ),
    Column("reference", "Receipt, order or adjustment reference."),
    Column("reason", "Adjustments and reversals: the reason given."),
    Column("description", "Free text."),
    Column("location", "Location code."),
    Column("reverses", "Reversals: the id of the transaction reversed."),
    Column("hold_id", "Hold transactions: the hold."),
    Column("pending_until", "Earns: pending until then."),
    Column("actor", "Who did it: user:<id>, integration:<id> or empty for the system."),
)
_TRANSACTION_FIELDS = (
    "id",
    "occurred_at",
    "recorded_at",
    "kind",
    "currency__code",
    "member_id",
    "member__number",
    "counterparty_id",
    "counterparty__number",
    "amount",
    "direction",
    "reference",
    "reason",
    "description",
    "location__code",
    "reverses_id",
    "hold_id",
    "pending_until",
    "actor_user_id",
    "actor_integration_id",
)


def _transactions(program_id: int, params: dict[str, Any]) -> QuerySet[Transaction]:
    program = Program.objects.get(pk=program_id)
    start, end = day_range(program, date.fromisoformat(params["from"]), date.fromisoformat(params["to"]))
    transactions = Transaction.objects.filter(
        program_id=program_id, occurred_at__gte=start, occurred_at__lt=end
    )
    if params.get("currency"):
        transactions = transactions.filter(currency__code=params["currency"])
    if params.get("kind"):
        transactions = transactions.filter(kind=params["kind"])
    return transactions


def count_transactions(program_id: int, params: dict[str, Any]) -> int:
    return _transactions(program_id, params).count()


def _actor(user_id: int | None, integration_id: int | None) -> str:
    if integration_id:
        return f"integration:{integration_id}"
    if user_id:
        return f"user:{user_id}"
    return ""


def transaction_rows(program_id: int, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """In occurred_at order (ties by id): the (program, occurred_at) index serves the range."""
    values = _transactions(program_id, params).order_by("occurred_at", "id").values_list(*_TRANSACTION_FIELDS)
    for (
        pk,
        occurred_at,
        recorded_at,
        kind,
        currency,
        member_id,
        member_number,
        counterparty_id,
        counterparty_number,
        amount,
        direction,
        reference,
        reason,
        description,
        location,
        reverses_id,
        hold_id,
        pending_until,
        user_id,
        integration_id,
    ) in values.iterator(chunk_size=_STREAM_CHUNK):
        yield {
            "id": pk,
            "occurred_at": occurred_at,
            "recorded_at": recorded_at,
            "kind": kind,
            "currency": currency,
            "member_id": member_id,
            "member_number": member_number,
            "counterparty_member_id": counterparty_id,
            "counterparty_number": counterparty_number,
            "amount": amount,
            "signed_amount": amount * direction,
            "reference": reference,
            "reason": reason,
            "description": description,
            "location": location,
            "reverses": reverses_id,
            "hold_id": hold_id,
            "pending_until": pending_until,
            "actor": _actor(user_id, integration_id),
        }


# --- balances --------------------------------------------------------------------------------

BALANCE_COLUMNS = (
    Column("member_id", "The member."),
    Column("member_number", "Their member number."),
    Column("currency", "Points currency code."),
    Column("available", "Spendable now."),
    Column("pending", "Earned, not spendable yet."),
    Column("held", "Reserved by active holds."),
    Column("lifetime_earned", "Points earned in all (net of reversed earns)."),
)
_BALANCE_FIELDS = (
    "member_id",
    "member__number",
    "currency__code",
    "available",
    "pending",
    "held",
    "lifetime_earned",
)


class BalancesExportParams(_CurrencyParams):
    pass


def _accounts(program_id: int, params: dict[str, Any]) -> QuerySet[Account]:
    accounts = Account.objects.filter(program_id=program_id, kind=Account.Kind.MEMBER)
    if params.get("currency"):
        accounts = accounts.filter(currency__code=params["currency"])
    return accounts


def count_balances(program_id: int, params: dict[str, Any]) -> int:
    return _accounts(program_id, params).count()


def balance_rows(program_id: int, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One row per member account (accounts exist from a member's first points in a
    currency), by member then currency."""
    values = (
        _accounts(program_id, params).order_by("member_id", "currency__code").values_list(*_BALANCE_FIELDS)
    )
    for row in values.iterator(chunk_size=_STREAM_CHUNK):
        yield dict(zip(("member_id", "member_number", "currency", *_BALANCE_FIELDS[3:]), row, strict=True))


# --- liability -------------------------------------------------------------------------------

LIABILITY_COLUMNS = (
    Column("currency", "Points currency code."),
    Column("name", "Its name."),
    Column("is_active", "Whether it is switched on."),
    Column("accounts", "Member accounts in it."),
    Column("available", "Sum of available points."),
    Column("pending", "Sum of pending points."),
    Column("held", "Sum of held points."),
    Column("outstanding", "available + pending + held: the points the program owes."),
    Column("value_points", "Cash value: this many points ..."),
    Column("value_amount", "... are worth this much money."),
    Column("money_currency", "The program's money currency (ISO 4217)."),
    Column(
        "money_value",
        "outstanding x value_amount / value_points, rounded half-up to the money currency's minor unit.",
    ),
)


def count_liability(program_id: int, params: dict[str, Any]) -> int:
    return Currency.objects.filter(program_id=program_id).count()


def liability_rows(program_id: int, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One row per currency of the program (zeros for one nobody holds), from one grouped
    query over the member accounts."""
    program = Program.objects.get(pk=program_id)
    sums = {
        row["currency_id"]: row
        for row in Account.objects.filter(program_id=program_id, kind=Account.Kind.MEMBER)
        .values("currency_id")
        .annotate(
            accounts=Count("id"),
            available=Sum("available"),
            pending=Sum("pending"),
            held=Sum("held"),
        )
        .order_by()
    }
    for currency in Currency.objects.filter(program_id=program_id).order_by("code"):
        totals = sums.get(currency.pk, {})
        available, pending, held = (totals.get(name) or 0 for name in ("available", "pending", "held"))
        outstanding = available + pending + held
        yield {
            "currency": currency.code,
            "name": currency.name,
            "is_active": currency.is_active,
            "accounts": totals.get("accounts") or 0,
            "available": available,
            "pending": pending,
            "held": held,
            "outstanding": outstanding,
            "value_points": currency.value_points,
            "value_amount": currency.value_amount,
            "money_currency": program.currency,
            "money_value": currency.money_value(outstanding, program.currency),
        }


TRANSACTIONS_EXPORT = ExportKind(
    name="transactions",
    description="Ledger transactions of a range of days (by occurred_at, program time zone).",
    columns=TRANSACTION_COLUMNS,
    rows=transaction_rows,
    count=count_transactions,
    scope="points:read",
    params=TransactionsExportParams,
)
BALANCES_EXPORT = ExportKind(
    name="balances",
    description="Balances (available, pending, held) per member and currency.",
    columns=BALANCE_COLUMNS,
    rows=balance_rows,
    count=count_balances,
    scope="points:read",
    params=BalancesExportParams,
)
LIABILITY_EXPORT = ExportKind(
    name="liability",
    description="Per currency: the points members hold and their money value.",
    columns=LIABILITY_COLUMNS,
    rows=liability_rows,
    count=count_liability,
    scope="points:read",
)


def register() -> None:
    for kind in (TRANSACTIONS_EXPORT, BALANCES_EXPORT, LIABILITY_EXPORT):
        register_export(kind)
