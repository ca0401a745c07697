"""The posting engine: locks accounts, writes a transaction's entries, moves lots and keeps
the cached balances in step. Only the services call it, inside their transaction.

Rules it keeps (see the invariants in models.py):
- member accounts are locked with ``select_for_update`` in id order before anything reads
  their balance or lots; lots are only changed under their account's lock, so they need
  no lock of their own;
- a debit consumes spendable lots first-to-expire and never touches a lot that is due:
  due lots are expired (their own ``expire`` transaction) before the debit;
- the spendable lots of an account always sum to ``max(available, 0)``: a credit while the
  balance is negative first pays off the shortfall, and only the rest lands in a lot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum

from members.models import Member
from membership_site.actors import Actor
from webhooks.services import event_record_many

from .errors import InsufficientPointsError
from .events import transaction_event
from .expiry import inactivity_expiry, lot_expiry
from .models import Account, Currency, Entry, Lot, LotMovement, Transaction

B = Entry.Bucket
K = Account.Kind

# System account ids per (currency id, kind). Filled only after the row is known to be
# committed (a rolled-back account must never be cached).
_system_account_ids: dict[tuple[int, str], int] = {}


def system_account_id(currency: Currency, kind: str) -> int:
    key = (currency.pk, kind)
    cached = _system_account_ids.get(key)
    if cached is not None:
        return cached
    account, _ = Account.objects.get_or_create(
        currency=currency,
        kind=kind,
        member=None,
        defaults={"program_id": currency.program_id, "allow_negative": True},
    )
    transaction.on_commit(lambda: _system_account_ids.__setitem__(key, account.pk))
    return account.pk


def ensure_system_accounts(currency: Currency) -> None:
    for kind in (K.ISSUED, K.REDEEMED, K.EXPIRED, K.ADJUSTED):
        system_account_id(currency, kind)


def _new_account(member: Member, currency: Currency) -> Account:
    return Account(
        program_id=currency.program_id,
        currency=currency,
        kind=K.MEMBER,
        member=member,
        allow_negative=currency.allow_negative,
    )


def lock_account(member: Member, currency: Currency) -> Account:
    """The member's account in ``currency``, created on first use, locked."""
    account = Account.objects.select_for_update().filter(member=member, currency=currency).first()
    if account is None:
        Account.objects.bulk_create([_new_account(member, currency)], ignore_conflicts=True)
        account = Account.objects.select_for_update().get(member=member, currency=currency)
    account.currency = currency
    return account


def lock_default_account(member: Member) -> Account | None:
    """The member's account in the program's default currency (with the currency and its
    program), locked; None before its first use."""
    account = (
        Account.objects.select_for_update(of=("self",))
        .select_related("currency")
        .filter(member=member, currency__is_default=True)
        .first()
    )
    if account is not None and Member.program.is_cached(member):
        account.currency.program = member.program  # the same program, already loaded
    return account


def lock_accounts(members: Iterable[Member], currency: Currency) -> dict[int, Account]:
    """Several members' accounts, locked in id order (the order every writer uses, so two
    transfers in opposite directions wait for each other instead of deadlocking)."""
    members = {member.pk: member for member in members}
    existing = set(
        Account.objects.filter(member_id__in=members, currency=currency).values_list("member_id", flat=True)
    )
    # Created in member id order too: two callers inserting the same members' accounts in
    # different orders would each wait for a row the other inserted (a deadlock).
    missing = [_new_account(member, currency) for pk, member in sorted(members.items()) if pk not in existing]
    if missing:
        Account.objects.bulk_create(missing, ignore_conflicts=True)
    accounts = list(
        Account.objects.select_for_update().filter(member_id__in=members, currency=currency).order_by("pk")
    )
    for account in accounts:
        account.currency = currency
    return {account.member_id: account for account in accounts}


