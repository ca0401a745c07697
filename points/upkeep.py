"""Batch work on the ledger, shared by the Celery tasks and the management commands:
expiry, pending activation, hold expiry, expiry warnings and the ledger check.

Each unit of work (one account, one hold) is its own database transaction, so a run can
be interrupted at any point and simply run again: what was done stays done, and what is
done is not done twice (expired lots have nothing left; activated lots are no longer
pending; released holds are no longer active; a warning is recorded once).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from membership_site.actors import Actor
from programs.models import Program
from webhooks.services import event_record

from . import posting as ledger
from .errors import HoldNotActiveError
from .events import balance_payload, emit_transaction
from .expiry import inactivity_cutoff, inactivity_expiry, last_valid_day
from .models import Account, Currency, Entry, ExpiryWarning, Hold, Lot, LotMovement, Transaction
from .services import hold_release

B = Entry.Bucket
P = Currency.ExpiryPolicy
MEMBER = Account.Kind.MEMBER
Progress = Callable[[Iterable[Any]], Iterable[Any]]


def _no_progress(items: Iterable[Any]) -> Iterable[Any]:
    return items


def _batched(ids: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _lock_account_by_id(account_id: int) -> Account:
    return (
        Account.objects.select_for_update(of=("self",)).select_related("currency__program").get(pk=account_id)
    )


# --- Expiry ------------------------------------------------------------------------------


def start_of_day(day: date, program: Program) -> datetime:
    """Local midnight at the start of ``day`` in the program's timezone, in UTC."""
    return datetime.combine(day, time.min, tzinfo=program.tz).astimezone(UTC)


def expiry_due_accounts(*, at: datetime, program: Program | None = None) -> list[int]:
    """Ids of member accounts with points due to expire at ``at``."""
    lots = Lot.objects.filter(remaining__gt=0, is_pending=False, expires_at__lte=at)
    currencies = Currency.objects.filter(expiry_policy=P.INACTIVITY).select_related("program")
    if program is not None:
        lots = lots.filter(account__program=program)
        currencies = currencies.filter(program=program)
    ids = set(lots.values_list("account_id", flat=True).distinct())
    for currency in currencies:
        candidates = Account.objects.filter(
            currency=currency,
            kind=MEMBER,
            available__gt=0,
            last_activity_at__lte=inactivity_cutoff(currency, at),
        ).values_list("pk", "last_activity_at")
        for pk, last_activity_at in candidates:
            deadline = inactivity_expiry(currency, last_activity_at)
            if deadline is not None and deadline <= at:
                ids.add(pk)
    return sorted(ids)


def account_expire(*, account_id: int, at: datetime, actor: Actor) -> Transaction | None:
    """Expire the account's points that are due at ``at`` (nothing when already done)."""
    return accounts_expire(account_ids=[account_id], at=at, actor=actor).get(account_id)


@transaction.atomic
def accounts_expire(*, account_ids: Sequence[int], at: datetime, actor: Actor) -> dict[int, Transaction]:
    """Expire the points of these accounts that are due at ``at``, in one transaction and a
    fixed number of statements (the accounts locked in id order, as every writer locks
    them); accounts with nothing due get nothing. Returns the transactions by account id."""
    accounts = list(
        Account.objects.select_for_update(of=("self",))
        .select_related("currency__program")
        .filter(pk__in=account_ids)
        .order_by("pk")
    )
    # After the inactivity period every lot goes; otherwise the lots past their expiry.
    inactive = []
    for account in accounts:
        deadline = inactivity_expiry(account.currency, account.last_activity_at)
        if deadline is not None and deadline <= at:
            inactive.append(account.pk)
    due: dict[int, list[Lot]] = defaultdict(list)
    lots = Lot.objects.filter(account__in=accounts, remaining__gt=0, is_pending=False).filter(
        Q(expires_at__lte=at) | Q(account_id__in=inactive)
    )
    for lot in lots.order_by("pk"):
        due[lot.account_id].append(lot)
    work = [(account, due[account.pk]) for account in accounts]
    return ledger.expire_lots_many(work, actor=actor, now=min(at, timezone.now()), description="Expired")


