"""The points computation (``points.earning.compute``), a pure function: worked examples for
each effect, stacking mode, condition, cap and the rounding, with the numbers of
docs/earning.md. No database."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from points.earning.compute import (
    BEST,
    BONUS,
    CAMPAIGN,
    MULTIPLIER,
    MULTIPLY,
    PER_PURCHASE,
    RATE,
    RULE,
    Basket,
    Limit,
    Line,
    MemberFacts,
    RuleSpec,
    compute,
    in_hours,
)

D = Decimal
PARIS = ZoneInfo("Europe/Paris")
SATURDAY_10AM = datetime(2026, 3, 14, 10, 0, tzinfo=PARIS)
_ids = iter(range(1, 10_000))


def rule(code="base", value="1", effect=RATE, source=RULE, **fields) -> RuleSpec:
    fields.setdefault("currency_id", 1)
    for name in ("weekdays", "locations", "skus", "categories", "tiers", "labels"):
        if name in fields:
            fields[name] = frozenset(fields[name])
    return RuleSpec(
        source=source,
        id=fields.pop("id", next(_ids)),
        code=code,
        name=fields.pop("name", code.title()),
        effect=effect,
        scope=fields.pop("scope", "per_line"),
        value=D(value),
        **fields,
    )


def campaign(code, value, effect=MULTIPLIER, **fields) -> RuleSpec:
    return rule(code, value, effect, source=CAMPAIGN, **fields)


def basket(*lines, when=SATURDAY_10AM, location="paris-01") -> Basket:
    return Basket(when=when, location=location, lines=tuple(lines))


def ln(number, amount, sku="SKU", category="", quantity="1", eligible=True) -> Line:
    return Line(number, sku, category, D(quantity), D(amount), eligible)


WORKED_BASKET = basket(
    ln(1, "16.98", "BEANS", "coffee", quantity="2"),  # 2 × 8.99 - 1.00 discount
    ln(2, "12.50", "MUG", "kitchen"),
    ln(3, "25.00", "GIFT", "gift", eligible=False),  # a gift card never earns
)
SILVER = MemberFacts(tier_code="silver", tier_name="Silver", earn_multiplier=D("1.25"))


def points(result, currency_id=1) -> int:
    return result.points_in(currency_id)


def shares(result, currency_id=1) -> list[tuple[str, int]]:
    return [(a.code, a.points) for a in result.currencies[currency_id].awards]


def test_compute_worked_example_one_floor_per_purchase():
    """docs/earning.md, "A worked example"."""
    result = compute(
        basket=WORKED_BASKET,
        member=SILVER,
        rules=[
            rule("base", "1"),
            campaign("coffee-x2", "2", categories=["coffee"], priority=10),
            campaign("welcome-50", "50", BONUS, scope=PER_PURCHASE, min_spend=D("20")),
        ],
    )
    awards = result.currencies[1].awards
    assert [(a.code, a.lines, a.base, a.exact) for a in awards] == [
        ("base", (1, 2), D("29.48"), D("29.48")),
        ("coffee-x2", (1,), D("16.98"), D("16.98")),
        ("silver", (1, 2), D("46.46"), D("11.615")),
        ("welcome-50", (1, 2), D(1), D(50)),
    ]
    assert result.currencies[1].exact == D("108.075")
    assert points(result) == 108  # floor(108.075); flooring each part would give 106
    # Shares: floors 29 + 16 + 11 + 50 = 106, the 2 points left go to the largest fractions.
    assert shares(result) == [("base", 29), ("coffee-x2", 17), ("silver", 12), ("welcome-50", 50)]
    assert result.eligible_amount == D("29.48")


def test_compute_base_rate_highest_priority_rule_wins_each_line():
    result = compute(
        basket=WORKED_BASKET,
        member=MemberFacts(),
        rules=[rule("base", "1"), rule("coffee-rate", "3", categories=["coffee"], priority=5)],
    )
    assert shares(result) == [("coffee-rate", 51), ("base", 12)]  # 50.94 and 12.50: the leftover point to .94
    assert points(result) == 63  # floor(63.44)


def test_compute_lines_without_a_rate_rule_earn_no_base():
    result = compute(
        basket=WORKED_BASKET, member=MemberFacts(), rules=[rule("coffee-only", "2", categories=["coffee"])]
    )
    assert points(result) == 33  # 2 × 16.98 = 33.96


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # base 10; priorities decide the order: the first applies first.
        (("add", "2"), ("multiply", "1.5"), 30),  # 10 + 10 = 20, then × 1.5 = 30
        (("multiply", "1.5"), ("add", "2"), 25),  # 10 × 1.5 = 15, then + 10 = 25
        (("add", "2"), ("add", "1.5"), 25),  # 10 + 10 + 5: adds are on the base
        (("multiply", "2"), ("multiply", "1.5"), 30),  # 10 × 2 × 1.5
    ],
)
def test_compute_multiplier_stacking_add_and_multiply_in_priority_order(first, second, expected):
    result = compute(
        basket=basket(ln(1, "10.00")),
        member=MemberFacts(),
        rules=[
            rule("base", "1"),
            campaign("first", first[1], stacking=first[0], priority=20),
            campaign("second", second[1], stacking=second[0], priority=10),
        ],
    )
    assert points(result) == expected
    assert sum(points for _code, points in shares(result)) == expected


def test_compute_best_only_takes_the_better_of_it_alone_or_the_others_combined():
    rules = [
        rule("base", "1"),
        campaign("x2", "2"),  # + 10
        campaign("bonus-5", "5", BONUS, scope=PER_PURCHASE),  # + 5
        campaign("x3-best", "3", stacking=BEST),  # + 20 alone, never with the others
    ]
    result = compute(basket=basket(ln(1, "10.00")), member=MemberFacts(), rules=rules)
    assert shares(result) == [("base", 10), ("x3-best", 20)]
    # With a bigger bonus the stacking ones together earn more: the best-only one is out.
    rules[2] = campaign("bonus-15", "15", BONUS, scope=PER_PURCHASE)
    result = compute(basket=basket(ln(1, "10.00")), member=MemberFacts(), rules=rules)
    assert shares(result) == [("base", 10), ("x2", 10), ("bonus-15", 15)]


def test_compute_best_only_ties_go_to_the_stacking_ones_then_priority():
    rules = [
        rule("base", "1"),
        campaign("x2", "2"),
        campaign("low", "2", stacking=BEST, priority=1),
        campaign("high", "2", stacking=BEST, priority=9),
    ]
    result = compute(basket=basket(ln(1, "10.00")), member=MemberFacts(), rules=rules)
    assert shares(result) == [("base", 10), ("x2", 10)]
    result = compute(basket=basket(ln(1, "10.00")), member=MemberFacts(), rules=[rules[0], *rules[2:]])
    assert shares(result) == [("base", 10), ("high", 10)]


def test_compute_fixed_bonus_per_line_counts_quantity_and_per_purchase_counts_once():
    result = compute(
        basket=basket(ln(1, "30.00", "WINE", quantity="3"), ln(2, "5.00", "BREAD")),
        member=MemberFacts(),
        rules=[
            campaign("per-bottle", "20", BONUS, skus=["WINE"]),
            campaign("per-visit", "7", BONUS, scope=PER_PURCHASE),
        ],
    )
    assert [(a.code, a.lines, a.base, a.points) for a in result.currencies[1].awards] == [
        ("per-bottle", (1,), D(3), 60),
        ("per-visit", (1, 2), D(1), 7),
    ]


def test_compute_per_purchase_multiplier_triggered_by_a_sku_covers_the_whole_basket():
    rules = [rule("base", "1"), campaign("machine-x2", "2", skus=["MACHINE"], scope=PER_PURCHASE)]
    with_machine = basket(
        ln(1, "100.00", "MACHINE"), ln(2, "20.00", "BEANS"), ln(3, "9.00", "GC", eligible=False)
    )
    assert points(compute(basket=with_machine, member=MemberFacts(), rules=rules)) == 240
    without = basket(ln(1, "20.00", "BEANS"))
    assert points(compute(basket=without, member=MemberFacts(), rules=rules)) == 20
    per_line = [rule("base", "1"), campaign("machine-x2", "2", skus=["MACHINE"])]
    assert points(compute(basket=with_machine, member=MemberFacts(), rules=per_line)) == 220


def test_compute_campaign_extra_rate_adds_and_the_tier_does_not_multiply_it():
    result = compute(
        basket=basket(ln(1, "10.00", category="coffee")),
        member=SILVER,
        rules=[
            rule("base", "1"),
            campaign("coffee-extra", "5", RATE, categories=["coffee"]),
            campaign("bonus", "4", BONUS, scope=PER_PURCHASE),
        ],
    )
    # base 10 × 1.25 (tier: +2.5) + 5 × 10 + 4
    assert shares(result) == [("base", 10), ("silver", 2), ("coffee-extra", 50), ("bonus", 4)]
    assert points(result) == 66


def test_compute_gift_cards_and_excluded_lines_never_earn():
    result = compute(
        basket=basket(ln(1, "50.00", "GC", eligible=False), ln(2, "8.00", "TOBACCO", eligible=False)),
        member=MemberFacts(),
        rules=[rule("base", "1"), campaign("visit", "10", BONUS, scope=PER_PURCHASE)],
    )
    assert points(result) == 0
    assert result.currencies[1].awards == ()


@pytest.mark.parametrize(
    ("fields", "applies"),
    [
        ({"starts_on": date(2026, 3, 14)}, True),
        ({"starts_on": date(2026, 3, 15)}, False),
        ({"ends_on": date(2026, 3, 14)}, True),
        ({"ends_on": date(2026, 3, 13)}, False),
        ({"hours_from": time(9), "hours_to": time(11)}, True),
        ({"hours_from": time(10, 1), "hours_to": time(11)}, False),
        ({"hours_from": time(8), "hours_to": time(10)}, False),  # the end is excluded
        ({"hours_from": time(22), "hours_to": time(11)}, True),  # past midnight
        ({"hours_from": time(22), "hours_to": time(2)}, False),
        ({"weekdays": [6, 7]}, True),  # Saturday
        ({"weekdays": [1, 2, 3, 4, 5]}, False),
        ({"locations": ["paris-01"]}, True),
        ({"locations": ["lyon-01"]}, False),
        ({"tiers": ["silver", "gold"]}, True),
        ({"tiers": ["gold"]}, False),
        ({"labels": ["vip", "staff"]}, True),
        ({"labels": ["staff"]}, False),
        ({"first_purchase_only": True}, False),
        ({"skus": ["MUG"]}, True),
        ({"skus": ["NOPE"], "categories": ["kitchen"]}, True),
        ({"categories": ["gift"]}, False),  # the gift card line is not eligible
        ({"min_spend": D("29.48")}, True),
        ({"min_spend": D("29.49")}, False),
        ({"categories": ["coffee"], "min_spend": D("17.00")}, False),  # only matching lines count
    ],
)
def test_compute_conditions(fields, applies):
    member = MemberFacts(tier_code="silver", labels=frozenset({"vip"}), first_purchase=False)
    result = compute(
        basket=WORKED_BASKET,
        member=member,
        rules=[campaign("bonus", "10", BONUS, scope=PER_PURCHASE, **fields)],
    )
    assert points(result) == (10 if applies else 0)


def test_compute_times_are_program_local():
    # 23:30 UTC on Friday 13 March is 00:30 on Saturday the 14th in Paris.
    late = datetime(2026, 3, 13, 23, 30, tzinfo=ZoneInfo("UTC")).astimezone(PARIS)
    spec = campaign("weekend-night", "10", BONUS, scope=PER_PURCHASE, weekdays=[6], hours_to=time(1))
    assert points(compute(basket=basket(ln(1, "1.00"), when=late), member=MemberFacts(), rules=[spec])) == 10


def test_compute_in_hours_edges():
    assert in_hours(time(0), None, None)
    assert in_hours(time(23, 59), time(22), time(2)) and in_hours(time(1, 59), time(22), time(2))
    assert not in_hours(time(2), time(22), time(2))
    assert in_hours(time(12), time(12), None) and not in_hours(time(12), None, time(12))


def test_compute_first_purchase_only():
    spec = campaign("first", "100", BONUS, scope=PER_PURCHASE, first_purchase_only=True)
    assert points(compute(basket=WORKED_BASKET, member=MemberFacts(first_purchase=True), rules=[spec])) == 100
    assert points(compute(basket=WORKED_BASKET, member=MemberFacts(first_purchase=False), rules=[spec])) == 0


def test_compute_per_purchase_cap_scales_a_multiplier_on_every_line_it_covers():
    rules = [
        rule("base", "1"),
        campaign("x3", "3", max_points_per_purchase=10, priority=2),  # 2 × 29.48 = 58.96, capped at 10
        campaign("x2-after", "2", stacking=MULTIPLY, priority=1),  # doubles base + the capped extra
    ]
    result = compute(basket=WORKED_BASKET, member=MemberFacts(), rules=rules)
    awards = {a.code: a for a in result.currencies[1].awards}
    assert (awards["x3"].exact, awards["x3"].capped_by) == (D(10), "per_purchase")
    assert awards["x2-after"].exact == D("39.48")
    assert points(result) == 78  # 29.48 + 10 + 39.48


def test_compute_external_limits_cut_with_their_reason_and_the_tightest_wins():
    rules = [
        rule("base", "1"),
        campaign("bonus", "50", BONUS, scope=PER_PURCHASE, max_points_per_purchase=40),
    ]
    key = rules[1].key
    for limit, expected, reason in [
        (Limit(100, "member_day"), 40, "per_purchase"),
        (Limit(15, "member_month"), 15, "member_month"),
        (Limit(0, "budget"), 0, "budget"),
    ]:
        result = compute(
            basket=basket(ln(1, "10.00")), member=MemberFacts(), rules=rules, limits={key: limit}
        )
        award = next(a for a in result.currencies[1].awards if a.code == "bonus")
        assert (award.points, award.capped_by) == (expected, reason)
        assert points(result) == 10 + expected


def test_compute_rounding_one_floor_not_per_line():
    lines = [ln(n, "0.70") for n in (1, 2, 3)]
    result = compute(basket=basket(*lines), member=MemberFacts(), rules=[rule("base", "1")])
    assert points(result) == 2  # floor(2.10); flooring each line would give 0


def test_compute_each_currency_separately():
    result = compute(
        basket=basket(ln(1, "10.00")),
        member=MemberFacts(),
        rules=[
            rule("base", "1"),
            rule("stamps", "0.1", currency_id=2),
            campaign("stamp", "1", BONUS, currency_id=2),
        ],
    )
    assert (points(result, 1), points(result, 2)) == (10, 2)


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(st.decimals(min_value=0, max_value=500, places=2), min_size=1, max_size=8),
    rate=st.decimals(min_value="0.01", max_value=20, places=2),
    factor=st.decimals(min_value=1, max_value=5, places=2),
    tier=st.decimals(min_value=0, max_value=3, places=2),
    bonus=st.integers(min_value=1, max_value=100),
    cap=st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
)
def test_compute_shares_add_up_to_the_floor_of_the_exact_total(amounts, rate, factor, tier, bonus, cap):
    result = compute(
        basket=basket(*(ln(n, str(a), category="c" if n % 2 else "") for n, a in enumerate(amounts, 1))),
        member=MemberFacts(tier_code="t", earn_multiplier=tier),
        rules=[
            rule("base", str(rate)),
            campaign("x", str(factor), categories=["c"], max_points_per_purchase=cap),
            campaign("y", str(factor), stacking=MULTIPLY),
            campaign("b", str(bonus), BONUS, scope=PER_PURCHASE),
        ],
    )
    currency = result.currencies[1]
    assert currency.points == max(int(currency.exact // 1), 0)
    assert sum(a.points for a in currency.awards) == currency.points
    if cap is not None:
        assert all(a.points <= cap for a in currency.awards if a.code == "x")
