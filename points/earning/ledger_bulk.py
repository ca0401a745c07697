"""Crediting many members at once (bonuses for a list of new members, a day's birthdays)
in a fixed number of queries, with exactly the ledger writes ``points_earn`` makes for each
one: a transaction, its two entries, a lot expiring by the currency's policy, the account's
new balance and a ``points.earned`` event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from members.models import Member
from membership_site.actors import Actor
from webhooks.services import event_record_many

from .. import posting as ledger
from ..events import transaction_event
from ..expiry import lot_expiry
from ..models import Account, Currency, Entry, Lot, LotMovement, Transaction
from ..services.common import _touch, check_member

B = Entry.Bucket


@transaction.atomic
def points_earn_many(
    *,
    credits: Sequence[tuple[Member, int]],
    currency: Currency,
    actor: Actor,
    description: str,
    occurred_at: datetime | None = None,
    metadata: dict | None = None,
    event_data: Callable[[Member], dict[str, Any]] | None = None,
) -> dict[int, Transaction]:
    """Credit ``points`` to each (member, points) of ``credits`` (distinct members of the
    currency's program, not terminated) available at once. Returns the transactions by
    member id. Accounts are locked in id order, as every writer does."""
    credits = [(member, points) for member, points in credits if points > 0]
    if not credits:
        return {}
    for member, _points in credits:
        check_member(member, spending=False)
    now = timezone.now()
    at = occurred_at or now
    accounts = ledger.lock_accounts([member for member, _points in credits], currency)
    for account in accounts.values():
        if currency.expiry_policy == Currency.ExpiryPolicy.INACTIVITY and account.last_activity_at:
            ledger.expire_due(account, actor=actor, now=now)
    txns = Transaction.objects.bulk_create(
        [
            Transaction(
                program_id=currency.program_id,
                currency=currency,
                kind=Transaction.Kind.EARN,
                member=member,
                amount=points,
                direction=1,
                description=description,
                occurred_at=at,
                metadata=metadata or {},
                **actor.as_fields(),
            )
            for member, points in credits
        ]
    )
    issued = ledger.system_account_id(currency, Account.Kind.ISSUED)
    expires_at = lot_expiry(currency, at)
    postings = []
    for txn, (member, points) in zip(txns, credits, strict=True):
        account = accounts[member.pk]
        posting = ledger.Posting(txn)
        ledger.credit_new_lot(posting, account, points, earned_at=at, expires_at=expires_at)
        posting.entry(issued, B.AVAILABLE, -points)
        account.lifetime_earned += points
        _touch(account, at)
        postings.append(posting)
    Entry.objects.bulk_create([entry for posting in postings for entry in posting.entries])
    Lot.objects.bulk_create([lot for posting in postings for lot in posting.new_lots])
    movements = [movement for posting in postings for movement in posting.movements]
    if movements:  # credits that paid off a negative balance
        for movement in movements:
            movement.lot_id = movement.lot.pk
        LotMovement.objects.bulk_create(movements)
    for account in accounts.values():
        account.updated_at = now
    Account.objects.bulk_update(
        list(accounts.values()),
        ["available", "pending", "held", "lifetime_earned", "last_activity_at", "updated_at"],
    )
    by_member = {member.pk: member for member, _points in credits}
    event_record_many(
        events=[
            transaction_event(
                "points.earned",
                txn,
                accounts[txn.member_id],
                **(event_data(by_member[txn.member_id]) if event_data else {}),
            )
            for txn in txns
        ]
    )
    return {txn.member_id: txn for txn in txns}