@dataclass
class ExpireSummary:
    accounts: int = 0
    transactions: int = 0
    points: int = 0
    by_currency: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def points_expire(
    *,
    actor: Actor,
    at: datetime | None = None,
    on_date: date | None = None,
    program: Program | None = None,
    batch_size: int = 500,
    progress: Progress = _no_progress,
) -> ExpireSummary:
    """Expire every lot due by ``at`` (default now) or, with ``on_date``, every lot whose
    last valid day is before that date in its program's timezone. Never later than now."""
    now = timezone.now()
    summary = ExpireSummary()
    programs = [program] if program is not None else list(Program.objects.all())
    work: list[tuple[int, datetime]] = []
    for each in programs:
        cutoff = start_of_day(on_date, each) if on_date else (at or now)
        cutoff = min(cutoff, now)
        work.extend((account_id, cutoff) for account_id in expiry_due_accounts(at=cutoff, program=each))
    for batch in progress(list(_batched(work, batch_size))):
        # One transaction per batch and cut-off (each program has its own local midnight).
        by_cutoff: dict[datetime, list[int]] = defaultdict(list)
        for account_id, cutoff in batch:
            by_cutoff[cutoff].append(account_id)
        for cutoff, account_ids in by_cutoff.items():
            txns = accounts_expire(account_ids=account_ids, at=cutoff, actor=actor)
            summary.accounts += len(account_ids)
            for txn in txns.values():
                summary.transactions += 1
                summary.points += txn.amount
                summary.by_currency[txn.currency.code] += txn.amount
    return summary


# --- Pending points ----------------------------------------------------------------------


@transaction.atomic
def account_activate_pending(*, account_id: int, at: datetime, actor: Actor) -> Transaction | None:
    """Make the account's pending points whose date has come available."""
    account = _lock_account_by_id(account_id)
    lots = list(
        Lot.objects.filter(account=account, is_pending=True, remaining__gt=0, available_at__lte=at).order_by(
            "id"
        )
    )
    total = sum(lot.remaining for lot in lots)
    if not total:
        return None
    txn = Transaction.objects.create(
        program_id=account.program_id,
        currency=account.currency,
        kind=Transaction.Kind.ACTIVATE,
        member_id=account.member_id,
        amount=total,
        direction=0,
        description="Pending points became available",
        occurred_at=at,
        **actor.as_fields(),
    )
    post = ledger.Posting(txn)
    post.entry(account, B.PENDING, -total)
    shortfall = max(-account.available, 0)
    post.entry(account, B.AVAILABLE, total)
    for lot in lots:
        lot.is_pending = False
        post.changed_lots[lot.pk] = lot
        repay = min(shortfall, lot.remaining)
        if repay:  # a negative balance is paid off first
            post.move(lot, -repay)
            shortfall -= repay
    ledger.post(post)
    emit_transaction("points.activated", txn, account)
    return txn


def points_release_pending(
    *, actor: Actor, at: datetime | None = None, batch_size: int = 500, progress: Progress = _no_progress
) -> dict[str, int]:
    at = min(at or timezone.now(), timezone.now())
    ids = sorted(
        set(
            Lot.objects.filter(is_pending=True, remaining__gt=0, available_at__lte=at)
            .values_list("account_id", flat=True)
            .distinct()
        )
    )
    summary = {"accounts": 0, "points": 0}
    for batch in progress(list(_batched(ids, batch_size))):
        for account_id in batch:
            txn = account_activate_pending(account_id=account_id, at=at, actor=actor)
            if txn is not None:
                summary["accounts"] += 1
                summary["points"] += txn.amount
    return summary


# --- Holds -------------------------------------------------------------------------------


def points_expire_holds(
    *, actor: Actor, batch_size: int = 500, progress: Progress = _no_progress
) -> dict[str, int]:
    """Release every active hold past its expiry."""
    ids = list(
        Hold.objects.filter(state=Hold.State.ACTIVE, expires_at__lte=timezone.now())
        .order_by("id")
        .values_list("pk", flat=True)
    )
    summary = {"holds": 0, "points": 0}
    for batch in progress(list(_batched(ids, batch_size))):
        for hold in Hold.objects.filter(pk__in=batch).order_by("id"):
            try:
                result = hold_release(hold=hold, actor=actor, expired=True)
            except HoldNotActiveError:  # captured or released meanwhile
                continue
            summary["holds"] += 1
            summary["points"] += result.transaction.amount
    return summary


