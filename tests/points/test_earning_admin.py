"""Admin of earning: rules and campaigns through the services (with history, points issued,
budget used and the preview action), read-only purchases and refunds with their ledger
transactions and shortfalls; the demo data."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from points.earning import demo, purchases
from points.models import BonusAward, Campaign, EarningRule, EarningSettings, Purchase, Refund
from tests.conftest import SYSTEM

from .conftest import line

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, db):
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw-123456789"))
    return client


def rule_form(program, **fields):
    data = {
        "program": program.pk,
        "code": "base",
        "name": "Base",
        "description": "",
        "is_active": "on",
        "priority": 0,
        "currency": program.points_currencies.get(code="PTS").pk,
        "effect": "points_per_unit",
        "scope": "per_line",
        "value": "1",
        "stacking": "add",
        "locations": "",
        "skus": "",
        "categories": "",
        "tiers": "",
        "labels": "",
    }
    data.update(fields)
    return data


def test_earning_rule_admin_create_and_change_go_through_the_service(staff, program, location):
    response = staff.post(
        "/admin/points/earningrule/add/",
        rule_form(program, locations="paris-01, paris-01", weekdays=["6", "7"]),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = EarningRule.objects.get()
    assert (rule.locations, rule.weekdays) == (["paris-01"], [6, 7])
    response = staff.post(f"/admin/points/earningrule/{rule.pk}/change/", rule_form(program, value="2"))
    assert response.status_code == 302, response.content.decode()[:3000]
    rule.refresh_from_db()
    assert rule.value == Decimal("2")
    assert rule.history.count() == 2
    history = staff.get(f"/admin/points/earningrule/{rule.pk}/history/")
    assert history.status_code == 200


@pytest.mark.parametrize("model", ["earningrule", "campaign"])
def test_rule_admin_explains_the_caps_time_zone_and_refunds(staff, model):
    page = staff.get(f"/admin/points/{model}/add/").content.decode()
    assert "Most points it gives one member in a day, days in the program" in page
    assert "Most points it gives one member in a calendar month, in the program" in page
    assert "Refunds do not give points back to the cap." in page
    if model == "campaign":
        assert "Refunds do not give points back to the budget." in page


def test_earning_rule_admin_shows_service_errors_on_the_field(staff, program):
    response = staff.post("/admin/points/earningrule/add/", rule_form(program, locations="nowhere"))
    assert response.status_code == 200
    assert "Unknown locations: nowhere." in response.content.decode()
    response = staff.post("/admin/points/earningrule/add/", rule_form(program, stacking="best"))
    assert "Base rates do not stack" in response.content.decode()
    assert not EarningRule.objects.exists()


def test_campaign_admin_lists_points_issued_and_budget_and_previews(
    staff, program, member, base_rule, make_campaign, buy
):
    campaign = make_campaign("coffee-x2", "2", categories=["coffee"], budget_points=1000)
    buy(member, [line("A", "12.00", category="coffee")])
    listing = staff.get("/admin/points/campaign/")
    text = listing.content.decode()
    assert listing.status_code == 200
    assert "12 / 1000" in text
    page = staff.get(f"/admin/points/campaign/{campaign.pk}/change/")
    assert page.status_code == 200
    preview = staff.post(
        "/admin/points/campaign/", {"action": "preview_last_30_days", "_selected_action": [campaign.pk]}
    )
    assert preview.status_code == 200
    assert "the last 30 days of purchases" in preview.content.decode()
    rules_preview = staff.post(
        "/admin/points/earningrule/", {"action": "preview_last_30_days", "_selected_action": [base_rule.pk]}
    )
    assert rules_preview.status_code == 200


def test_campaign_admin_budget_below_issued_is_refused(staff, program, member, base_rule, make_campaign, buy):
    campaign = make_campaign("launch", "25", effect="fixed_bonus", scope="per_purchase")
    buy(member, [line()])
    data = rule_form(
        program, code="launch", name="launch", effect="fixed_bonus", scope="per_purchase", value="25"
    )
    data["budget_points"] = 10
    response = staff.post(f"/admin/points/campaign/{campaign.pk}/change/", data)
    assert response.status_code == 200
    assert "The campaign already issued 25 points." in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.budget_points is None


def test_purchase_and_refund_admin_show_lines_transactions_and_shortfall(staff, member, base_rule, buy):
    purchase = buy(member, [line("A", "40.00")], reference="SALE-9")
    from points import services

    services.points_redeem(member=member, amount=30, actor=SYSTEM)
    purchases.refund_record(purchase=purchase, reference="RF-9", actor=SYSTEM)
    listing = staff.get("/admin/points/purchase/")
    assert listing.status_code == 200 and "SALE-9" in listing.content.decode()
    page = staff.get(f"/admin/points/purchase/{purchase.pk}/change/").content.decode()
    earning = purchase.earnings.get()
    assert f"/admin/points/transaction/{earning.transaction_id}/change/" in page
    assert "Breakdown" in page
    refund = Refund.objects.get()
    refunds = staff.get("/admin/points/refund/").content.decode()
    assert "RF-9" in refunds
    detail = staff.get(f"/admin/points/refund/{refund.pk}/change/").content.decode()
    assert "Points taken back" in detail
    assert refund.earnings.get().shortfall == 30
    assert staff.post(f"/admin/points/purchase/{purchase.pk}/delete/").status_code == 403


def test_settings_bonus_and_referral_admin_pages(staff, program, earning_settings, make_member):
    earning_settings(enrolment_bonus=10)
    make_member()
    for url in (
        "/admin/points/earningsettings/",
        f"/admin/points/earningsettings/{EarningSettings.objects.get().pk}/change/",
        "/admin/points/bonusaward/",
        "/admin/points/referral/",
    ):
        assert staff.get(url).status_code == 200, url
    response = staff.post(
        f"/admin/points/earningsettings/{EarningSettings.objects.get().pk}/change/",
        {
            "return_window_days": 7,
            "enrolment_bonus": 10,
            "birthday_bonus": 0,
            "birthday_mode": "day",
            "referral_referrer_bonus": 0,
            "referral_referee_bonus": 0,
            "profile_completion_bonus": 5,
        },
    )
    assert response.status_code == 200  # a bonus without the fields to fill is refused
    assert EarningSettings.objects.get().profile_completion_bonus == 0
    assert BonusAward.objects.count() == 1


def test_earning_demo_is_safe_to_re_run(program, make_member, location):
    for n in range(3):
        make_member(first_name=f"Demo{n}")
    demo.load(program=program, actor=SYSTEM)
    demo.load(program=program, actor=SYSTEM)
    assert EarningRule.objects.filter(program=program).count() == 1
    assert Campaign.objects.filter(program=program).count() == 1
    assert Purchase.objects.filter(program=program).count() == 3
    assert Refund.objects.count() == 1
    first = Purchase.objects.order_by("id").first()
    assert first.points == 45  # 2 × 8.90 coffee doubled (35.60) + the mug after its discount (10.00)
