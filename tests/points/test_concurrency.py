"""Concurrency and integrity against PostgreSQL with real threads (each thread has its own
database connection and transaction), and the guards the database itself enforces."""

from __future__ import annotations

import queue
import sys
import threading
from collections import Counter

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.utils import InternalError

from points import services
from points.errors import InsufficientPointsError
from points.models import Account, Entry, Transaction
from tests.conftest import ApiTestClient

from .conftest import SYSTEM, assert_ledger_consistent

WORKERS = 12


@pytest.fixture(autouse=True)
def _short_gil_switch_interval():
    # Many Python threads share one GIL here (production runs separate processes): let the
    # thread holding the row locks get it back quickly instead of waiting 5 ms per wake-up.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    yield
    sys.setswitchinterval(previous)


def run_concurrently(work, items, workers: int = WORKERS) -> list:
    """Run ``work(item)`` for every item on ``workers`` threads that start together.
    Returns (item, result or exception) pairs; each thread closes its connection."""
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
def test_points_redeem_200_concurrent_exactly_100_succeed(member):
    services.points_earn(member=member, amount=1000, actor=SYSTEM)

    results = run_concurrently(
        lambda _i: services.points_redeem(member=member, amount=10, actor=SYSTEM), range(200)
    )

    successes = [r for _i, r in results if isinstance(r, services.PointsResult)]
    refused = [r for _i, r in results if isinstance(r, InsufficientPointsError)]
    assert len(successes) == 100 and len(refused) == 100, Counter(type(r).__name__ for _i, r in results)
    # Every success saw a different balance after it: the redemptions were serialised.
    assert sorted(r.account.available for r in successes) == list(range(0, 1000, 10))
    assert all(error.extra["available"] < 10 for error in refused)
    account = Account.objects.get(member=member)
    assert account.available == 0
    assert Transaction.objects.filter(kind="redeem").count() == 100
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
def test_points_transfer_500_each_way_no_deadlock_total_conserved(member, make_member):
    other = make_member()
    services.points_earn(member=member, amount=5000, actor=SYSTEM)
    services.points_earn(member=other, amount=5000, actor=SYSTEM)
    directions = [(member, other)] * 500 + [(other, member)] * 500

    results = run_concurrently(
        lambda pair: services.points_transfer(member=pair[0], to_member=pair[1], amount=5, actor=SYSTEM),
        directions,
    )

    failures = [r for _pair, r in results if not isinstance(r, services.PointsResult)]
    assert failures == [], failures[:3]
    accounts = Account.objects.filter(member__in=[member, other])
    assert sum(a.available for a in accounts) == 10000
    assert {a.member_id: a.available for a in accounts} == {member.pk: 5000, other.pk: 5000}
    assert Transaction.objects.filter(kind="transfer").count() == 1000
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
def test_points_earn_50_identical_requests_one_idempotency_key_one_transaction(member, api):
    url = f"/api/v1/members/{member.pk}/points/earn"

    def send(_i):
        client = ApiTestClient()
        client.credentials(HTTP_X_API_KEY=api.key)
        return client.post(url, {"amount": 25}, format="json", HTTP_IDEMPOTENCY_KEY="till-7-sale-1")

    results = run_concurrently(send, range(50), workers=50)

    statuses = Counter(response.status_code for _i, response in results)
    assert set(statuses) <= {201, 409}, statuses
    assert statuses[201] >= 1
    assert all(r.json()["code"] == "idempotency_key_in_use" for _i, r in results if r.status_code == 409)
    ids = {r.json()["transaction"]["id"] for _i, r in results if r.status_code == 201}
    assert len(ids) == 1
    assert Transaction.objects.filter(kind="earn").count() == 1
    assert Account.objects.get(member=member).available == 25
    replay = send(0)
    assert replay.status_code == 201 and replay.json()["transaction"]["id"] in ids
    connection.close()
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
def test_points_earn_same_reference_concurrently_creates_one(member):
    results = run_concurrently(
        lambda _i: services.points_earn(member=member, amount=40, reference="offline-42", actor=SYSTEM),
        range(20),
    )
    outcomes = [r for _i, r in results]
    assert all(isinstance(r, services.PointsResult) for r in outcomes), outcomes[:3]
    assert sum(r.created for r in outcomes) == 1
    assert len({r.transaction.pk for r in outcomes}) == 1
    assert Account.objects.get(member=member).available == 40
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
def test_points_capture_and_release_race_one_wins(member):
    services.points_earn(member=member, amount=100, actor=SYSTEM)
    hold = services.hold_create(member=member, amount=60, actor=SYSTEM).hold

    def act(kind):
        if kind == "capture":
            return services.hold_capture(hold=hold, actor=SYSTEM)
        return services.hold_release(hold=hold, actor=SYSTEM)

    results = run_concurrently(act, ["capture", "release"] * 10)
    wins = [r for _k, r in results if isinstance(r, services.PointsResult)]
    assert len(wins) == 1
    account = Account.objects.get(member=member)
    assert account.held == 0 and account.available in (40, 100)
    assert_ledger_consistent()


# --- What the database itself refuses ------------------------------------------------------


def test_database_refuses_negative_available_balance(member, make_member, make_currency):
    services.points_earn(member=member, amount=5, actor=SYSTEM)
    account = Account.objects.get(member=member)
    with pytest.raises(IntegrityError, match="points_account_available_not_negative"), transaction.atomic():
        Account.objects.filter(pk=account.pk).update(available=-1)
    flexible = make_currency("FLEX", allow_negative=True)
    services.points_redeem(member=member, amount=3, currency=flexible, actor=SYSTEM)
    assert Account.objects.get(member=member, currency=flexible).available == -3


def test_database_refuses_changing_or_deleting_ledger_rows(member):
    result = services.points_earn(member=member, amount=5, actor=SYSTEM)
    with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
        Entry.objects.filter(transaction=result.transaction).update(amount=50)
    with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
        Transaction.objects.filter(pk=result.transaction.pk).update(amount=50)
    with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
        Entry.objects.filter(transaction=result.transaction).delete()


def test_database_refuses_unbalanced_transaction(member):
    result = services.points_earn(member=member, amount=5, actor=SYSTEM)
    account = Account.objects.get(member=member)
    with pytest.raises((IntegrityError, InternalError), match="unbalanced"), transaction.atomic():
        Entry.objects.create(transaction=result.transaction, account=account, amount=1)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.django_db(transaction=True)
def test_lock_accounts_creating_the_same_accounts_in_opposite_orders_does_not_deadlock(program, make_member):
    """Two bulk writers (e.g. two import jobs) naming the same new members in opposite
    orders: the missing accounts are created in member id order, so the second waits for
    the first instead of each waiting for a row the other has just inserted."""
    from points import posting
    from points.selectors import default_currency

    currency = default_currency(program_id=program.pk)
    members = [make_member() for _ in range(150)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(ordered) -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                posting.lock_accounts(ordered, currency)
        except BaseException as error:  # asserted on below
            errors.append(error)
        finally:
            connection.close()

    for _attempt in range(3):
        Account.objects.filter(member__in=members).delete()
        threads = [
            threading.Thread(target=writer, args=(order,)) for order in (members, list(reversed(members)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert Account.objects.filter(member__in=members, currency=currency).count() == 150