# --- Expiry warnings ---------------------------------------------------------------------


def _warning_groups(now: datetime, horizon: datetime) -> list[tuple[Account, datetime, int]]:
    rows = (
        Lot.objects.filter(remaining__gt=0, is_pending=False, expires_at__gt=now, expires_at__lte=horizon)
        .values("account_id", "expires_at")
        .annotate(amount=Sum("remaining"))
        .order_by("account_id", "expires_at")
    )
    groups = [(row["account_id"], row["expires_at"], row["amount"]) for row in rows]
    for currency in Currency.objects.filter(expiry_policy=P.INACTIVITY).select_related("program"):
        accounts = Account.objects.filter(
            currency=currency,
            kind=MEMBER,
            available__gt=0,
            last_activity_at__lte=inactivity_cutoff(currency, horizon),
        ).values_list("pk", "last_activity_at", "available")
        for pk, last_activity_at, available in accounts:
            deadline = inactivity_expiry(currency, last_activity_at)
            if deadline is not None and now < deadline <= horizon:
                groups.append((pk, deadline, available))
    accounts = Account.objects.select_related("currency__program").in_bulk({g[0] for g in groups})
    return [(accounts[pk], expires_at, amount) for pk, expires_at, amount in groups]


def points_expiry_warnings(
    *, offsets: list[int] | None = None, now: datetime | None = None, progress: Progress = _no_progress
) -> dict[str, int]:
    """Send ``points.expiring`` once per account, expiry date and offset (days before).
    When several offsets are due at once (the job did not run for a while), one event is
    sent, for the closest offset, and the farther ones are recorded as done."""
    offsets = sorted(
        {int(o) for o in (offsets if offsets is not None else settings.POINTS_EXPIRY_WARNING_DAYS)}
    )
    summary = {"warnings": 0, "points": 0}
    if not offsets:
        return summary
    now = now or timezone.now()
    for account, expires_at, amount in progress(_warning_groups(now, now + timedelta(days=max(offsets)))):
        tz = account.currency.program.tz
        expires_on = last_valid_day(expires_at, tz)
        days_left = (expires_on - now.astimezone(tz).date()).days + 1
        due = [offset for offset in offsets if days_left <= offset]
        if not due:
            continue
        with transaction.atomic():
            _warning, created = ExpiryWarning.objects.get_or_create(
                account=account, expires_at=expires_at, days_before=due[0]
            )
            if not created:
                continue
            ExpiryWarning.objects.bulk_create(
                [ExpiryWarning(account=account, expires_at=expires_at, days_before=o) for o in due[1:]],
                ignore_conflicts=True,
            )
            event_record(
                program_id=account.program_id,
                member_id=account.member_id,
                type="points.expiring",
                data={
                    "member_id": account.member_id,
                    "currency": account.currency.code,
                    "amount": amount,
                    "expires_at": expires_at,
                    "expires_on": expires_on,
                    "days_before": due[0],
                    "balance": balance_payload(account),
                },
            )
        summary["warnings"] += 1
        summary["points"] += amount
    return summary


# --- Verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    what: str
    id: int
    field: str
    stored: Any
    computed: Any

    def __str__(self) -> str:
        return f"{self.what} {self.id}: {self.field} is {self.stored}, entries say {self.computed}"


