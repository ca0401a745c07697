from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from members import services as member_services
from points import services
from points.errors import (
    BelowMinimumRedemptionError,
    CaptureExceedsHoldError,
    CurrencyInactiveError,
    DuplicateReferenceError,
    HoldNotActiveError,
    InsufficientPointsError,
    MemberNotActiveError,
    MemberSuspendedError,
    MemberTerminatedError,
    NegativeBalancesExistError,
    NotReversibleError,
    RecipientNotFoundError,
    ReversalExceedsRemainingError,
    TransferToSelfError,
)
from points.models import Account, Entry, Hold, Lot, Transaction
from webhooks.models import Event

from .conftest import SYSTEM


@pytest.fixture
def clock(monkeypatch):
    """Moves Django's clock: ``clock.set(dt)`` / ``clock.advance(**timedelta_kwargs)``."""

    class Clock:
        now = timezone.now()

        def set(self, value):
            self.now = value

        def advance(self, **kwargs):
            self.now = self.now + timedelta(**kwargs)

    c = Clock()
    monkeypatch.setattr(timezone, "now", lambda: c.now)
    return c


def _account(member, currency=None):
    qs = Account.objects.filter(member=member)
    return qs.get(currency=currency) if currency else qs.get()


def test_points_earn_credits_available_lot_entries_and_event(member, pts, earn, ledger_ok):
    result = earn(member, 120, reference="r-1", description="Coffee")
    assert result.created
    assert (result.account.available, result.account.pending, result.account.lifetime_earned) == (120, 0, 120)
    entries = sorted(Entry.objects.filter(transaction=result.transaction).values_list("amount", flat=True))
    assert entries == [-120, 120]
    lot = Lot.objects.get(source=result.transaction)
    assert (lot.amount, lot.remaining, lot.expires_at) == (120, 120, None)
    event = Event.objects.filter(type="points.earned").latest("id")
    assert event.data["balance"] == {"available": 120, "pending": 0, "held": 0}
    assert event.data["transaction"]["reference"] == "r-1"
    assert event.data["currency"] == "PTS"
    ledger_ok()


def test_points_earn_repeated_reference_returns_original(member, earn):
    first = earn(member, 50, reference="receipt-9")
    again = earn(member, 50, reference="receipt-9")
    assert not again.created
    assert again.transaction.pk == first.transaction.pk
    assert Transaction.objects.filter(kind="earn").count() == 1
    assert _account(member).available == 50


def test_points_earn_reference_for_other_member_or_amount_is_duplicate(member, make_member, earn):
    earn(member, 50, reference="receipt-9")
    with pytest.raises(DuplicateReferenceError):
        earn(make_member(), 50, reference="receipt-9")
    with pytest.raises(DuplicateReferenceError):
        earn(member, 51, reference="receipt-9")


def test_points_reference_is_per_kind(member, earn, redeem):
    earn(member, 50, reference="order-1")
    result = redeem(member, 20, reference="order-1")
    assert result.created


def test_points_redeem_consumes_lots_first_to_expire(member, make_currency, earn, redeem, ledger_ok):
    currency = make_currency("MILES", expiry_policy="rolling_days", expiry_period=30)
    now = timezone.now()
    late = earn(member, 100, currency=currency, occurred_at=now - timedelta(days=1))
    early = earn(member, 100, currency=currency, occurred_at=now - timedelta(days=10))
    redeem(member, 150, currency=currency)
    assert Lot.objects.get(source=early.transaction).remaining == 0
    assert Lot.objects.get(source=late.transaction).remaining == 50
    ledger_ok()


def test_points_redeem_insufficient_reports_available(member, earn, redeem):
    earn(member, 40)
    with pytest.raises(InsufficientPointsError) as error:
        redeem(member, 50)
    assert error.value.extra["available"] == 40
    assert _account(member).available == 40
    assert not Transaction.objects.filter(kind="redeem").exists()