@dataclass
class Posting:
    """The writes of one transaction, applied together by ``post``."""

    txn: Transaction
    entries: list[Entry] = field(default_factory=list)
    movements: list[LotMovement] = field(default_factory=list)
    new_lots: list[Lot] = field(default_factory=list)
    changed_lots: dict[int, Lot] = field(default_factory=dict)
    accounts: dict[int, Account] = field(default_factory=dict)

    def entry(self, account: Account | int, bucket: str, amount: int) -> None:
        if amount == 0:
            return
        if isinstance(account, Account):
            setattr(account, bucket, getattr(account, bucket) + amount)
            self.accounts[account.pk] = account
            self.entries.append(Entry(transaction=self.txn, account=account, bucket=bucket, amount=amount))
        else:  # a system account: no cached balance
            self.entries.append(Entry(transaction=self.txn, account_id=account, bucket=bucket, amount=amount))

    def move(self, lot: Lot, amount: int) -> None:
        if amount == 0:
            return
        lot.remaining += amount
        if lot.pk is not None:
            self.changed_lots[lot.pk] = lot
        self.movements.append(LotMovement(lot=lot, transaction=self.txn, amount=amount))


def create_transaction(**fields) -> Transaction:
    """Insert the transaction row. With a reference, a concurrent twin that committed first
    surfaces as IntegrityError (only the row is rolled back, in its savepoint)."""
    if fields.get("reference"):
        with transaction.atomic():
            return Transaction.objects.create(**fields)
    return Transaction.objects.create(**fields)


def is_reference_clash(error: IntegrityError) -> bool:
    return "points_transaction_reference_unique" in str(error)


def post(posting: Posting) -> None:
    """Write the entries, lots, movements and the accounts' new balances."""
    post_many([posting])


def post_many(postings: Sequence[Posting]) -> None:
    """``post`` for several transactions' postings at once (bulk imports). An account or a
    lot in several of them must be the same object in each (its final values are written)."""
    for posting in postings:
        total = sum(entry.amount for entry in posting.entries)
        if total != 0 or len(posting.entries) < 2:
            raise AssertionError(f"Unbalanced posting for {posting.txn}: {total} over {len(posting.entries)}")
        for account in posting.accounts.values():
            account.updated_at = posting.txn.recorded_at
    if connection.vendor == "postgresql" and all(m.lot.pk is not None for p in postings for m in p.movements):
        _post_in_one_statement(postings)
        return
    Entry.objects.bulk_create([entry for posting in postings for entry in posting.entries])
    Lot.objects.bulk_create([lot for posting in postings for lot in posting.new_lots])
    changed = {pk: lot for posting in postings for pk, lot in posting.changed_lots.items()}
    if changed:
        Lot.objects.bulk_update(list(changed.values()), ["remaining", "is_pending"])
    movements = [movement for posting in postings for movement in posting.movements]
    for movement in movements:
        movement.lot_id = movement.lot.pk
    LotMovement.objects.bulk_create(movements)
    accounts = {pk: account for posting in postings for pk, account in posting.accounts.items()}
    for account in sorted(accounts.values(), key=lambda a: a.pk):
        account.save(update_fields=[*_ACCOUNT_FIELDS, "updated_at"])


_ACCOUNT_FIELDS = ("available", "pending", "held", "lifetime_earned", "last_activity_at")

