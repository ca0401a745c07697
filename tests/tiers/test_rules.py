"""The pure rules: the evaluation's quick screen never hides a decision."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tiers import rules

WINDOWS = [
    rules.WindowKey("rolling_months", 12),
    rules.WindowKey("rolling_months", 3),
    rules.WindowKey("calendar_year"),
    rules.WindowKey("anniversary_year"),
    rules.WindowKey("lifetime"),
]
ON = date(2025, 6, 1)


def thresholds(draw, *, entry: bool):
    minimum = 1 if entry else 0
    values = [
        draw(st.none() | st.integers(minimum, 50).map(lambda n: Decimal(n * 10))),
        draw(st.none() | st.integers(minimum, 50)),
        draw(st.none() | st.integers(minimum, 10)),
    ]
    return rules.Thresholds(*values, mode=draw(st.sampled_from(["any", "all"])))


@st.composite
def ladders(draw):
    size = draw(st.integers(2, 4))
    tier_rules = []
    for index in range(size):
        entry = thresholds(draw, entry=True)
        retention = entry if draw(st.booleans()) else thresholds(draw, entry=False)
        tier_rules.append(
            rules.TierRule(
                id=index + 1,
                code=f"t{index}",
                rank=index * 10,
                is_default=index == 0,
                window=draw(st.sampled_from(WINDOWS)),
                entry=entry,
                retention=retention,
                grace_months=draw(st.integers(0, 3)),
                downgrade_policy=draw(st.sampled_from(["one_level", "supported_level"])),
            )
        )
    return rules.Ladder(tuple(tier_rules))


@st.composite
def cases(draw):
    ladder = draw(ladders())
    layout = rules.MetricLayout.of(ladder.windows)
    row = tuple(
        Decimal(draw(st.integers(-100, 600))) if index % 3 == 0 else draw(st.integers(-5, 60))
        for index in range(layout.width)
    )
    tier_ids = [rule.id for rule in ladder.rules]
    state = rules.StateSnapshot(
        tier_id=draw(st.sampled_from(tier_ids)),
        grace_until=draw(st.none() | st.dates(date(2025, 1, 1), date(2025, 12, 31))),
        locked_until=draw(st.none() | st.dates(date(2025, 1, 1), date(2025, 12, 31))),
        lifetime_tier_id=draw(st.none() | st.sampled_from(tier_ids)),
    )
    return ladder, layout, row, state


@settings(max_examples=150, deadline=None)
@given(cases())
def test_screen_passes_every_member_decide_would_change(case):
    ladder, layout, row, state = case
    decision = rules.decide(ladder, state, layout.window_metrics(row), on=ON, live=False)
    if decision is not None:
        assert rules.Screen(ladder, layout)(state.tier_id, row, state.grace_until)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_decide_never_moves_a_member_down_live(case):
    ladder, layout, row, state = case
    decision = rules.decide(ladder, state, layout.window_metrics(row), on=ON, live=True)
    if decision is not None:
        assert decision.reason in ("upgrade", "grace_ended")
        assert ladder.by_id[decision.to_tier_id].rank >= ladder.by_id[state.tier_id].rank


@settings(max_examples=60, deadline=None)
@given(cases())
def test_decide_never_goes_below_a_lifetime_tier(case):
    ladder, layout, row, state = case
    decision = rules.decide(ladder, state, layout.window_metrics(row), on=ON, live=False)
    if decision is not None and decision.reason == "downgrade" and state.lifetime_tier_id:
        floor = ladder.by_id[state.lifetime_tier_id]
        current = ladder.by_id[state.tier_id]
        assert ladder.by_id[decision.to_tier_id].rank >= min(floor.rank, current.rank)