def test_points_redeem_below_minimum_is_refused(member, make_currency, earn, redeem):
    currency = make_currency("CASH", minimum_redemption=100)
    earn(member, 500, currency=currency)
    with pytest.raises(BelowMinimumRedemptionError):
        redeem(member, 99, currency=currency)


def test_points_redeem_expires_due_lots_instead_of_spending_them(
    member, make_currency, earn, redeem, ledger_ok
):
    currency = make_currency("MILES", expiry_policy="rolling_days", expiry_period=30)
    earn(member, 100, currency=currency, occurred_at=timezone.now() - timedelta(days=40))
    earn(member, 30, currency=currency)
    with pytest.raises(InsufficientPointsError) as error:
        redeem(member, 50, currency=currency)
    assert error.value.extra["available"] == 30
    result = redeem(member, 30, currency=currency)
    assert result.account.available == 0
    expire = Transaction.objects.get(kind="expire")
    assert expire.amount == 100
    ledger_ok()


def test_points_operations_refuse_inactive_currency(member, make_currency, earn):
    currency = make_currency("OLD", is_active=False)
    with pytest.raises(CurrencyInactiveError):
        earn(member, 10, currency=currency)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("suspended", MemberSuspendedError),
        ("pending", MemberNotActiveError),
        ("terminated", MemberTerminatedError),
    ],
)
def test_points_spending_refused_for_members_not_active(make_member, earn, status, error):
    member = make_member(status="pending") if status == "pending" else make_member()
    earn(member, 100) if status != "terminated" else None
    if status == "suspended":
        member_services.member_status_action(member=member, action="suspend", reason="x", actor=SYSTEM)
    if status == "terminated":
        member_services.member_status_action(member=member, action="terminate", reason="x", actor=SYSTEM)
    member.refresh_from_db()
    with pytest.raises(error):
        services.points_redeem(member=member, amount=10, actor=SYSTEM)
    with pytest.raises(error):
        services.hold_create(member=member, amount=10, actor=SYSTEM)


def test_points_suspended_member_can_still_earn(member, earn):
    member_services.member_status_action(member=member, action="suspend", reason="x", actor=SYSTEM)
    member.refresh_from_db()
    assert earn(member, 10).account.available == 10


def test_points_terminated_member_can_do_nothing(member, earn):
    result = earn(member, 100)
    member_services.member_status_action(member=member, action="terminate", reason="x", actor=SYSTEM)
    member.refresh_from_db()
    with pytest.raises(MemberTerminatedError):
        earn(member, 10)
    with pytest.raises(MemberTerminatedError):
        services.points_adjust(member=member, amount=5, reason="x", actor=SYSTEM)
    with pytest.raises(MemberTerminatedError):
        services.points_reverse(transaction=result.transaction, actor=SYSTEM)


def test_points_pending_earn_is_visible_not_spendable(member, earn, redeem, clock, ledger_ok):
    result = earn(member, 80, pending_until=clock.now + timedelta(days=14))
    assert (result.account.available, result.account.pending) == (0, 80)
    with pytest.raises(InsufficientPointsError):
        redeem(member, 10)
    ledger_ok()


def test_points_reversing_pending_earn_cancels_it(member, earn, ledger_ok):
    result = earn(member, 80, pending_until=timezone.now() + timedelta(days=14))
    services.points_reverse(transaction=result.transaction, actor=SYSTEM, amount=30)
    assert _account(member).pending == 50
    services.points_reverse(transaction=result.transaction, actor=SYSTEM)
    account = _account(member)
    assert (account.pending, account.available, account.lifetime_earned) == (0, 0, 0)
    with pytest.raises(ReversalExceedsRemainingError):
        services.points_reverse(transaction=result.transaction, actor=SYSTEM, amount=1)
    ledger_ok()


