"""Races against PostgreSQL with real threads (each has its own connection and
transaction): the last units of stock, one voucher at two tills, one member's limit."""

from __future__ import annotations

import queue
import sys
import threading
from collections import Counter

import pytest
from django.core.management import call_command
from django.db import connection

from points.models import Account
from rewards import services
from rewards.errors import MemberLimitReachedError, OutOfStockError, VoucherNotUsableError
from rewards.models import Redemption, Reward, Voucher
from rewards.selectors import BasketInput

from .conftest import SYSTEM


@pytest.fixture(autouse=True)
def _short_gil_switch_interval():
    # Many threads share one GIL here: let the one holding the row locks get it back fast.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    yield
    sys.setswitchinterval(previous)


def run_concurrently(work, items, workers: int = 10) -> list:
    """``work(item)`` for every item on ``workers`` threads released together; returns
    (item, result or exception) pairs."""
    tasks: queue.Queue = queue.Queue()
    for item in items:
        tasks.put(item)
    results: list = []
    lock = threading.Lock()
    start = threading.Barrier(workers)

    def worker():
        try:
            start.wait()
            while True:
                try:
                    item = tasks.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcome = work(item)
                except Exception as error:  # collected and asserted on by the test
                    outcome = error
                with lock:
                    results.append((item, outcome))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return results


@pytest.mark.django_db(transaction=True)
def test_reward_redeem_50_members_race_for_last_10_units(make_member, make_reward, earn):
    reward = make_reward(stock=10)
    members = [make_member() for _ in range(50)]
    for member in members:
        earn(member, 600)

    results = run_concurrently(
        lambda member: services.reward_redeem(member=member, reward=reward, actor=SYSTEM), members, workers=25
    )

    won = [member for member, outcome in results if isinstance(outcome, services.RedemptionResult)]
    lost = [outcome for _member, outcome in results if isinstance(outcome, OutOfStockError)]
    assert len(won) == 10 and len(lost) == 40, Counter(type(outcome).__name__ for _m, outcome in results)
    assert Reward.objects.get(pk=reward.pk).stock == 0
    assert Redemption.objects.count() == 10 == Voucher.objects.count()
    balances = dict(Account.objects.filter(member__in=members).values_list("member_id", "available"))
    assert sorted(balances.values()) == [100] * 10 + [600] * 40
    assert {m.pk for m in won} == {pk for pk, available in balances.items() if available == 100}
    call_command("points_verify_ledger", "--no-progress")


@pytest.mark.django_db(transaction=True)
def test_voucher_use_two_tills_at_once_exactly_one_succeeds(member, make_reward, earn):
    earn(member, 1000)
    result = services.reward_redeem(member=member, reward=make_reward(), actor=SYSTEM)
    voucher = Voucher.objects.get(redemption=result.redemption)

    for _round in range(3):  # a few rounds, so a lucky ordering cannot pass the test alone
        Voucher.objects.filter(pk=voucher.pk).update(status="issued", used_reference="", used_at=None)
        outcomes = run_concurrently(
            lambda till: services.voucher_use(
                voucher=voucher, reference=f"receipt-{till}", basket=BasketInput(), actor=SYSTEM
            ),
            ["till-1", "till-2"],
            workers=2,
        )
        used = [o for _t, o in outcomes if isinstance(o, services.VoucherUseResult)]
        refused = [o for _t, o in outcomes if isinstance(o, VoucherNotUsableError)]
        assert len(used) == 1 and len(refused) == 1, outcomes
        assert refused[0].extra["reasons"] == ["used"]
        assert Voucher.objects.get(pk=voucher.pk).used_reference == used[0].voucher.used_reference


@pytest.mark.django_db(transaction=True)
def test_reward_redeem_one_member_concurrent_requests_respect_the_limit(member, make_reward, earn):
    earn(member, 10_000)
    reward = make_reward(limit_total=3)

    results = run_concurrently(
        lambda _i: services.reward_redeem(member=member, reward=reward, actor=SYSTEM), range(12), workers=12
    )

    kinds = Counter(type(outcome).__name__ for _i, outcome in results)
    assert kinds == {"RedemptionResult": 3, "MemberLimitReachedError": 9}, kinds
    assert all(isinstance(o, services.RedemptionResult | MemberLimitReachedError) for _i, o in results)
    assert Account.objects.get(member=member).available == 10_000 - 3 * 500
    call_command("points_verify_ledger", "--no-progress")
