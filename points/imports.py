"""The ``point_adjustments`` import kind (jobs app): manual adjustments in bulk, through
``points.earning.qualifying.points_adjust_qualifying`` (the same service as the API and
the admin: the ledger's ``points_adjust``, plus the tiers' qualifying activity of source
``adjustment`` in the default currency), from the API (``POST
/api/v1/imports/point_adjustments``) and ``manage.py import_points``. A member whose rows
in a chunk are all credits gets them written together
(``qualifying.points_adjust_credits_qualifying``: the same rows, a few statements per
chunk); the others' rows go one at a time, in file order.

A row names a member (found as the member imports find them: ``match`` = number, email
or external_ref), a currency (empty: the program's default), a signed amount, a reason
and a reference. The reference is required: it is what makes a file safe to import
twice. A reference already used by the same adjustment (member, currency, amount) is
reported ``unchanged`` with the note ``duplicate_reference``; used by another operation,
the row fails with ``duplicate_reference``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db import IntegrityError, transaction

from jobs.registry import (
    CellError,
    ChunkContext,
    Column,
    ImportKind,
    ImportRow,
    RowError,
    RowResult,
    register_import,
    row_error,
)
from members.bulk import member_key, members_by_key
from members.imports import MemberMatchParams
from members.models import Member
from membership_site.errors import DomainError
from programs.models import Program

from . import posting, services
from .earning import qualifying
from .models import Account, Currency, Transaction

# Domain error codes as row error codes (the others are kept as they are).
_ROW_CODES = {
    "insufficient_points": "would_go_negative",
    "invalid": "bad_format",
    "invalid_email": "bad_format",
    "invalid_member_number": "bad_format",
    "member_not_found": "unknown_member",
}
_MAX_REFERENCE = Transaction._meta.get_field("reference").max_length
_MAX_REASON = Transaction._meta.get_field("reason").max_length
_MAX_DESCRIPTION = Transaction._meta.get_field("description").max_length

COLUMNS = (
    Column("number", "Member number (when match=number, the default).", example="1234567897"),
    Column("email", "Member e-mail (when match=email).", example="ana@example.com"),
    Column("external_ref", "Member's CRM id (when match=external_ref).", example="crm-981"),
    Column("currency", "Points currency code; empty: the program's default currency.", example="PTS"),
    Column(
        "amount",
        "Signed whole number of points: positive credits, negative debits. Not 0.",
        required=True,
        example="250",
    ),
    Column(
        "reason",
        "Why (kept with the transaction, sent in points.adjusted).",
        required=True,
        example="Goodwill",
    ),
    Column(
        "reference",
        f"Your unique id for this adjustment (at most {_MAX_REFERENCE} characters): importing "
        "the same file again changes nothing.",
        required=True,
        example="goodwill-2026-03-0001",
    ),
    Column("description", "Optional text shown in the member's history.", example="Late delivery"),
)


@dataclass(frozen=True)
class _Adjustment:
    key: str
    currency: str
    amount: int
    reason: str
    reference: str
    description: str


class _Todo(NamedTuple):
    """A readable row of a chunk, with its member and currency found."""

    row: ImportRow
    adjustment: _Adjustment
    member: Member
    currency: Currency


def _text(data: dict[str, str], name: str, limit: int, *, required: bool) -> str:
    value = data.get(name, "").strip()
    if required and not value:
        raise CellError("missing_field", f"The {name} is required.", name)
    if len(value) > limit:
        raise CellError("bad_format", f"Longer than {limit} characters.", name)
    return value


def _amount(value: str) -> int:
    value = value.strip().replace(" ", "")
    if not value:
        raise CellError("missing_field", "The amount is required.", "amount")
    try:
        amount = int(value)
    except ValueError:
        raise CellError("bad_format", f"'{value}' is not a whole number of points.", "amount") from None
    if amount == 0 or abs(amount) > services.MAX_POINTS:
        raise CellError(
            "bad_format", f"The amount must be non-zero and at most {services.MAX_POINTS}.", "amount"
        )
    return amount


def parse_adjustment_row(data: dict[str, str], match: str) -> _Adjustment:
    """Read a row's cells; raises ``CellError`` for the first unreadable one."""
    if not data.get(match, "").strip():
        raise CellError("missing_field", f"'{match}' is needed to find the member.", match)
    try:
        key = member_key(match, data[match])
    except DomainError as error:
        raise CellError("bad_format", error.detail, match) from None
    return _Adjustment(
        key=key,
        currency=data.get("currency", "").strip().upper(),
        amount=_amount(data.get("amount", "")),
        reason=_text(data, "reason", _MAX_REASON, required=True),
        reference=_text(data, "reference", _MAX_REFERENCE, required=True),
        description=_text(data, "description", _MAX_DESCRIPTION, required=False),
    )


