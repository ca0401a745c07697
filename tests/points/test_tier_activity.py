"""Qualifying activity for tiers from the points side: purchases upgrade at once and the next
purchase earns with the new multiplier; refunds lower the metrics but the downgrade waits for
the evaluation and grace; adjustments count per the program setting; API earns and
reversals; and the lock order under concurrency (a crossing purchase against a redemption)."""

from __future__ import annotations

import threading
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from points import services
from points.earning import purchases, qualifying
from points.models import Account, Transaction
from tiers import selectors as tier_selectors
from tiers import services as tier_services
from tiers.models import MemberTier, TierActivity, TierChange
from webhooks.models import Event

from .conftest import SYSTEM, assert_ledger_consistent, line

pytestmark = pytest.mark.django_db
D = Decimal
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def ladder(program):
    """Bronze (default); Silver from 500 EUR, kept with 400 EUR, 1 month's grace, ×1.25."""
    bronze = tier_services.tier_create(program=program, code="bronze", name="Bronze", rank=10, actor=SYSTEM)
    silver = tier_services.tier_create(
        program=program,
        code="silver",
        name="Silver",
        rank=20,
        qualify_spend=D("500"),
        retain_spend=D("400"),
        grace_months=1,
        earn_multiplier=D("1.25"),
        actor=SYSTEM,
    )
    return {"bronze": bronze, "silver": silver}


def tier_of(member) -> str:
    return MemberTier.objects.select_related("tier").get(member=member).tier.code


def test_crossing_purchase_upgrades_and_the_next_purchase_earns_with_the_new_multiplier(
    ladder, member, base_rule, buy
):
    first = buy(member, [line("A", "300.00")])
    assert (first.points, tier_of(member)) == (300, "bronze")
    crossing = buy(member, [line("B", "250.00")])  # 550 EUR: Silver, at once
    assert crossing.points == 250  # computed with the multiplier read before the upgrade
    assert tier_of(member) == "silver"
    change = TierChange.objects.get(member=member)
    assert (change.reason, change.from_tier, change.to_tier) == (
        "upgrade",
        ladder["bronze"],
        ladder["silver"],
    )
    assert Event.objects.filter(type="tier.changed", member_id=member.pk).count() == 1
    after = buy(member, [line("C", "100.00")])
    assert after.points == 125
    assert [(a.source, a.code, a.points) for a in after.awards.all()] == [
        ("rule", "base", 100),
        ("tier", "silver", 25),
    ]
    activity = TierActivity.objects.get(source="purchase", reference=after.reference)
    assert (activity.spend, activity.points, activity.visits) == (D("100.00"), 125, 1)
    assert activity.occurred_at == after.occurred_at


def test_the_upgrade_belongs_to_the_purchase_s_transaction(ladder, member, base_rule, buy, monkeypatch):
    """A crossing purchase that fails after its activity was recorded leaves no upgrade
    behind: activity, upgrade, history and tier.changed commit or roll back with it."""
    buy(member, [line("A", "300.00")])

    def ledger_down(*args, **kwargs):
        raise RuntimeError("ledger down")

    with monkeypatch.context() as patch:
        patch.setattr(purchases, "emit_purchase_recorded", ledger_down)  # after activity and ledger
        with pytest.raises(RuntimeError):
            buy(member, [line("B", "250.00")], reference="CROSS")
    assert tier_of(member) == "bronze"
    assert not TierActivity.objects.filter(reference="CROSS").exists()
    assert not TierChange.objects.exists()
    assert not Event.objects.filter(type="tier.changed").exists()
    assert not purchases.Purchase.objects.filter(reference="CROSS").exists()
    assert Account.objects.get(member=member).available == 300

    buy(member, [line("B", "250.00")], reference="CROSS")  # the till retries: now it holds
    assert tier_of(member) == "silver"
    assert buy(member, [line("C", "100.00")]).points == 125