def _account_differences(accounts: list[Account]) -> list[Difference]:
    ids = [account.pk for account in accounts]
    sums: dict[tuple[int, str], int] = defaultdict(int)
    for row in (
        Entry.objects.filter(account_id__in=ids).values("account_id", "bucket").annotate(total=Sum("amount"))
    ):
        sums[row["account_id"], row["bucket"]] = row["total"]
    earned: dict[int, int] = defaultdict(int)
    earn_rows = (
        Entry.objects.filter(account_id__in=ids)
        .filter(
            Q(transaction__kind=Transaction.Kind.EARN)
            | Q(transaction__kind=Transaction.Kind.REVERSE, transaction__reverses__kind=Transaction.Kind.EARN)
        )
        .values("account_id")
        .annotate(total=Sum("amount"))
    )
    for row in earn_rows:
        earned[row["account_id"]] = row["total"]
    lots: dict[tuple[int, bool], int] = defaultdict(int)
    for row in (
        Lot.objects.filter(account_id__in=ids)
        .values("account_id", "is_pending")
        .annotate(total=Sum("remaining"))
    ):
        lots[row["account_id"], row["is_pending"]] = row["total"]
    held: dict[int, int] = defaultdict(int)
    for row in (
        Hold.objects.filter(account_id__in=ids, state=Hold.State.ACTIVE)
        .values("account_id")
        .annotate(total=Sum("amount"))
    ):
        held[row["account_id"]] = row["total"]
    found = []
    for account in accounts:
        expected = {
            "available": sums[account.pk, B.AVAILABLE],
            "pending": sums[account.pk, B.PENDING],
            "held": sums[account.pk, B.HELD],
            "lifetime_earned": earned[account.pk],
        }
        for name, computed in expected.items():
            if getattr(account, name) != computed:
                found.append(Difference("account", account.pk, name, getattr(account, name), computed))
        checks = {
            "spendable lots": (lots[account.pk, False], max(expected["available"], 0)),
            "pending lots": (lots[account.pk, True], expected["pending"]),
            "active holds": (held[account.pk], expected["held"]),
        }
        for name, (stored, computed) in checks.items():
            if stored != computed:
                found.append(Difference("account", account.pk, name, stored, computed))
        if account.available < 0 and not account.allow_negative:
            found.append(Difference("account", account.pk, "available", account.available, ">= 0"))
    return found


def points_verify_ledger(
    *, program: Program | None = None, batch_size: int = 1000, progress: Progress = _no_progress
) -> list[Difference]:
    """Recompute every member account's cached balances and every lot's remainder from the
    entries and lot movements, and check that every transaction balances. Returns the
    differences (empty when the ledger is consistent). Writes nothing."""
    differences: list[Difference] = []
    accounts = Account.objects.filter(kind=MEMBER).order_by("pk")
    transactions = Transaction.objects.all()
    entries = Entry.objects.all()
    lots = Lot.objects.all()
    if program is not None:
        accounts = accounts.filter(program=program)
        transactions = transactions.filter(program=program)
        entries = entries.filter(transaction__program=program)
        lots = lots.filter(account__program=program)
    ids = list(accounts.values_list("pk", flat=True))
    for batch in progress(list(_batched(ids, batch_size))):
        differences.extend(_account_differences(list(Account.objects.filter(pk__in=batch).order_by("pk"))))
    unbalanced = (
        entries.values("transaction_id")
        .annotate(total=Sum("amount"), count=Count("id"))
        .filter(~Q(total=0) | Q(count__lt=2))
    )
    for row in unbalanced:
        differences.append(Difference("transaction", row["transaction_id"], "entries sum", row["total"], 0))
    for pk in transactions.filter(entries__isnull=True).values_list("pk", flat=True):
        differences.append(Difference("transaction", pk, "entries", 0, ">= 2"))
    for pk in entries.exclude(account__currency_id=F("transaction__currency_id")).values_list(
        "pk", flat=True
    ):
        differences.append(Difference("entry", pk, "currency", "account's", "transaction's"))
    moved = lots.annotate(moved=Coalesce(Sum("movements__amount"), 0)).values_list(
        "pk", "remaining", "amount", "moved"
    )
    for pk, remaining, amount, moved_total in moved:
        if remaining != amount + moved_total:
            differences.append(Difference("lot", pk, "remaining", remaining, amount + moved_total))
        if not 0 <= remaining <= amount:
            differences.append(Difference("lot", pk, "remaining", remaining, f"0..{amount}"))
    movements = LotMovement.objects.exclude(lot__account__currency_id=F("transaction__currency_id"))
    for pk in movements.values_list("pk", flat=True):
        differences.append(Difference("lot movement", pk, "currency", "lot's", "transaction's"))
    return differences