def process_adjustments(rows: list[ImportRow], ctx: ChunkContext) -> list[RowResult]:
    program = Program.objects.get(pk=ctx.program_id)
    match = ctx.params.get("match", "number")
    results: dict[int, RowResult] = {}
    readable: list[tuple[ImportRow, _Adjustment]] = []
    for row in rows:
        try:
            readable.append((row, parse_adjustment_row(row.data, match)))
        except CellError as error:
            results[row.number] = RowResult.failed(row.number, error.error)
    members = members_by_key(
        program=program, match=match, keys=[adjustment.key for _row, adjustment in readable]
    )
    currencies = {currency.code: currency for currency in Currency.objects.filter(program=program)}
    default = next((currency for currency in currencies.values() if currency.is_default), None)

    todo: list[_Todo] = []
    for row, adjustment in readable:
        member = members.get(adjustment.key)
        currency = currencies.get(adjustment.currency) if adjustment.currency else default
        if member is None:
            results[row.number] = RowResult.failed(
                row.number,
                RowError("unknown_member", f"No member with this {match.replace('_', ' ')}.", match),
            )
        elif currency is None:
            results[row.number] = RowResult.failed(
                row.number,
                RowError(
                    "unknown_currency",
                    f"No currency '{adjustment.currency}' in this program."
                    if adjustment.currency
                    else "The program has no default currency; name one.",
                    "currency",
                ),
                object_ref=adjustment.reference,
            )
        else:
            todo.append(_Todo(row, adjustment, member, currency))

    # The chunk's transaction keeps every row it locks until it commits, so it locks up
    # front what its rows will lock, in the order every earning write keeps
    # (``qualifying``): the members' tier rows in member id order, then their accounts
    # (created if missing) in id order, currencies in a fixed order; then the rows run by
    # member id (file order for one member's rows), taking the members' event counters in
    # that order. Two jobs on the same members wait for each other instead of
    # deadlocking. Only the accounts the rows use are created (not every member in every
    # currency of the file).
    by_currency: dict[int, tuple[Currency, dict[int, Member]]] = {}
    for _row, _adjustment, member, currency in todo:
        if currency.is_active and member.status != Member.Status.TERMINATED:  # the others fail
            by_currency.setdefault(currency.pk, (currency, {}))[1][member.pk] = member
    locking = {pk: member for _currency, members_ in by_currency.values() for pk, member in members_.items()}
    qualifying.lock_members(list(locking.values()), [], actor=ctx.actor)  # tier rows only
    accounts: dict[tuple[int, int], Account] = {}
    for _pk, (currency, currency_members) in sorted(by_currency.items()):  # currencies in a fixed order too
        for member_id, account in posting.lock_accounts(currency_members.values(), currency).items():
            accounts[(member_id, currency.pk)] = account
    todo.sort(key=lambda item: (item.member.pk, item.row.number))
    batched = _batchable(todo, accounts, program)
    if batched:
        try:
            results.update(_credit_together(batched, accounts, program, ctx))
        except IntegrityError:
            # A reference taken meanwhile by another request: the batch is rolled back (its
            # savepoint) and its rows go one by one, which reports that row as it should.
            batched = []
    done = {item.row.number for item in batched}
    for row, adjustment, member, currency in todo:
        if row.number not in done:
            results[row.number] = _adjust(row, adjustment, member, currency, ctx)
    return [results[row.number] for row in rows]