def test_purchase_activity_counts_eligible_spend_and_default_currency_points(
    ladder, member, base_rule, buy, make_currency, make_rule
):
    stamps = make_currency("STAMPS")
    make_rule("stamps", "0.1", currency=stamps)
    purchase = buy(member, [line("A", "40.00"), line("GC", "50.00", gift_card=True)], tax=D("8.00"))
    assert {e.currency.code: e.points for e in purchase.earnings.select_related("currency")} == {
        "PTS": 40,
        "STAMPS": 4,
    }
    activity = TierActivity.objects.get(source="purchase")
    assert (activity.spend, activity.points, activity.visits) == (D("40.00"), 40, 1)
    refund = purchases.refund_record(purchase=purchase, reference="RF-1", actor=SYSTEM).refund
    assert {e.currency.code: e.reversed for e in refund.earnings.select_related("currency")} == {
        "PTS": 40,
        "STAMPS": 4,
    }
    taken_back = TierActivity.objects.get(source="refund")
    assert (taken_back.spend, taken_back.points, taken_back.visits) == (D("-40.00"), -40, -1)


def test_refund_lowers_qualifying_activity_but_the_downgrade_waits_for_evaluation_and_grace(
    ladder, member, base_rule, buy, monkeypatch
):
    bought_at = timezone.now() - timedelta(days=10)
    purchase = buy(member, [line("A", "300.00"), line("B", "300.00")], occurred_at=bought_at)
    assert tier_of(member) == "silver"
    purchases.refund_record(purchase=purchase, reference="RF-1", lines=[(2, None)], actor=SYSTEM)
    assert tier_of(member) == "silver"  # a refund never moves a member down by itself
    progress = tier_selectors.member_tier_progress(member=member)
    assert progress.keep.metrics.current.spend == D("300.00") and not progress.keep.met

    program = member.program
    # The first evaluation after the day of the upgrade (that day's changes are not looked at again).
    tomorrow = timezone.now().astimezone(program.tz).date() + timedelta(days=1)
    monkeypatch.setattr(timezone, "now", lambda: datetime.combine(tomorrow, time(3), tzinfo=program.tz))
    tier_services.tiers_evaluate(program=program, on=tomorrow, actor=SYSTEM)
    state = MemberTier.objects.get(member=member)
    assert state.tier.code == "silver" and state.grace_until is not None  # grace, not a downgrade

    after_grace = datetime.combine(state.grace_until, time(3), tzinfo=program.tz)
    monkeypatch.setattr(timezone, "now", lambda: after_grace)
    tier_services.tiers_evaluate(program=program, on=state.grace_until, actor=SYSTEM)
    assert tier_of(member) == "bronze"
    assert list(TierChange.objects.filter(member=member).order_by("id").values_list("reason", flat=True)) == [
        "upgrade",
        "grace_started",
        "downgrade",
    ]


@pytest.mark.parametrize("qualify", [False, True])
def test_manual_adjustments_count_only_when_the_program_says_so(ladder, member, make_api, qualify):
    tier_services.tier_settings_update(program=member.program, adjustments_qualify=qualify, actor=SYSTEM)
    api = make_api(["points:write"])
    response = api.post(
        f"/api/v1/members/{member.pk}/points/adjust", {"amount": 600, "reason": "Goodwill"}, format="json"
    )
    assert response.status_code == 201
    activity = TierActivity.objects.get(member=member)
    assert (activity.source, activity.points) == ("adjustment", 600)
    # Adjustments are recorded either way; tiers counts them when the setting says so.
    tier_services.tier_update(tier=ladder["silver"], qualify_points=500, actor=SYSTEM)
    tier_services.tier_settings_update(program=member.program, adjustments_qualify=qualify, actor=SYSTEM)
    api.post(f"/api/v1/members/{member.pk}/points/earn", {"amount": 1}, format="json")
    assert tier_of(member) == ("silver" if qualify else "bronze")


def test_api_earn_records_points_and_reversal_takes_them_back(ladder, member, make_api, make_currency):
    api = make_api(["points:write"])
    earned = api.post(
        f"/api/v1/members/{member.pk}/points/earn", {"amount": 120, "reference": "E-1"}, format="json"
    ).json()
    replay = api.post(
        f"/api/v1/members/{member.pk}/points/earn", {"amount": 120, "reference": "E-1"}, format="json"
    )
    assert replay.status_code == 200
    txn_id = earned["transaction"]["id"]
    activity = TierActivity.objects.get(member=member)
    assert (activity.source, activity.reference, activity.points) == ("earn", f"earn:{txn_id}", 120)
    reversed_ = api.post(f"/api/v1/transactions/{txn_id}/reverse", {"amount": 20}, format="json")
    assert reversed_.status_code == 201
    reversal = TierActivity.objects.get(member=member, source="reversal")
    assert reversal.points == -20 and reversal.occurred_at == activity.occurred_at
    make_currency("STAMPS")
    api.post(f"/api/v1/members/{member.pk}/points/earn", {"amount": 5, "currency": "STAMPS"}, format="json")
    assert TierActivity.objects.filter(member=member).count() == 2  # other currencies do not qualify


