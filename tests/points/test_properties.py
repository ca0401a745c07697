"""A property-based test of the ledger: random sequences of earn / redeem / adjust /
transfer / reverse / hold / capture / release / expire / activate, checking after every
step that the cached balances equal the entries, every transaction sums to zero, no lot
goes negative and ``points_verify_ledger`` finds nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from members import services as member_services
from membership_site.errors import DomainError
from points import services, upkeep
from points.earning import qualifying
from points.models import Account, Entry, Hold, Lot

from .conftest import SYSTEM

MEMBERS = 3


class LedgerMachine(RuleBasedStateMachine):
    program = None  # set by the test

    @initialize()
    def setup(self):
        self.members = [
            member_services.member_create(program=self.program, actor=SYSTEM, first_name=f"P{i}")
            for i in range(MEMBERS)
        ]
        self.currency = services.currency_create(
            program=self.program,
            code=f"H{self.members[0].pk}",
            name="Property points",
            actor=SYSTEM,
            expiry_policy="rolling_days",
            expiry_period=30,
        )
        self.transactions: list = []
        self.holds: list = []

    def _do(self, action):
        try:
            result = action()
        except DomainError:
            return None
        if result.transaction.kind in services.REVERSIBLE_KINDS:
            self.transactions.append(result.transaction)
        return result

    @rule(
        who=st.integers(0, MEMBERS - 1),
        amount=st.integers(1, 400),
        days_ago=st.integers(0, 45),
        pending=st.booleans(),
        through_qualifying=st.booleans(),
    )
    def earn(self, who, amount, days_ago, pending, through_qualifying):
        # The API's path (qualifying: the account locked by lock_members and handed over)
        # or the service's own locking.
        service = qualifying.points_earn_qualifying if through_qualifying else services.points_earn
        now = timezone.now()
        self._do(
            lambda: service(
                member=self.members[who],
                amount=amount,
                currency=self.currency,
                occurred_at=now - timedelta(days=days_ago),
                pending_until=now + timedelta(days=3) if pending else None,
                actor=SYSTEM,
            )
        )

    @rule(who=st.integers(0, MEMBERS - 1), amount=st.integers(1, 300))
    def redeem(self, who, amount):
        self._do(
            lambda: services.points_redeem(
                member=self.members[who], amount=amount, currency=self.currency, actor=SYSTEM
            )
        )

    @rule(
        who=st.integers(0, MEMBERS - 1),
        amount=st.integers(-200, 200).filter(bool),
        through_qualifying=st.booleans(),
    )
    def adjust(self, who, amount, through_qualifying):
        service = qualifying.points_adjust_qualifying if through_qualifying else services.points_adjust
        self._do(
            lambda: service(
                member=self.members[who],
                amount=amount,
                reason="property",
                currency=self.currency,
                actor=SYSTEM,
            )
        )

    @rule(
        credits=st.lists(st.tuples(st.integers(0, MEMBERS - 1), st.integers(1, 200)), min_size=1, max_size=5)
    )
    def adjust_credits(self, credits):
        """Credits written together (bulk imports), the accounts locked first."""
        members = {self.members[who].pk: self.members[who] for who, _amount in credits}
        with transaction.atomic():
            accounts = qualifying.lock_members(list(members.values()), [self.currency], actor=SYSTEM)
            self.credit_count = getattr(self, "credit_count", 0) + len(credits)
            txns = services.points_adjust_credits(
                currency=self.currency,
                credits=[
                    services.Credit(
                        member=self.members[who],
                        account=accounts[(self.members[who].pk, self.currency.pk)],
                        amount=amount,
                        reason="property",
                        reference=f"credit-{self.currency.pk}-{self.credit_count}-{n}",
                    )
                    for n, (who, amount) in enumerate(credits)
                ],
                actor=SYSTEM,
            )
        self.transactions.extend(txns)
        assert upkeep.points_verify_ledger(program=self.program) == []

    @rule(
        sender=st.integers(0, MEMBERS - 1), recipient=st.integers(0, MEMBERS - 1), amount=st.integers(1, 300)
    )
    def transfer(self, sender, recipient, amount):
        self._do(
            lambda: services.points_transfer(
                member=self.members[sender],
                to_member=self.members[recipient],
                amount=amount,
                currency=self.currency,
                actor=SYSTEM,
            )
        )

    @precondition(lambda self: self.transactions)
    @rule(data=st.data(), partial=st.booleans())
    def reverse(self, data, partial):
        original = data.draw(st.sampled_from(self.transactions))
        amount = data.draw(st.integers(1, original.amount)) if partial else None
        self._do(lambda: services.points_reverse(transaction=original, amount=amount, actor=SYSTEM))

    @rule(who=st.integers(0, MEMBERS - 1), amount=st.integers(1, 300))
    def hold(self, who, amount):
        result = self._do(
            lambda: services.hold_create(
                member=self.members[who], amount=amount, currency=self.currency, actor=SYSTEM
            )
        )
        if result is not None:
            self.holds.append(result.hold)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def capture(self, data):
        hold = data.draw(st.sampled_from(self.holds))
        amount = data.draw(st.none() | st.integers(1, hold.amount))
        self._do(lambda: services.hold_capture(hold=hold, amount=amount, actor=SYSTEM))

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def release(self, data):
        hold = data.draw(st.sampled_from(self.holds))
        self._do(lambda: services.hold_release(hold=hold, actor=SYSTEM))

    @rule()
    def expire(self):
        upkeep.points_expire(actor=SYSTEM, program=self.program)

    @rule()
    def activate_pending(self):
        accounts = Lot.objects.filter(account__currency=self.currency, is_pending=True, remaining__gt=0)
        for account_id in set(accounts.values_list("account_id", flat=True)):
            upkeep.account_activate_pending(
                account_id=account_id, at=timezone.now() + timedelta(days=5), actor=SYSTEM
            )

    @invariant()
    def ledger_is_consistent(self):
        if not hasattr(self, "currency"):
            return
        assert upkeep.points_verify_ledger(program=self.program) == []
        entries = Entry.objects.filter(account__currency=self.currency)
        assert (entries.aggregate(total=Sum("amount"))["total"] or 0) == 0
        assert not Lot.objects.filter(account__currency=self.currency, remaining__lt=0).exists()
        for account in Account.objects.filter(currency=self.currency, kind="member"):
            assert account.available >= 0 and account.pending >= 0 and account.held >= 0
            active = Hold.objects.filter(account=account, state="active").aggregate(total=Sum("amount"))[
                "total"
            ]
            assert account.held == (active or 0)


@pytest.mark.django_db
def test_points_ledger_state_machine_keeps_invariants(program):
    LedgerMachine.program = program
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