# Every write of a posting in one round trip (the hot path of each earn and redemption).
# Data-modifying CTEs all run, once, whether or not the final SELECT reads them; empty
# arrays simply insert or update nothing. The constraints and triggers apply as usual.
_POST_SQL = """
WITH
  entries AS (
    INSERT INTO points_entry (transaction_id, account_id, bucket, amount)
    SELECT x.txn, x.account_id, x.bucket, x.amount
    FROM unnest(%(e_txn)s::bigint[], %(e_account)s::bigint[], %(e_bucket)s::varchar[],
      %(e_amount)s::bigint[])
      AS x(txn, account_id, bucket, amount)
  ),
  new_lots AS (
    INSERT INTO points_lot
      (account_id, source_id, amount, remaining, earned_at, expires_at, is_pending, available_at)
    SELECT x.account_id, x.txn, x.amount, x.remaining, x.earned_at, x.expires_at, x.is_pending,
      x.available_at
    FROM unnest(%(n_txn)s::bigint[], %(n_account)s::bigint[], %(n_amount)s::bigint[],
      %(n_remaining)s::bigint[], %(n_earned)s::timestamptz[], %(n_expires)s::timestamptz[],
      %(n_pending)s::boolean[], %(n_available)s::timestamptz[])
      AS x(txn, account_id, amount, remaining, earned_at, expires_at, is_pending, available_at)
  ),
  changed_lots AS (
    UPDATE points_lot AS lot SET remaining = x.remaining, is_pending = x.is_pending
    FROM unnest(%(c_id)s::bigint[], %(c_remaining)s::bigint[], %(c_pending)s::boolean[])
      AS x(id, remaining, is_pending)
    WHERE lot.id = x.id
  ),
  movements AS (
    INSERT INTO points_lotmovement (lot_id, transaction_id, amount)
    SELECT x.lot_id, x.txn, x.amount
    FROM unnest(%(m_txn)s::bigint[], %(m_lot)s::bigint[], %(m_amount)s::bigint[])
      AS x(txn, lot_id, amount)
  ),
  accounts AS (
    UPDATE points_account AS account SET available = x.available, pending = x.pending,
      held = x.held, lifetime_earned = x.lifetime_earned, last_activity_at = x.last_activity_at,
      updated_at = x.updated_at
    FROM unnest(%(a_id)s::bigint[], %(a_available)s::bigint[], %(a_pending)s::bigint[],
      %(a_held)s::bigint[], %(a_lifetime)s::bigint[], %(a_activity)s::timestamptz[],
      %(a_updated)s::timestamptz[])
      AS x(id, available, pending, held, lifetime_earned, last_activity_at, updated_at)
    WHERE account.id = x.id
  )
SELECT 1
"""


def _post_in_one_statement(postings: Sequence[Posting]) -> None:
    """The PostgreSQL path of ``post_many``. New lots get no id back: nothing after the
    posting refers to them (a movement on a new lot takes the ORM path instead)."""
    accounts = sorted(
        {pk: a for posting in postings for pk, a in posting.accounts.items()}.values(), key=lambda a: a.pk
    )
    changed = list({pk: lot for posting in postings for pk, lot in posting.changed_lots.items()}.values())
    entries = [entry for posting in postings for entry in posting.entries]
    new_lots = [lot for posting in postings for lot in posting.new_lots]
    movements = [movement for posting in postings for movement in posting.movements]
    params = {
        "e_txn": [e.transaction_id for e in entries],
        "e_account": [e.account_id for e in entries],
        "e_bucket": [e.bucket for e in entries],
        "e_amount": [e.amount for e in entries],
        "n_txn": [lot.source_id for lot in new_lots],
        "n_account": [lot.account_id for lot in new_lots],
        "n_amount": [lot.amount for lot in new_lots],
        "n_remaining": [lot.remaining for lot in new_lots],
        "n_earned": [lot.earned_at for lot in new_lots],
        "n_expires": [lot.expires_at for lot in new_lots],
        "n_pending": [lot.is_pending for lot in new_lots],
        "n_available": [lot.available_at for lot in new_lots],
        "c_id": [lot.pk for lot in changed],
        "c_remaining": [lot.remaining for lot in changed],
        "c_pending": [lot.is_pending for lot in changed],
        "m_txn": [m.transaction_id for m in movements],
        "m_lot": [m.lot.pk for m in movements],
        "m_amount": [m.amount for m in movements],
        "a_id": [a.pk for a in accounts],
        "a_available": [a.available for a in accounts],
        "a_pending": [a.pending for a in accounts],
        "a_held": [a.held for a in accounts],
        "a_lifetime": [a.lifetime_earned for a in accounts],
        "a_activity": [a.last_activity_at for a in accounts],
        "a_updated": [a.updated_at for a in accounts],
    }
    with connection.cursor() as cursor:
        cursor.execute(_POST_SQL, params)


# --- Lots ------------------------------------------------------------------------------


