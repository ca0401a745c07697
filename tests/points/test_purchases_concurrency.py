"""Purchases under concurrency, with real threads (each its own connection and transaction):
tills posting the same receipt at once, and purchases racing for a campaign's last budget."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from points.earning import purchases
from points.errors import DuplicateReferenceError
from points.models import Campaign, PointsAward, Purchase, Transaction

from .conftest import SYSTEM, assert_ledger_consistent, line

pytestmark = pytest.mark.django_db(transaction=True)


def at_once(works) -> list:
    """Run each callable on its own thread, all starting together; results or exceptions."""
    results: list = [None] * len(works)
    start = threading.Barrier(len(works))

    def run(index, work):
        try:
            start.wait()
            results[index] = work()
        except Exception as error:  # collected and asserted on by the test
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, work)) for i, work in enumerate(works)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return results


def record(program, member, reference="RECEIPT-1", amount="25.00"):
    return lambda: purchases.purchase_record(
        program=program, member=member, reference=reference, lines=[line("A", amount)], actor=SYSTEM
    )


def test_purchase_same_receipt_from_two_tills_at_once_gives_one_purchase(program, member, base_rule):
    results = at_once([record(program, member) for _ in range(6)])
    assert all(isinstance(r, purchases.PurchaseResult) for r in results), results
    assert sum(r.created for r in results) == 1
    assert {r.purchase.pk for r in results} == {Purchase.objects.get().pk}
    assert Transaction.objects.filter(kind="earn").count() == 1
    assert_ledger_consistent(program)


def test_purchase_same_reference_for_different_members_at_once_one_wins(program, make_member, base_rule):
    members = [make_member() for _ in range(4)]
    results = at_once([record(program, m) for m in members])
    created = [r for r in results if isinstance(r, purchases.PurchaseResult)]
    refused = [r for r in results if isinstance(r, DuplicateReferenceError)]
    assert (len(created), len(refused)) == (1, 3), results
    assert Purchase.objects.count() == 1


def test_campaign_budget_two_purchases_cannot_both_take_the_last_points(program, make_member, make_rule):
    make_rule("base", "1")
    campaign = Campaign.objects.get(
        pk=_campaign(program, code="launch", value=Decimal(60), budget_points=100).pk
    )
    members = [make_member() for _ in range(6)]
    results = at_once([record(program, m, reference=f"R-{i}") for i, m in enumerate(members)])
    assert all(isinstance(r, purchases.PurchaseResult) for r in results), results
    given = sorted(
        PointsAward.objects.filter(campaign=campaign).values_list("points", flat=True), reverse=True
    )
    assert given[:2] == [60, 40] and sum(given) == 100
    campaign.refresh_from_db()
    assert campaign.budget_used == 100
    assert_ledger_consistent(program)


def _campaign(program, **fields):
    from points.earning import config

    return config.campaign_create(
        program=program, name="Launch", effect="fixed_bonus", scope="per_purchase", actor=SYSTEM, **fields
    )