def test_points_reverse_redemption_restores_lots_with_original_expiry(
    member, make_currency, earn, redeem, ledger_ok
):
    currency = make_currency("MILES", expiry_policy="rolling_days", expiry_period=30)
    now = timezone.now()
    first = earn(member, 100, currency=currency, occurred_at=now - timedelta(days=5))
    second = earn(member, 100, currency=currency, occurred_at=now - timedelta(days=2))
    redemption = redeem(member, 150, currency=currency)
    services.points_reverse(transaction=redemption.transaction, actor=SYSTEM, amount=60)
    first_lot, second_lot = (
        Lot.objects.get(source=first.transaction),
        Lot.objects.get(source=second.transaction),
    )
    # The redemption took 100 from the first lot and 50 from the second; the latest-
    # expiring points are given back first, each to its own lot (and expiry date).
    assert (first_lot.remaining, second_lot.remaining) == (10, 100)
    services.points_reverse(transaction=redemption.transaction, actor=SYSTEM)
    first_lot.refresh_from_db()
    second_lot.refresh_from_db()
    assert (first_lot.remaining, second_lot.remaining) == (100, 100)
    assert Lot.objects.filter(account__member=member).count() == 2
    ledger_ok()


def test_points_reverse_never_more_than_remaining(member, earn, redeem):
    earn(member, 100)
    redemption = redeem(member, 50)
    services.points_reverse(transaction=redemption.transaction, actor=SYSTEM, amount=40)
    with pytest.raises(ReversalExceedsRemainingError) as error:
        services.points_reverse(transaction=redemption.transaction, actor=SYSTEM, amount=11)
    assert error.value.extra["reversible"] == 10


def test_points_reverse_spent_earn_needs_available_points(member, earn, redeem):
    result = earn(member, 100)
    redeem(member, 90)
    with pytest.raises(InsufficientPointsError):
        services.points_reverse(transaction=result.transaction, actor=SYSTEM)
    reversal = services.points_reverse(transaction=result.transaction, actor=SYSTEM, amount=10)
    assert (reversal.account.available, reversal.account.lifetime_earned) == (0, 90)


def test_points_reverse_refuses_non_reversible_kinds(member, earn):
    earn(member, 100)
    hold = services.hold_create(member=member, amount=10, actor=SYSTEM)
    with pytest.raises(NotReversibleError):
        services.points_reverse(transaction=hold.transaction, actor=SYSTEM)


def test_points_adjust_signed_with_reason(member, earn, ledger_ok):
    earn(member, 10)
    up = services.points_adjust(member=member, amount=25, reason="Goodwill", actor=SYSTEM)
    assert up.account.available == 35
    down = services.points_adjust(member=member, amount=-30, reason="Error", actor=SYSTEM)
    assert down.account.available == 5
    assert down.transaction.signed_amount == -30
    with pytest.raises(InsufficientPointsError):
        services.points_adjust(member=member, amount=-6, reason="Too much", actor=SYSTEM)
    event = Event.objects.filter(type="points.adjusted").latest("id")
    assert event.data["reason"] == "Error"
    ledger_ok()


def test_points_transfer_moves_points_keeping_expiry(member, make_member, make_currency, earn, ledger_ok):
    currency = make_currency("MILES", expiry_policy="rolling_days", expiry_period=30)
    other = make_member()
    source = earn(member, 100, currency=currency)
    result = services.points_transfer(
        member=member, to_member=other, amount=60, currency=currency, actor=SYSTEM
    )
    assert (result.account.available, result.counterparty_account.available) == (40, 60)
    received = Lot.objects.get(account__member=other)
    assert received.expires_at == Lot.objects.get(source=source.transaction).expires_at
    assert Event.objects.filter(type="points.transferred").count() == 2
    services.points_reverse(transaction=result.transaction, actor=SYSTEM)
    assert _account(member, currency).available == 100
    assert _account(other, currency).available == 0
    ledger_ok()