PAGE = 100


def _open_lots_query(account: Account):
    return Lot.objects.filter(account=account, remaining__gt=0, is_pending=False).order_by(
        F("expires_at").asc(nulls_last=True), "id"
    )


def _open_lots(account: Account):
    """The account's spendable lots with points left, first-to-expire (never-expiring
    last), fetched a page at a time, only as far as the caller reads."""
    queryset = _open_lots_query(account)
    offset = 0
    while True:
        lots = list(queryset[offset : offset + PAGE])
        yield from lots
        if len(lots) < PAGE:
            return
        offset += PAGE


def expire_lots(
    account: Account, lots: list[Lot], *, actor: Actor, now: datetime, description: str
) -> Transaction | None:
    """Expire what is left of ``lots`` (all of the account, locked by the caller) in one
    ``expire`` transaction, with its ``points.expired`` event."""
    return expire_lots_many([(account, lots)], actor=actor, now=now, description=description).get(account.pk)


def expire_lots_many(
    work: Sequence[tuple[Account, list[Lot]]], *, actor: Actor, now: datetime, description: str
) -> dict[int, Transaction]:
    """``expire_lots`` for several accounts (each locked by the caller, once in ``work``) in
    a fixed number of statements: one ``expire`` transaction per account with points left
    in its lots. Returns the transactions by account id."""
    plans = []
    for account, lots in work:
        lots = [lot for lot in lots if lot.remaining > 0]
        total = sum(lot.remaining for lot in lots)
        if total > 0:
            plans.append((account, lots, total))
    if not plans:
        return {}
    txns = Transaction.objects.bulk_create(
        [
            Transaction(
                program_id=account.program_id,
                currency=account.currency,
                kind=Transaction.Kind.EXPIRE,
                member_id=account.member_id,
                amount=total,
                direction=-1,
                description=description,
                occurred_at=now,
                **actor.as_fields(),
            )
            for account, _lots, total in plans
        ]
    )
    postings, events = [], []
    expired_accounts: dict[int, int] = {}  # system account per currency
    for (account, lots, total), txn in zip(plans, txns, strict=True):
        if account.currency_id not in expired_accounts:
            expired_accounts[account.currency_id] = system_account_id(account.currency, K.EXPIRED)
        posting = Posting(txn)
        posting.entry(account, B.AVAILABLE, -total)
        posting.entry(expired_accounts[account.currency_id], B.AVAILABLE, total)
        expiring = sorted(lots, key=lambda lot: (lot.expires_at is None, lot.expires_at, lot.pk))
        for lot in expiring:
            posting.move(lot, -lot.remaining)
        postings.append(posting)
        events.append(transaction_event("points.expired", txn, account, lots_expired=len(expiring)))
    post_many(postings)
    event_record_many(events=events)
    return {account.pk: txn for (account, _lots, _total), txn in zip(plans, txns, strict=True)}


def debit(
    posting: Posting,
    account: Account,
    amount: int,
    *,
    now: datetime,
    bucket: str = B.AVAILABLE,
    prefer_lots: Iterable[Lot] = (),
) -> list[tuple[Lot, int]]:
    """Take ``amount`` from the account's available points, consuming lots (``prefer_lots``
    first, then first-to-expire). Due lots must have been expired by ``expire_due``.
    Returns the (lot, points) consumed. Raises InsufficientPointsError unless the currency
    lets the balance go negative."""
    if account.available - amount < 0 and not account.allow_negative:
        raise InsufficientPointsError(
            f"{amount} points requested, {max(account.available, 0)} available.",
            available=max(account.available, 0),
            requested=amount,
            currency=account.currency.code,
        )
    posting.entry(account, bucket, -amount)
    consumed: list[tuple[Lot, int]] = []
    left = amount
    seen: set[int] = set()
    for lot in chain(prefer_lots, _open_lots(account)):
        if left <= 0:
            break
        if lot.pk in seen or lot.is_pending:
            continue
        seen.add(lot.pk)
        lot = posting.changed_lots.get(lot.pk, lot)
        if lot.remaining <= 0:
            continue
        take = min(lot.remaining, left)
        posting.move(lot, -take)
        consumed.append((lot, take))
        left -= take
    return consumed


