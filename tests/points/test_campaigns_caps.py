"""Campaign caps and budgets across purchases: per member per day and month (program-local
days and months), the total budget (shown as points issued), refunds giving back neither,
and rules applying by date in program time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from points.earning import config, preview, purchases
from points.models import Campaign

from .conftest import SYSTEM, line

pytestmark = pytest.mark.django_db
D = Decimal
PARIS = ZoneInfo("Europe/Paris")


def awarded(purchase, code) -> int:
    return sum(a.points for a in purchase.awards.all() if a.code == code)


def test_cap_per_member_per_day_in_program_time(member, base_rule, make_campaign, buy):
    make_campaign("bonus", "30", effect="fixed_bonus", scope="per_purchase", max_points_per_member_day=50)
    day = (timezone.now() - timedelta(days=40)).astimezone(PARIS).date()
    # Paris is UTC+1 or +2 all year: 00:30 there is still the day before in UTC.
    just_after_midnight = datetime.combine(day, time(0, 30), tzinfo=PARIS)
    noon = datetime.combine(day, time(12), tzinfo=PARIS)
    next_day = datetime.combine(day + timedelta(days=1), time(0, 30), tzinfo=PARIS)
    utc_days = [moment.astimezone(UTC).date() for moment in (just_after_midnight, noon, next_day)]
    assert utc_days == [day - timedelta(days=1), day, day]  # UTC days would give 30, 30, 20
    first = buy(member, [line()], occurred_at=just_after_midnight)
    second = buy(member, [line()], occurred_at=noon)
    third = buy(member, [line()], occurred_at=next_day)
    assert [awarded(p, "bonus") for p in (first, second, third)] == [30, 20, 30]
    assert second.awards.get(code="bonus").capped_by == "member_day"
    assert (first.occurred_on, second.occurred_on, third.occurred_on) == (day, day, day + timedelta(days=1))


def test_cap_per_member_per_month(member, base_rule, make_campaign, make_member, buy):
    make_campaign("bonus", "40", effect="fixed_bonus", scope="per_purchase", max_points_per_member_month=100)
    now = timezone.now().astimezone(PARIS)
    index = now.year * 12 + now.month - 1 - 3  # three months ago, on the 5th (program time)
    start = datetime(index // 12, index % 12 + 1, 5, 12, tzinfo=PARIS)
    month = [buy(member, [line()], occurred_at=start + timedelta(days=n)) for n in range(4)]
    assert [awarded(p, "bonus") for p in month] == [40, 40, 20, 0]
    assert month[3].awards.get(code="bonus").capped_by == "member_month"
    next_month = buy(member, [line()], occurred_at=start + timedelta(days=31))
    assert awarded(next_month, "bonus") == 40
    # Caps are per member.
    assert awarded(buy(make_member(), [line()], occurred_at=start), "bonus") == 40


def test_cap_per_member_per_month_starts_at_the_program_s_midnight(member, base_rule, make_campaign, buy):
    make_campaign("bonus", "40", effect="fixed_bonus", scope="per_purchase", max_points_per_member_month=40)
    now = timezone.now().astimezone(PARIS)
    index = now.year * 12 + now.month - 1 - 2
    first_of_month = date(index // 12, index % 12 + 1, 1)
    last_of_previous = datetime.combine(first_of_month - timedelta(days=1), time(12), tzinfo=PARIS)
    # 00:30 on the 1st in Paris is still the previous month in UTC.
    just_into_the_month = datetime.combine(first_of_month, time(0, 30), tzinfo=PARIS)
    assert just_into_the_month.astimezone(UTC).date() == first_of_month - timedelta(days=1)
    later_that_day = datetime.combine(first_of_month, time(12), tzinfo=PARIS)
    earned = [
        awarded(buy(member, [line()], occurred_at=moment), "bonus")
        for moment in (last_of_previous, just_into_the_month, later_that_day)
    ]
    assert earned == [40, 40, 0]  # UTC months would give 40, 0, 40


def test_refunds_give_back_neither_budgets_nor_member_caps(member, base_rule, make_campaign, buy):
    campaign = make_campaign(
        "launch",
        "30",
        effect="fixed_bonus",
        scope="per_purchase",
        budget_points=100,
        max_points_per_member_day=50,
    )
    first = buy(member, [line()])
    refund = purchases.refund_record(purchase=first, reference="RF-1", actor=SYSTEM).refund
    assert refund.earnings.get().reversed == 40  # base 10 + the campaign's 30, all taken back
    campaign.refresh_from_db()
    assert campaign.budget_used == 30  # the budget keeps counting the refunded purchase
    second = buy(member, [line()])
    assert awarded(second, "launch") == 20  # and so does today's per-member cap
    assert second.awards.get(code="launch").capped_by == "member_day"
    campaign.refresh_from_db()
    assert campaign.budget_used == 50


def test_budget_is_used_then_exhausted(member, make_member, base_rule, make_campaign, buy):
    campaign = make_campaign("launch", "60", effect="fixed_bonus", scope="per_purchase", budget_points=100)
    results = [awarded(buy(make_member(), [line()]), "launch") for _ in range(3)]
    assert results == [60, 40, 0]
    campaign.refresh_from_db()
    assert campaign.budget_used == 100
    exhausted = buy(member, [line()])
    assert exhausted.awards.get(code="launch").capped_by == "budget"
    assert exhausted.points == 10  # the base still earns


def test_budget_set_later_counts_the_points_already_issued(member, base_rule, make_campaign, buy, api):
    campaign = make_campaign("launch", "25", effect="fixed_bonus", scope="per_purchase")
    buy(member, [line()])
    buy(member, [line()])
    with pytest.raises(config.InvalidRuleError):
        config.campaign_update(campaign=campaign, budget_points=49, actor=SYSTEM)
    campaign = config.campaign_update(campaign=campaign, budget_points=60, actor=SYSTEM)
    assert campaign.budget_used == 50
    assert awarded(buy(member, [line()]), "launch") == 10
    data = api.get("/api/v1/campaigns/launch").json()
    assert (data["budget_points"], data["budget_used"], data["points_issued"]) == (60, 60, 60)
    campaign = config.campaign_update(campaign=campaign, budget_points=None, actor=SYSTEM)
    assert campaign.budget_used == 0
    assert awarded(buy(member, [line()]), "launch") == 25


def test_campaign_date_range_is_program_local(member, base_rule, make_campaign, buy):
    today = timezone.now().astimezone(PARIS).date()
    make_campaign(
        "yesterday", "5", effect="fixed_bonus", scope="per_purchase", ends_on=today - timedelta(days=1)
    )
    make_campaign("today", "7", effect="fixed_bonus", scope="per_purchase", starts_on=today, ends_on=today)
    make_campaign("off", "9", effect="fixed_bonus", scope="per_purchase", is_active=False)
    purchase = buy(member, [line()])
    assert [a.code for a in purchase.awards.all()] == ["base", "today"]
    earlier = buy(member, [line()], occurred_at=timezone.now() - timedelta(days=1))
    assert [a.code for a in earlier.awards.all()] == ["base", "yesterday"]


def test_campaign_days_start_at_the_program_s_midnight(member, base_rule, make_campaign, buy):
    day = timezone.now().astimezone(PARIS).date() - timedelta(days=3)
    make_campaign("one-day", "5", effect="fixed_bonus", scope="per_purchase", starts_on=day, ends_on=day)
    # 00:30 in Paris is the day before in UTC: in the campaign's day, then just after it.
    on_the_day = datetime.combine(day, time(0, 30), tzinfo=PARIS)
    after_it = datetime.combine(day + timedelta(days=1), time(0, 30), tzinfo=PARIS)
    assert after_it.astimezone(UTC).date() == day
    assert awarded(buy(member, [line()], occurred_at=on_the_day), "one-day") == 5
    assert awarded(buy(member, [line()], occurred_at=after_it), "one-day") == 0


def test_preview_reports_what_a_rule_would_have_added(member, make_member, base_rule, make_campaign, buy):
    buy(member, [line("A", "20.00", category="coffee")])
    buy(make_member(), [line("B", "5.00", category="tea")])
    buy(member, [line("C", "40.00", category="coffee")], occurred_at=timezone.now() - timedelta(days=31))
    campaign = make_campaign("coffee-x3", "3", categories=["coffee"], is_active=False)
    result = preview.rule_preview(rule=Campaign.objects.select_related("program").get(pk=campaign.pk))
    assert (result.purchases, result.applied, result.members, result.points) == (2, 1, 1, 40)
    assert not result.truncated


@pytest.fixture
def api(make_api):
    return make_api(["config:read", "config:write"])