def test_points_transfer_refuses_self_and_other_program(member, make_member, other_program, earn):
    earn(member, 100)
    with pytest.raises(TransferToSelfError):
        services.points_transfer(member=member, to_member=member, amount=1, actor=SYSTEM)
    stranger = make_member(target_program=other_program)
    with pytest.raises(RecipientNotFoundError):
        services.points_transfer(member=member, to_member=stranger, amount=1, actor=SYSTEM)


def test_points_hold_capture_partial_releases_rest(member, earn, ledger_ok):
    earn(member, 100)
    hold = services.hold_create(member=member, amount=60, actor=SYSTEM, reference="cart-1")
    assert (hold.account.available, hold.account.held) == (40, 60)
    captured = services.hold_capture(hold=hold.hold, actor=SYSTEM, amount=45)
    assert (captured.account.available, captured.account.held) == (55, 0)
    assert captured.hold.state == Hold.State.CAPTURED
    with pytest.raises(HoldNotActiveError) as error:
        services.hold_capture(hold=hold.hold, actor=SYSTEM)
    assert error.value.extra["state"] == "captured"
    services.points_reverse(transaction=captured.transaction, actor=SYSTEM)
    assert _account(member).available == 100
    ledger_ok()


def test_points_hold_release_and_expiry(member, earn, clock, ledger_ok):
    earn(member, 100)
    released = services.hold_create(member=member, amount=30, actor=SYSTEM)
    services.hold_release(hold=released.hold, actor=SYSTEM)
    with pytest.raises(HoldNotActiveError):
        services.hold_capture(hold=released.hold, actor=SYSTEM)
    expiring = services.hold_create(member=member, amount=30, actor=SYSTEM, expires_in=timedelta(minutes=5))
    clock.advance(minutes=6)
    with pytest.raises(HoldNotActiveError) as error:
        services.hold_capture(hold=expiring.hold, actor=SYSTEM)
    assert error.value.extra["state"] == "expired"
    with pytest.raises(CaptureExceedsHoldError):
        services.hold_capture(
            hold=services.hold_create(member=member, amount=5, actor=SYSTEM).hold, actor=SYSTEM, amount=6
        )
    ledger_ok()


def test_points_hold_repeated_reference_returns_same_hold(member, earn):
    earn(member, 100)
    first = services.hold_create(member=member, amount=30, actor=SYSTEM, reference="cart-7")
    again = services.hold_create(member=member, amount=30, actor=SYSTEM, reference="cart-7")
    assert not again.created and again.hold.pk == first.hold.pk
    assert _account(member).held == 30


def test_points_negative_balance_only_when_currency_allows(member, make_currency, earn, redeem, ledger_ok):
    currency = make_currency("FLEX", allow_negative=True)
    earn(member, 10, currency=currency)
    assert redeem(member, 25, currency=currency).account.available == -15
    # Points earned while below zero first pay off the shortfall.
    result = earn(member, 20, currency=currency)
    assert result.account.available == 5
    assert Lot.objects.get(source=result.transaction).remaining == 5
    ledger_ok()
    redeem(member, 10, currency=currency)
    with pytest.raises(NegativeBalancesExistError):
        services.currency_update(currency=currency, allow_negative=False, actor=SYSTEM)


def test_points_fixed_date_expiry_end_of_day_in_program_timezone(member, make_currency, earn):
    currency = make_currency("XMAS", expiry_policy="fixed_date", expiry_month=12, expiry_day=31)
    result = earn(member, 10, currency=currency, occurred_at=datetime(2026, 6, 1, 12, tzinfo=UTC))
    lot = Lot.objects.get(source=result.transaction)
    # Europe/Paris: 31 Dec ends at 23:00 UTC.
    assert lot.expires_at == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)


def test_program_created_hook_gives_default_currency(make_program):
    program = make_program("fresh")
    currency = program.points_currencies.get()
    assert (currency.code, currency.is_default, currency.expiry_policy) == ("PTS", True, "none")
    assert Account.objects.filter(currency=currency, member__isnull=True).count() == 4