def expire_due(account: Account, *, actor: Actor, now: datetime) -> list[Lot]:
    """Expire the account's due lots (past their expiry, or all of them after the
    inactivity period) before anything spends from it. Returns the first spendable lots,
    first-to-expire (one query when nothing is due), to pass to ``debit``."""
    inactive_since = inactivity_expiry(account.currency, account.last_activity_at)
    if inactive_since is not None and inactive_since <= now:
        expire_lots(
            account, list(_open_lots_query(account)), actor=actor, now=now, description="Expired (inactivity)"
        )
        return []
    page = list(_open_lots_query(account)[:PAGE])
    due = [lot for lot in page if lot.expires_at is not None and lot.expires_at <= now]
    if len(due) == PAGE:  # there may be more beyond this page
        due = list(_open_lots_query(account).filter(expires_at__lte=now))
        page = []
    if due:
        expire_lots(account, due, actor=actor, now=now, description="Expired before use")
    return [lot for lot in page if lot.remaining > 0]


def credit_new_lot(
    posting: Posting,
    account: Account,
    amount: int,
    *,
    earned_at: datetime,
    expires_at: datetime | None,
    bucket: str = B.AVAILABLE,
    available_at: datetime | None = None,
) -> Lot:
    """Add ``amount`` to the account in a new lot; available points first pay off a
    negative balance."""
    posting.entry(account, bucket, amount)
    lot = Lot(
        account=account,
        source=posting.txn,
        amount=amount,
        remaining=amount,
        earned_at=earned_at,
        expires_at=expires_at,
        is_pending=bucket == B.PENDING,
        available_at=available_at if bucket == B.PENDING else None,
    )
    posting.new_lots.append(lot)
    if bucket == B.AVAILABLE:
        shortfall = max(-(account.available - amount), 0)
        if shortfall:
            posting.move(lot, -min(shortfall, amount))
    return lot


def restorable_lots(account: Account, txn_ids: Iterable[int]) -> list[tuple[Lot, int]]:
    """The account's lots consumed by the transactions ``txn_ids`` (net of what they gave
    back), latest-expiring first: (lot, points that may be restored)."""
    rows = (
        LotMovement.objects.filter(transaction_id__in=list(txn_ids), lot__account=account)
        .values("lot_id")
        .annotate(net=Sum("amount"))
        .filter(net__lt=0)
    )
    net = {row["lot_id"]: -row["net"] for row in rows}
    lots = list(Lot.objects.filter(pk__in=net))
    lots.sort(key=lambda lot: (lot.expires_at is not None, lot.expires_at, lot.pk), reverse=True)
    return [(lot, net[lot.pk]) for lot in lots]


def credit_restoring(
    posting: Posting,
    account: Account,
    amount: int,
    *,
    from_txn_ids: Iterable[int],
    now: datetime,
    bucket_from: str | None = None,
) -> None:
    """Give ``amount`` back to the account's available points, into the lots that the
    transactions ``from_txn_ids`` consumed, with their original expiry (points beyond
    what those lots can take land in a new lot expiring by the policy from now)."""
    shortfall = max(-account.available, 0)
    posting.entry(account, B.AVAILABLE, amount)
    if bucket_from:
        posting.entry(account, bucket_from, -amount)
    left = amount - min(shortfall, amount)
    for lot, restorable in restorable_lots(account, from_txn_ids):
        if left <= 0:
            break
        lot = posting.changed_lots.get(lot.pk, lot)
        give = min(restorable, left, lot.amount - lot.remaining)
        posting.move(lot, give)
        left -= give
    if left > 0:
        lot = Lot(
            account=account,
            source=posting.txn,
            amount=left,
            remaining=left,
            earned_at=now,
            expires_at=lot_expiry(account.currency, now),
        )
        posting.new_lots.append(lot)