def test_reversing_an_event_bonus_takes_no_qualifying_points(ladder, make_member, make_api, earning_settings):
    earning_settings(enrolment_bonus=100)
    member = make_member()
    bonus = Transaction.objects.get(member=member, kind="earn")
    api = make_api(["points:write"])
    api.post(f"/api/v1/members/{member.pk}/points/earn", {"amount": 100}, format="json")
    response = api.post(f"/api/v1/transactions/{bonus.pk}/reverse", {}, format="json")
    assert response.status_code == 201, response.content
    # The bonus never qualified, so its reversal leaves the API earn's 100 points whole.
    assert sum(TierActivity.objects.filter(member=member).values_list("points", flat=True)) == 100
    assert not TierActivity.objects.filter(member=member, source="reversal").exists()


def test_earn_qualifying_crossing_upgrades_in_the_same_transaction(ladder, member):
    tier_services.tier_update(tier=ladder["silver"], qualify_points=100, actor=SYSTEM)
    qualifying.points_earn_qualifying(member=member, amount=100, actor=SYSTEM)
    assert tier_of(member) == "silver"


@pytest.mark.django_db(transaction=True)
def test_crossing_purchases_and_redemptions_at_once_never_deadlock(program, make_member, make_rule):
    """A purchase that upgrades writes tier.changed (the member's event counter) while a
    redemption of the same member holds the account: the tier row and account are taken
    first, so they queue instead of deadlocking."""
    tier_services.tier_create(program=program, code="bronze", name="Bronze", rank=10, actor=SYSTEM)
    tier_services.tier_create(
        program=program, code="silver", name="Silver", rank=20, qualify_spend=D("100"), actor=SYSTEM
    )
    make_rule("base", "1")
    members = [make_member() for _ in range(6)]
    for member in members:
        services.points_earn(member=member, amount=1000, actor=SYSTEM)
    errors: list[Exception] = []
    start = threading.Barrier(len(members) * 2)

    def run(work):
        try:
            start.wait()
            work()
        except Exception as error:  # collected and asserted on
            errors.append(error)
        finally:
            connection.close()

    threads = []
    for index, member in enumerate(members):
        threads.append(
            threading.Thread(
                target=run,
                args=(
                    lambda m=member, i=index: purchases.purchase_record(
                        program=program,
                        member=m,
                        reference=f"X-{i}",
                        lines=[line("A", "150.00")],
                        actor=SYSTEM,
                    ),
                ),
            )
        )
        threads.append(
            threading.Thread(
                target=run, args=(lambda m=member: services.points_redeem(member=m, amount=10, actor=SYSTEM),)
            )
        )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert all(tier_of(member) == "silver" for member in members)
    assert all(Account.objects.get(member=m).available == 1140 for m in members)
    assert_ledger_consistent(program)


def test_today_is_program_local_for_activity(ladder, member, base_rule, buy):
    late = datetime.combine(date.today() - timedelta(days=2), time(23, 30), tzinfo=ZoneInfo("UTC"))
    purchase = buy(member, [line("A", "10.00")], occurred_at=late)
    activity = TierActivity.objects.get(source="purchase")
    assert activity.occurred_on == late.astimezone(PARIS).date() == purchase.occurred_on


def test_earn_in_a_program_with_tiers_reads_the_tiers_once(ladder, member):
    """The upgrade check reads the program's tiers; the member's current tier is taken from
    them rather than looked up again."""
    from django.test.utils import CaptureQueriesContext

    qualifying.points_earn_qualifying(member=member, amount=5, actor=SYSTEM)
    with CaptureQueriesContext(connection) as queries:
        result = qualifying.points_earn_qualifying(member=member, amount=5, actor=SYSTEM)
    assert result.created
    assert sum('FROM "tiers_tier"' in query["sql"] for query in queries.captured_queries) == 1
    assert tier_of(member) == "bronze"
