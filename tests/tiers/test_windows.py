"""Qualification windows and their edges, counted in the program's time zone (Paris)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.tiers.conftest import SYSTEM, paris
from tiers import rules, services
from tiers.models import MemberTier

pytestmark = pytest.mark.django_db
UTC = ZoneInfo("UTC")


@pytest.fixture
def vip_ladder(make_tier):
    """basic (default) and vip (100 EUR in the window, moved down at once)."""

    def _make(window_kind: str, window_months: int = 12):
        make_tier("basic", 1)
        return make_tier(
            "vip", 2, qualify_spend=Decimal("100"), window_kind=window_kind, window_months=window_months
        )

    return _make


def tier_code(member) -> str:
    return MemberTier.objects.select_related("tier").get(member=member).tier.code


def evaluate(program, day, clock):
    clock(paris(day, 3))
    return services.tiers_evaluate(program=program, on=day, actor=SYSTEM)


def test_rolling_window_drops_activity_on_the_program_local_day(
    vip_ladder, program, make_member, record, clock
):
    vip_ladder("rolling_months", 12)
    clock(datetime(2024, 3, 15, 8, tzinfo=UTC))
    member = make_member()
    # 23:30 UTC on 14 March 2024 is 00:30 on 15 March in Paris: the activity's day is the 15th.
    record(member, datetime(2024, 3, 14, 23, 30, tzinfo=UTC), spend="100.00")
    assert tier_code(member) == "vip"

    evaluate(program, date(2025, 3, 15), clock)
    assert tier_code(member) == "vip"  # 15 March 2024 is still in the 12 months
    evaluate(program, date(2025, 3, 16), clock)
    assert tier_code(member) == "basic"


def test_rolling_window_at_activity_time_counts_from_the_same_day(vip_ladder, make_member, record, clock):
    vip_ladder("rolling_months", 1)
    clock(paris(date(2025, 3, 15), 10))
    old, edge = make_member(), make_member()
    record(old, date(2025, 2, 14), spend="60.00")
    record(edge, date(2025, 2, 15), spend="60.00")
    # On 15 March a one-month window starts on 15 February.
    assert record(old, date(2025, 3, 15), spend="40.00").change is None
    assert record(edge, date(2025, 3, 15), spend="40.00").change.to_tier.code == "vip"


def test_calendar_year_status_holds_through_the_next_year(vip_ladder, program, make_member, record, clock):
    vip_ladder("calendar_year")
    clock(datetime(2025, 1, 1, 0, 0, tzinfo=UTC))
    late_2024, early_2025 = make_member(), make_member()
    record(late_2024, paris(date(2024, 12, 31), 23, 30), spend="100.00")
    # 23:30 UTC on 31 December 2024 is already 2025 in Paris.
    record(early_2025, datetime(2024, 12, 31, 23, 30, tzinfo=UTC), spend="100.00")
    assert tier_code(late_2024) == tier_code(early_2025) == "vip"

    evaluate(program, date(2025, 12, 31), clock)
    assert tier_code(late_2024) == tier_code(early_2025) == "vip"
    evaluate(program, date(2026, 1, 1), clock)  # retention is judged on the year that ended
    assert (tier_code(late_2024), tier_code(early_2025)) == ("basic", "vip")
    evaluate(program, date(2027, 1, 1), clock)
    assert tier_code(early_2025) == "basic"


def test_calendar_year_qualifies_with_either_year_but_does_not_mix_them(
    make_member, record, clock, vip_ladder
):
    clock(paris(date(2024, 12, 20), 10))
    split, last_year = make_member(), make_member()
    record(split, date(2024, 12, 20), spend="99.00")
    record(last_year, date(2024, 12, 20), spend="100.00")  # before the program had tiers
    vip_ladder("calendar_year")
    clock(paris(date(2025, 1, 5), 10))
    # 99 EUR in 2024 plus 1 EUR in 2025 is not 100 EUR in one year...
    assert record(split, date(2025, 1, 5), spend="1.00").change is None
    # ...while 100 EUR in 2024 still qualifies in 2025.
    assert record(last_year, date(2025, 1, 5), spend="1.00").change.to_tier.code == "vip"


def test_anniversary_year_starts_on_the_local_joining_day(vip_ladder, program, make_member, record, clock):
    vip_ladder("anniversary_year")
    clock(paris(date(2024, 5, 20), 10))
    joined = datetime(2023, 5, 9, 22, 30, tzinfo=UTC)  # 10 May 2023, 00:30 in Paris
    on_anniversary = make_member(joined_at=joined)
    day_before = make_member(joined_at=joined)
    record(on_anniversary, date(2024, 5, 10), spend="100.00")
    record(day_before, paris(date(2024, 5, 9), 23, 30), spend="100.00")
    assert tier_code(on_anniversary) == tier_code(day_before) == "vip"

    evaluate(program, date(2025, 5, 9), clock)
    assert (tier_code(on_anniversary), tier_code(day_before)) == ("vip", "vip")
    # From 10 May 2025 the last complete year is 10 May 2024 - 9 May 2025.
    evaluate(program, date(2025, 5, 10), clock)
    assert (tier_code(on_anniversary), tier_code(day_before)) == ("vip", "basic")
    evaluate(program, date(2026, 5, 10), clock)
    assert tier_code(on_anniversary) == "basic"


def test_anniversary_year_of_a_29_february_member(vip_ladder, program, make_member, record, clock):
    vip_ladder("anniversary_year")
    clock(paris(date(2025, 2, 28), 10))
    member = make_member(joined_at=paris(date(2024, 2, 29), 10))
    record(member, date(2025, 2, 28), spend="100.00")  # the last day of the first year
    assert tier_code(member) == "vip"

    evaluate(program, date(2026, 2, 28), clock)
    assert tier_code(member) == "vip"
    evaluate(program, date(2026, 3, 1), clock)  # the anniversary falls on 1 March in 2026
    assert tier_code(member) == "basic"


def test_lifetime_window_counts_everything(vip_ladder, program, make_member, record, clock):
    vip_ladder("lifetime")
    clock(paris(date(2025, 1, 1), 10))
    member = make_member()
    record(member, date(2012, 6, 1), spend="60.00", source="import")
    assert tier_code(member) == "basic"
    assert record(member, date(2024, 6, 1), spend="40.00", source="import").change.to_tier.code == "vip"
    evaluate(program, date(2025, 1, 1), clock)
    assert tier_code(member) == "vip"


def test_window_bounds_match_the_query_for_29_february_anchors():
    key = rules.WindowKey("anniversary_year")
    joined = date(2024, 2, 29)
    assert rules.window_bounds(key, on=date(2026, 2, 28), joined_on=joined) == rules.WindowBounds(
        date(2025, 3, 1), date(2024, 2, 29)
    )
    assert rules.window_bounds(key, on=date(2026, 3, 1), joined_on=joined).start == date(2026, 3, 1)
    assert rules.window_bounds(key, on=date(2028, 2, 29), joined_on=joined).start == date(2028, 2, 29)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2025, 3, 31), -1, date(2025, 2, 28)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2025, 11, 30), 3, date(2026, 2, 28)),
        (date(2025, 3, 15), -12, date(2024, 3, 15)),
        (date(2025, 1, 15), -13, date(2023, 12, 15)),
    ],
)
def test_add_months_clamps_to_the_end_of_shorter_months(day, months, expected):
    assert rules.add_months(day, months) == expected