def _batchable(todo: list[_Todo], accounts: dict[tuple[int, int], Account], program: Program) -> list[_Todo]:
    """The rows that can be written together (``points_adjust_credits``): those of members
    whose rows in this chunk are all credits the batch takes, with references not used
    yet. A member with any other row keeps all of theirs one by one, so that their rows
    still apply in file order (a debit before a credit fails as it would alone)."""
    used = set(
        Transaction.objects.filter(
            program_id=program.pk,
            kind=Transaction.Kind.ADJUST,
            reference__in=[item.adjustment.reference for item in todo],
        ).values_list("reference", flat=True)
    )
    excluded = set()
    for _row, adjustment, member, currency in todo:
        account = accounts.get((member.pk, currency.pk))
        if (
            account is None
            or adjustment.reference in used
            or not services.credit_batchable(
                member=member, currency=currency, account=account, amount=adjustment.amount
            )
        ):
            excluded.add(member.pk)
    return [item for item in todo if item.member.pk not in excluded]


def _credit_together(
    batched: list[_Todo], accounts: dict[tuple[int, int], Account], program: Program, ctx: ChunkContext
) -> dict[int, RowResult]:
    """Write the batchable rows per currency, a few statements each; every row ``created``."""
    results = {}
    by_currency: dict[int, list[_Todo]] = {}
    for item in batched:
        by_currency.setdefault(item.currency.pk, []).append(item)
    with transaction.atomic():
        for _pk, items in sorted(by_currency.items()):
            currency = items[0].currency
            credits = [
                services.Credit(
                    member=member,
                    account=accounts[(member.pk, currency.pk)],
                    amount=adjustment.amount,
                    reason=adjustment.reason,
                    reference=adjustment.reference,
                    description=adjustment.description,
                    metadata=_metadata(row, ctx),
                )
                for row, adjustment, member, _currency in items
            ]
            txns = qualifying.points_adjust_credits_qualifying(
                program=program, currency=currency, credits=credits, actor=ctx.actor
            )
            for (row, adjustment, _member, _currency), txn in zip(items, txns, strict=True):
                results[row.number] = RowResult(
                    row.number, "created", object_id=txn.pk, object_ref=adjustment.reference
                )
    return results


def _metadata(row: ImportRow, ctx) -> dict[str, Any]:
    metadata: dict[str, Any] = {"import_row": row.number}
    if ctx.job_id is not None:
        metadata["import_job"] = ctx.job_id
    return metadata


def _adjust(row: ImportRow, adjustment: _Adjustment, member: Member, currency: Currency, ctx) -> RowResult:
    metadata = _metadata(row, ctx)
    try:
        # The service is atomic (ledger write and qualifying activity together): a failing
        # row leaves nothing behind. Its own locks are already held (see above).
        result = qualifying.points_adjust_qualifying(
            member=member,
            amount=adjustment.amount,
            reason=adjustment.reason,
            actor=ctx.actor,
            currency=currency,
            reference=adjustment.reference,
            description=adjustment.description,
            metadata=metadata,
        )
    except DomainError as error:
        return RowResult.failed(row.number, row_error(error, _ROW_CODES), object_ref=adjustment.reference)
    if not result.created:
        return RowResult(
            row.number,
            "unchanged",
            errors=[
                RowError(
                    "duplicate_reference",
                    f"Already done: reference '{adjustment.reference}' is transaction "
                    f"{result.transaction.pk}.",
                    "reference",
                )
            ],
            object_id=result.transaction.pk,
            object_ref=adjustment.reference,
        )
    return RowResult(row.number, "created", object_id=result.transaction.pk, object_ref=adjustment.reference)


def _keys(data: dict[str, str], params: dict[str, Any]) -> Iterable[tuple[str, str]]:
    reference = (data.get("reference") or "").strip()
    return [("reference", reference)] if reference else []


POINT_ADJUSTMENTS = ImportKind(
    name="point_adjustments",
    description="Manual points adjustments (signed), one per row, each with its reason and a "
    "unique reference.",
    columns=COLUMNS,
    process=process_adjustments,
    scope="points:write",
    params=MemberMatchParams,
    row_keys=_keys,
    required_columns=lambda params: [params.get("match", "number"), "amount", "reason", "reference"],
    error_codes=(
        "unknown_member",
        "unknown_currency",
        "would_go_negative",
        "duplicate_reference",
        "member_terminated",
        "currency_inactive",
    ),
)


def register() -> None:
    register_import(POINT_ADJUSTMENTS)
