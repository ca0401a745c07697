"""Redemption and cancellation through the services: the points, the stock, the voucher,
shipment or conversion, eligibility, limits, and nothing half-done on refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from members import services as member_services
from points.errors import InsufficientPointsError, MemberSuspendedError
from points.models import Account, Lot, Transaction
from rewards import services
from rewards.errors import (
    AddressRequiredError,
    CurrencyNotAcceptedError,
    DuplicateRedemptionReferenceError,
    InvalidRewardError,
    MemberLimitReachedError,
    NotEligibleError,
    OutOfStockError,
    RedemptionNotCancellableError,
    RewardInactiveError,
    RewardNotAvailableError,
)
from rewards.models import Redemption, Reward, Shipment, Voucher
from tiers import services as tier_services
from webhooks.models import Event

from .conftest import SYSTEM, assert_ledger_consistent

pytestmark = pytest.mark.django_db

ADDRESS = services.ShippingAddress(
    name="Ana Lopez", address_line1="1 rue de la Paix", city="Paris", country="FR"
)


def balance(member, currency="PTS") -> int:
    return Account.objects.get(member=member, currency__code=currency).available


def test_reward_redeem_debits_points_takes_stock_and_issues_voucher(member, make_reward, earn, redeem_reward):
    earn(member, 1000)
    reward = make_reward(stock=3, voucher_min_spend=Decimal("20"))

    result = redeem_reward(member, reward, reference="app-1")

    redemption = result.redemption
    assert redemption.points == 500 and redemption.status == "completed"
    assert result.balance.available == 500 == balance(member)
    assert Reward.objects.get(pk=reward.pk).stock == 2
    voucher = Voucher.objects.get(redemption=redemption)
    assert voucher.member_id == member.pk and voucher.amount == Decimal("5.00")
    assert voucher.min_spend == Decimal("20") and voucher.status == "issued"
    assert voucher.valid_until > timezone.now() + timedelta(days=30)
    txn = Transaction.objects.get(pk=redemption.points_transaction_id)
    assert txn.kind == "redeem" and txn.amount == 500
    types = list(Event.objects.filter(member_id=member.pk).values_list("type", flat=True).order_by("id"))
    assert types[-3:] == ["points.redeemed", "reward.redeemed", "voucher.issued"]
    issued = Event.objects.get(type="voucher.issued").data["voucher"]
    # Money in the program's currency (EUR: cents), though the columns keep three decimals.
    assert (issued["amount"], issued["min_spend"], issued["member_id"], issued["batch_id"]) == (
        "5.00",
        "20.00",
        member.pk,
        None,
    )
    assert_ledger_consistent()


def test_reward_redeem_same_reference_returns_original(member, make_reward, earn, redeem_reward):
    earn(member, 1000)
    reward = make_reward()
    first = redeem_reward(member, reward, reference="app-2")
    again = redeem_reward(member, reward, reference="app-2")
    assert again.created is False and again.redemption.pk == first.redemption.pk
    assert balance(member) == 500 and Redemption.objects.count() == 1


def test_reward_redeem_reference_of_another_reward_is_conflict(member, make_reward, earn, redeem_reward):
    earn(member, 2000)
    redeem_reward(member, make_reward("a"), reference="app-3")
    with pytest.raises(DuplicateRedemptionReferenceError):
        redeem_reward(member, make_reward("b"), reference="app-3")
    assert balance(member) == 1500


def test_reward_redeem_refusals_leave_nothing_done(member, make_reward, earn, redeem_reward):
    earn(member, 300)
    reward = make_reward(stock=1)
    with pytest.raises(InsufficientPointsError):
        redeem_reward(member, reward)
    assert Reward.objects.get(pk=reward.pk).stock == 1
    assert not Redemption.objects.exists() and not Voucher.objects.exists()
    assert balance(member) == 300
    assert not Event.objects.filter(type__startswith="reward.").exists()


def test_reward_redeem_out_of_stock(member, make_reward, earn, redeem_reward):
    earn(member, 1000)
    reward = make_reward(stock=0)
    with pytest.raises(OutOfStockError):
        redeem_reward(member, reward)
    assert balance(member) == 1000


def test_reward_redeem_inactive_and_dates(member, make_reward, earn, redeem_reward):
    earn(member, 5000)
    now = timezone.now()
    with pytest.raises(RewardInactiveError):
        redeem_reward(member, make_reward("off", is_active=False))
    with pytest.raises(RewardNotAvailableError) as early:
        redeem_reward(member, make_reward("soon", valid_from=now + timedelta(days=1)))
    assert early.value.extra["reason"] == "not_yet_valid"
    with pytest.raises(RewardNotAvailableError) as late:
        redeem_reward(member, make_reward("past", valid_until=now - timedelta(seconds=1)))
    assert late.value.extra["reason"] == "expired"
    redeem_reward(
        member, make_reward("now", valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=1))
    )
    assert balance(member) == 4500


@pytest.fixture
def ladder(program):
    bronze = tier_services.tier_create(program=program, code="bronze", name="Bronze", rank=10, actor=SYSTEM)
    gold = tier_services.tier_create(program=program, code="gold", name="Gold", rank=30, actor=SYSTEM)
    return bronze, gold


def test_reward_redeem_eligibility_by_tier(member, make_reward, earn, redeem_reward, ladder):
    _bronze, gold = ladder
    earn(member, 2000)
    reward = make_reward(eligible_tiers=[gold])
    with pytest.raises(NotEligibleError) as refused:
        redeem_reward(member, reward)
    assert refused.value.extra["reasons"] == ["not_eligible_tier"]
    tier_services.member_tier_assign(member=member, tier=gold, reason="Status match", actor=SYSTEM)
    redeem_reward(member, reward)
    assert balance(member) == 1500


def test_reward_redeem_eligibility_by_tier_tags(member, make_reward, earn, redeem_reward, program):
    bronze = tier_services.tier_create(program=program, code="bronze", name="Bronze", rank=10, actor=SYSTEM)
    gold = tier_services.tier_create(
        program=program, code="gold", name="Gold", rank=30, reward_tags=["lounge", "spa"], actor=SYSTEM
    )
    tier_services.member_tier_assign(member=member, tier=bronze, reason="Start", actor=SYSTEM)
    earn(member, 2000)
    lounge = make_reward("lounge-pass", tier_tags=["lounge", "other"])
    with pytest.raises(NotEligibleError) as refused:
        redeem_reward(member, lounge)
    assert refused.value.extra["reasons"] == ["not_eligible_tier"]
    redeem_reward(member, make_reward("open"))  # no tags: any tier
    tier_services.member_tier_assign(member=member, tier=gold, reason="Status match", actor=SYSTEM)
    redeem_reward(member, lounge)  # gold unlocks "lounge", one of the reward's tags
    # Tags apply together with the eligible tiers.
    both = make_reward("both", tier_tags=["spa"], eligible_tiers=[bronze])
    with pytest.raises(NotEligibleError):
        redeem_reward(member, both)
    assert balance(member) == 1000
    with pytest.raises(InvalidRewardError) as bad:
        make_reward("bad", tier_tags=["not a tag"])
    assert bad.value.field == "tier_tags"


def test_reward_redeem_tier_without_rewards_is_not_eligible(
    member, make_reward, earn, redeem_reward, program
):
    tier_services.tier_create(
        program=program, code="basic", name="Basic", rank=1, rewards_eligible=False, actor=SYSTEM
    )
    earn(member, 2000)
    with pytest.raises(NotEligibleError):
        redeem_reward(member, make_reward())


def test_reward_redeem_eligibility_by_label(member, make_reward, earn, redeem_reward, program):
    vip = member_services.label_create(program=program, code="vip", name="VIP", actor=SYSTEM)
    earn(member, 2000)
    reward = make_reward(eligible_labels=[vip])
    with pytest.raises(NotEligibleError) as refused:
        redeem_reward(member, reward)
    assert refused.value.extra["reasons"] == ["not_eligible_label"]
    member_services.label_assign(member=member, label_code="vip", actor=SYSTEM)
    redeem_reward(member, reward)


def test_reward_redeem_total_limit(member, make_reward, earn, redeem_reward):
    earn(member, 5000)
    reward = make_reward(limit_total=2)
    redeem_reward(member, reward)
    redeem_reward(member, reward)
    with pytest.raises(MemberLimitReachedError) as refused:
        redeem_reward(member, reward)
    assert refused.value.extra["redeemed_total"] == 2 and refused.value.extra["limit_total"] == 2
    assert balance(member) == 4000


def test_reward_redeem_period_limit_uses_program_day(member, make_reward, earn, redeem_reward, monkeypatch):
    """The program is in Europe/Paris (UTC+1 in March): days turn at 23:00 UTC."""
    earn(member, 5000)
    reward = make_reward(limit_per_period=1, limit_period="day")
    base = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)  # 23:30 Paris
    monkeypatch.setattr(timezone, "now", lambda: base)
    redeem_reward(member, reward)
    monkeypatch.setattr(timezone, "now", lambda: base + timedelta(minutes=20))  # 23:50 Paris
    with pytest.raises(MemberLimitReachedError):
        redeem_reward(member, reward)
    monkeypatch.setattr(timezone, "now", lambda: base + timedelta(minutes=40))  # 00:10 Paris, next day
    redeem_reward(member, reward)
    assert Redemption.objects.filter(member=member).count() == 2


def test_reward_redeem_cancelled_redemptions_do_not_count_for_limits(
    member, make_reward, earn, redeem_reward
):
    earn(member, 5000)
    reward = make_reward(limit_total=1)
    first = redeem_reward(member, reward)
    services.redemption_cancel(redemption=first.redemption, reason="Changed mind", actor=SYSTEM)
    redeem_reward(member, reward)


def test_reward_redeem_suspended_member_is_refused_by_points(member, make_reward, earn, redeem_reward):
    earn(member, 1000)
    member_services.member_status_action(member=member, action="suspend", reason="Review", actor=SYSTEM)
    with pytest.raises(MemberSuspendedError):
        redeem_reward(member, make_reward())


def test_reward_redeem_currency_choice(member, make_reward, earn, redeem_reward, pts, miles):
    earn(member, 1000)
    earn(member, 1000, currency=miles)
    reward = make_reward(costs={pts: 500, miles: 300})
    result = redeem_reward(member, reward)  # the program's default currency
    assert result.redemption.currency == pts
    result = redeem_reward(member, reward, currency=miles)
    assert result.redemption.points == 300 and balance(member, "MILES") == 700
    only_miles = make_reward("m", costs={miles: 100})
    with pytest.raises(CurrencyNotAcceptedError):
        redeem_reward(member, only_miles, currency=pts)


def test_reward_redeem_physical_needs_address_and_records_shipment(member, make_reward, earn, redeem_reward):
    earn(member, 1000)
    reward = make_reward("mug", kind=Reward.Kind.PHYSICAL)
    with pytest.raises(AddressRequiredError):
        redeem_reward(member, reward)
    result = redeem_reward(member, reward, address=ADDRESS)
    shipment = Shipment.objects.get(redemption=result.redemption)
    assert shipment.city == "Paris" and shipment.status == "pending"
    assert not Voucher.objects.exists()


def test_reward_redeem_points_conversion(member, make_reward, earn, redeem_reward, miles):
    earn(member, 1000)
    reward = make_reward(
        "to-miles", kind=Reward.Kind.POINTS_CONVERSION, target_currency=miles, target_points=40
    )
    result = redeem_reward(member, reward)
    assert balance(member) == 500 and balance(member, "MILES") == 40
    assert Transaction.objects.get(pk=result.redemption.conversion_transaction_id).kind == "earn"
    services.redemption_cancel(redemption=result.redemption, reason="Mistake", actor=SYSTEM)
    assert balance(member) == 1000 and balance(member, "MILES") == 0
    assert_ledger_consistent()


def test_redemption_cancel_of_spent_conversion_is_refused(member, make_reward, earn, redeem_reward, miles):
    from points import services as points_services

    earn(member, 1000)
    reward = make_reward(
        "to-miles", kind=Reward.Kind.POINTS_CONVERSION, target_currency=miles, target_points=40
    )
    result = redeem_reward(member, reward)
    points_services.points_redeem(member=member, amount=40, currency=miles, actor=SYSTEM)
    with pytest.raises(InsufficientPointsError):
        services.redemption_cancel(redemption=result.redemption, reason="Mistake", actor=SYSTEM)
    assert Redemption.objects.get(pk=result.redemption.pk).status == "completed"
    assert balance(member) == 500


def test_redemption_cancel_restores_points_with_original_expiry_and_stock(
    member, make_reward, earn, redeem_reward, pts, monkeypatch
):
    from points import services as points_services

    points_services.currency_update(
        currency=pts, expiry_policy="rolling_days", expiry_period=30, actor=SYSTEM
    )
    start = timezone.now()
    earn(member, 300)  # expires first
    monkeypatch.setattr(timezone, "now", lambda: start + timedelta(days=10))
    earn(member, 300)
    expiries_before = dict(Lot.objects.filter(account__member=member).values_list("pk", "expires_at"))
    reward = make_reward(stock=5, cost=400)
    result = redeem_reward(member, reward)
    assert sorted(Lot.objects.filter(account__member=member).values_list("remaining", flat=True)) == [0, 200]

    cancelled = services.redemption_cancel(redemption=result.redemption, reason="Changed mind", actor=SYSTEM)

    redemption = cancelled.redemption
    assert redemption.status == "cancelled" and redemption.reversal_transaction.kind == "reverse"
    lots = list(Lot.objects.filter(account__member=member).order_by("pk"))
    assert [lot.remaining for lot in lots] == [300, 300]
    assert {lot.pk: lot.expires_at for lot in lots} == expiries_before
    assert Reward.objects.get(pk=reward.pk).stock == 5
    assert Voucher.objects.get(redemption=redemption).status == "cancelled"
    types = list(Event.objects.filter(member_id=member.pk).values_list("type", flat=True).order_by("id"))
    assert types[-3:] == ["points.reversed", "reward.cancelled", "voucher.cancelled"]
    call_command("points_verify_ledger", "--no-progress")


def test_redemption_cancel_refused_once_voucher_used_or_item_shipped(
    member, make_reward, earn, redeem_reward
):
    earn(member, 5000)
    voucher_result = redeem_reward(member, make_reward())
    voucher = Voucher.objects.get(redemption=voucher_result.redemption)
    services.voucher_use(voucher=voucher, reference="receipt-1", basket=services.BasketInput(), actor=SYSTEM)
    with pytest.raises(RedemptionNotCancellableError) as used:
        services.redemption_cancel(redemption=voucher_result.redemption, reason="Late", actor=SYSTEM)
    assert used.value.extra["voucher_status"] == "used"

    shipped = redeem_reward(member, make_reward("mug", kind=Reward.Kind.PHYSICAL), address=ADDRESS)
    services.shipment_mark_shipped(shipment=shipped.redemption.shipment, tracking="TRK1", actor=SYSTEM)
    with pytest.raises(RedemptionNotCancellableError):
        services.redemption_cancel(redemption=shipped.redemption, reason="Late", actor=SYSTEM)

    services.redemption_cancel(
        redemption=redeem_reward(member, make_reward("x")).redemption, reason="ok", actor=SYSTEM
    )
    with pytest.raises(RedemptionNotCancellableError):
        cancelled = Redemption.objects.get(reward__code="x")
        services.redemption_cancel(redemption=cancelled, reason="again", actor=SYSTEM)
