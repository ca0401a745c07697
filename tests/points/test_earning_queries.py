"""A purchase and a quote use a fixed number of queries whatever the number of lines and of
active campaigns (a 50-line basket with 20 campaigns costs what a 2-line one with 2 does)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from points.earning import purchases

from .conftest import SYSTEM, line

pytestmark = pytest.mark.django_db

# Measured: a purchase is 45 queries, about a third of them savepoints (member facts, locks,
# rules, the ledger posting, tier activity, events); the bound leaves room for small changes
# only.
MAX_PURCHASE_QUERIES = 50
MAX_QUOTE_QUERIES = 12


@pytest.fixture
def campaigns(make_campaign):
    """Campaigns of every kind: multipliers (add, multiply, best), bonuses per line and per
    purchase, a rate, with per-member caps and budgets."""

    def _make(count: int, start: int = 0) -> None:
        kinds = [
            {"effect": "multiplier", "value": "2", "categories": ["c0"]},
            {"effect": "multiplier", "value": "1.5", "stacking": "multiply"},
            {"effect": "fixed_bonus", "value": "5", "skus": ["S1", "S2"]},
            {"effect": "fixed_bonus", "value": "20", "scope": "per_purchase", "budget_points": 10_000},
            {"effect": "points_per_unit", "value": "0.5", "max_points_per_member_day": 500},
            {"effect": "multiplier", "value": "3", "stacking": "best", "max_points_per_member_month": 900},
        ]
        for index in range(start, start + count):
            fields = dict(kinds[index % len(kinds)])
            make_campaign(f"c{index}", fields.pop("value"), priority=index, **fields)

    return _make


def basket(size: int) -> list:
    return [line(f"S{n}", "3.10", quantity="2", category=f"c{n % 3}") for n in range(size)]


def measure(work) -> int:
    with CaptureQueriesContext(connection) as queries:
        work()
    return len(queries)


def test_purchase_queries_do_not_grow_with_lines_or_campaigns(program, make_member, base_rule, campaigns):
    campaigns(6)  # one of each kind
    small_member, large_member = make_member(), make_member()
    small = measure(
        lambda: purchases.purchase_record(
            program=program, member=small_member, reference="S-1", lines=basket(2), actor=SYSTEM
        )
    )
    campaigns(14, start=6)
    large = measure(
        lambda: purchases.purchase_record(
            program=program, member=large_member, reference="L-1", lines=basket(50), actor=SYSTEM
        )
    )
    assert large == small, (small, large)
    quotes = [
        measure(
            lambda size=size: purchases.purchase_quote(
                program=program, member=large_member, lines=basket(size)
            )
        )
        for size in (2, 50)
    ]
    assert quotes[0] == quotes[1], quotes


def test_fifty_lines_twenty_campaigns_purchase_within_a_fixed_number_of_queries(
    program, member, base_rule, campaigns, django_assert_max_num_queries
):
    campaigns(20)
    with django_assert_max_num_queries(MAX_PURCHASE_QUERIES):
        result = purchases.purchase_record(
            program=program, member=member, reference="BIG", lines=basket(50), actor=SYSTEM
        )
    assert result.purchase.lines.count() == 50
    assert result.purchase.points > 0
    with django_assert_max_num_queries(MAX_QUOTE_QUERIES):
        purchases.purchase_quote(program=program, member=member, lines=basket(50))


def _account_locks(queries) -> int:
    return sum(
        1
        for query in queries.captured_queries
        if 'FROM "points_account"' in query["sql"] and "FOR UPDATE" in query["sql"]
    )


@pytest.mark.parametrize("service", ["earn", "adjust"])
def test_qualifying_earn_and_adjust_lock_the_account_once(program, make_member, service):
    """``lock_members`` locks the account and hands it to the ledger service, which does
    not lock it again (one query less on the hottest path)."""
    from points.earning import qualifying

    member = make_member()
    qualifying.points_earn_qualifying(member=member, amount=5, actor=SYSTEM)  # the account exists
    with CaptureQueriesContext(connection) as queries:
        if service == "earn":
            qualifying.points_earn_qualifying(member=member, amount=5, actor=SYSTEM)
        else:
            qualifying.points_adjust_qualifying(member=member, amount=-3, reason="fix", actor=SYSTEM)
    assert _account_locks(queries) == 1
    from points.models import Account

    assert Account.objects.get(member=member).available == (10 if service == "earn" else 2)


def test_a_locked_account_of_another_member_or_currency_is_refused(program, make_member):
    from points import services
    from points.earning.qualifying import lock_members
    from points.selectors import default_currency

    currency = default_currency(program_id=program.pk)
    first, second = make_member(), make_member()
    accounts = lock_members([first, second], [currency], actor=SYSTEM)
    with pytest.raises(ValueError):
        services.points_earn(
            member=first,
            amount=1,
            actor=SYSTEM,
            currency=currency,
            account=accounts[(second.pk, currency.pk)],
        )
    with pytest.raises(ValueError):
        services.points_adjust(
            member=first, amount=1, reason="x", actor=SYSTEM, account=accounts[(first.pk, currency.pk)]
        )


def test_qualifying_earn_reads_neither_the_member_status_nor_the_default_tier_twice(program, make_member):
    """``record`` tells ``activity_record`` that ``lock_members`` already locked the tier row
    and gave the default tier: in a program without tiers the default tier is looked up once,
    and the member's status is not read again."""
    from points.earning import qualifying

    member = make_member()
    qualifying.points_earn_qualifying(member=member, amount=5, actor=SYSTEM)
    with CaptureQueriesContext(connection) as queries:
        qualifying.points_earn_qualifying(member=member, amount=5, actor=SYSTEM)
    statements = [query["sql"] for query in queries.captured_queries]
    assert sum('FROM "tiers_tier"' in sql for sql in statements) == 1
    assert not any(sql.startswith('SELECT "members_member"."status"') for sql in statements)


def test_purchase_locks_the_member_account_once(program, make_member, base_rule):
    """``lock_members`` locks the account before the computation and hands it to the ledger.
    A retry after a budget race reads it afresh (covered by
    ``test_campaign_budget_two_purchases_cannot_both_take_the_last_points``)."""
    member = make_member()
    purchases.purchase_record(program=program, member=member, reference="A-1", lines=basket(2), actor=SYSTEM)
    with CaptureQueriesContext(connection) as queries:
        purchases.purchase_record(
            program=program, member=member, reference="A-2", lines=basket(2), actor=SYSTEM
        )
    assert _account_locks(queries) == 1
