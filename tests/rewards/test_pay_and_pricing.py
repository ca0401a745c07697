"""Pay with points (rules at their edges, rounding, holds) and member pricing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from points import services as points_services
from points.models import Account, Hold, Transaction
from rewards import payments
from rewards.models import PayWithPointsRule
from tests.db_support import wait_for_lock_waiter
from tiers import services as tier_services

from .conftest import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule(pts):
    # PTS: 100 points = 1.00 EUR. Multiples of 100, at least 200, half the bill, bills from 10.
    return payments.pay_rule_save(
        currency=pts,
        minimum_points=200,
        step=100,
        max_share_percent=Decimal("50"),
        minimum_bill=Decimal("10"),
        actor=SYSTEM,
    )


def pay(api, member, **body):
    return api.post(f"/api/v1/members/{member.pk}/points/pay", body, format="json")


def test_pay_api_with_money_to_cover(rewards_api, member, earn, rule):
    earn(member, 5000)
    response = pay(rewards_api, member, bill_amount="40.00", amount="12.34", reference="till-1")
    assert response.status_code == 201, response.content
    body = response.json()
    # 12.34 EUR = 1234 points, down to the step: 1200 points pay 12.00 EUR.
    assert body["points"] == 1200 and body["money_covered"] == "12.00"
    assert body["remaining_to_pay"] == "28.00" and body["max_amount"] == "20.00"
    assert body["balance"]["available"] == 3800 and body["hold_id"] is None
    txn = Transaction.objects.get(pk=body["transaction_id"])
    assert txn.kind == "redeem" and txn.metadata["pay_with_points"]["money_covered"] == "12.00"
    again = pay(rewards_api, member, bill_amount="40.00", amount="12.34", reference="till-1")
    assert again.status_code == 200 and again.json()["transaction_id"] == body["transaction_id"]
    assert Account.objects.get(member=member).available == 3800


def test_pay_api_rule_edges(rewards_api, member, earn, rule):
    earn(member, 5000)
    cases = [
        ({"bill_amount": "40.00", "points": 100}, 422, "below_minimum_points"),
        ({"bill_amount": "40.00", "amount": "1.99"}, 422, "below_minimum_points"),
        ({"bill_amount": "40.00", "points": 250}, 422, "not_a_multiple_of_step"),
        ({"bill_amount": "40.00", "points": 2100}, 422, "exceeds_bill_share"),
        ({"bill_amount": "40.00", "amount": "20.01"}, 422, "exceeds_bill_share"),
        ({"bill_amount": "9.99", "points": 200}, 422, "below_minimum_bill"),
        ({"bill_amount": "400.00", "points": 6000}, 409, "insufficient_points"),
        ({"bill_amount": "40.00"}, 400, "validation_error"),
        ({"bill_amount": "40.00", "points": 200, "amount": "2"}, 400, "validation_error"),
        ({"bill_amount": "40.00", "points": 200, "expires_in_minutes": 5}, 400, "validation_error"),
        ({"bill_amount": "40.00", "points": 200, "currency": "NOPE"}, 400, "unknown_currency"),
    ]
    for body, status, code in cases:
        response = pay(rewards_api, member, **body)
        assert (response.status_code, response.json()["code"]) == (status, code), body
    assert pay(rewards_api, member, bill_amount="40.00", points=2000).json()["money_covered"] == "20.00"
    assert pay(rewards_api, member, bill_amount="10.00", points=200).status_code == 201
    assert Account.objects.get(member=member).available == 5000 - 2200


def test_pay_exceeds_share_tells_the_most_points(pts, rule):
    with pytest.raises(payments.ExceedsBillShareError) as refused:
        payments.pay_quote(
            rule=rule, currency=pts, money_currency="EUR", bill_amount=Decimal("33.33"), points=1700
        )
    assert refused.value.extra["max_amount"] == Decimal("16.66")
    assert refused.value.extra["max_points"] == 1600


def test_pay_rounding_with_an_uneven_cash_value(program, member, earn):
    stamps = points_services.currency_create(
        program=program,
        code="STAMPS",
        name="Stamps",
        value_points=3,
        value_amount=Decimal("0.10"),
        actor=SYSTEM,
    )
    payments.pay_rule_save(currency=stamps, actor=SYSTEM)
    quote = payments.pay_quote(
        rule=stamps.pay_rule,
        currency=stamps,
        money_currency="EUR",
        bill_amount=Decimal("5"),
        money=Decimal("0.05"),
    )
    # 0.05 EUR = 1.5 stamps: 1 stamp, worth 0.0333 EUR, covers 0.03 EUR (never more).
    assert (quote.points, quote.money_covered) == (1, Decimal("0.03"))
    quote = payments.pay_quote(
        rule=stamps.pay_rule, currency=stamps, money_currency="EUR", bill_amount=Decimal("5"), points=2
    )
    assert quote.money_covered == Decimal("0.06")


def test_pay_without_a_rule_is_refused(rewards_api, member, earn):
    earn(member, 500)
    response = pay(rewards_api, member, bill_amount="40.00", points=200)
    assert response.status_code == 409 and response.json()["code"] == "pay_with_points_disabled"


def test_pay_with_hold_then_capture_at_order_time(rewards_api, member, earn, rule):
    earn(member, 5000)
    response = pay(rewards_api, member, bill_amount="80.00", amount="15.00", hold=True, expires_in_minutes=30)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["points"] == 1500 and body["hold_id"] is not None
    assert body["balance"] == {"currency": "PTS", "available": 3500, "pending": 0, "held": 1500}
    captured = rewards_api.post(f"/api/v1/holds/{body['hold_id']}/capture", {}, format="json")
    assert captured.status_code == 201, captured.content
    assert Hold.objects.get(pk=body["hold_id"]).state == "captured"
    assert Account.objects.get(member=member).held == 0


def test_pay_api_scope_and_other_program(make_api, member, other_program, rule):
    assert pay(make_api(["rewards:write"]), member, bill_amount="40", points=200).status_code == 403
    other = make_api(target_program=other_program)
    assert pay(other, member, bill_amount="40", points=200).json()["code"] == "member_not_found"


def test_pay_rule_save_validates(pts):
    with pytest.raises(payments.InvalidInputError):
        payments.pay_rule_save(currency=pts, step=0, actor=SYSTEM)
    with pytest.raises(payments.InvalidInputError):
        payments.pay_rule_save(currency=pts, max_share_percent=Decimal("0"), actor=SYSTEM)
    assert not PayWithPointsRule.objects.exists()


# --- Member pricing ------------------------------------------------------------------------------


@pytest.fixture
def gold(program):
    tier_services.tier_create(program=program, code="bronze", name="Bronze", rank=10, actor=SYSTEM)
    return tier_services.tier_create(
        program=program, code="gold", name="Gold", rank=30, discount_percent=Decimal("10"), actor=SYSTEM
    )


def test_pricing_api_tier_discount_and_exceptions(rewards_api, member, program, gold):
    tier_services.member_tier_assign(member=member, tier=gold, reason="Match", actor=SYSTEM)
    payments.pricing_exception_save(
        program=program, tier=gold, sku="WINE-1", percent=Decimal("25"), actor=SYSTEM
    )
    payments.pricing_exception_save(
        program=program, tier=gold, category="tobacco", excluded=True, actor=SYSTEM
    )
    payments.pricing_exception_save(
        program=program, tier=gold, category="wine", percent=Decimal("5"), actor=SYSTEM
    )
    lines = [
        {"sku": "COF-1", "category": "coffee", "quantity": 3, "unit_price": "3.35"},
        {"sku": "WINE-1", "category": "wine", "quantity": 1, "unit_price": "19.99"},
        {"sku": "WINE-2", "category": "wine", "quantity": 2, "unit_price": "10.00"},
        {"sku": "CIG", "category": "tobacco", "quantity": 1, "unit_price": "12.00"},
    ]
    response = rewards_api.post(f"/api/v1/members/{member.pk}/pricing", {"lines": lines}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    priced = [
        (line["source"], line["discount_percent"], line["gross"], line["discount"]) for line in body["lines"]
    ]
    assert priced == [
        ("tier", "10.00", "10.05", "1.01"),  # 1.005 rounds half-up
        ("sku", "25.00", "19.99", "5.00"),  # 4.9975
        ("category", "5.00", "20.00", "1.00"),
        ("excluded", "0.00", "12.00", "0.00"),
    ]
    assert (body["gross"], body["discount"], body["net"]) == ("62.04", "7.01", "55.03")
    assert body["tier"] == "gold"


def test_pricing_api_without_tiers_and_errors(rewards_api, make_api, member, other_program):
    url = f"/api/v1/members/{member.pk}/pricing"
    body = rewards_api.post(url, {"lines": [{"sku": "A", "unit_price": "2.50"}]}, format="json").json()
    assert body["tier"] is None and body["discount"] == "0.00"
    bad = rewards_api.post(url, {"lines": [{"sku": "A", "unit_price": "-1", "qty": 2}]}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "lines.0.qty"
    assert rewards_api.post(url, {"lines": []}, format="json").status_code == 400
    reader = make_api(["rewards:read"])
    assert reader.post(url, {"lines": [{"unit_price": "1"}]}, format="json").status_code == 200
    assert (
        make_api(["points:read"]).post(url, {"lines": [{"unit_price": "1"}]}, format="json").status_code
        == 403
    )
    other = make_api(target_program=other_program)
    assert other.post(url, {"lines": [{"unit_price": "1"}]}, format="json").status_code == 404


def test_pricing_exception_save_validates(program, gold, other_program):
    with pytest.raises(payments.InvalidPricingError):
        payments.pricing_exception_save(
            program=program, tier=gold, sku="A", category="b", percent=Decimal("1"), actor=SYSTEM
        )
    with pytest.raises(payments.InvalidPricingError):
        payments.pricing_exception_save(program=program, tier=gold, sku="A", actor=SYSTEM)
    payments.pricing_exception_save(program=program, tier=gold, sku="A", percent=Decimal("1"), actor=SYSTEM)
    with pytest.raises(payments.InvalidPricingError):
        payments.pricing_exception_save(
            program=program, tier=gold, sku="A", percent=Decimal("2"), actor=SYSTEM
        )
    with pytest.raises(payments.InvalidPricingError):
        payments.pricing_exception_save(
            program=other_program, tier=gold, sku="B", excluded=True, actor=SYSTEM
        )


def test_pay_rule_api_get_and_put(make_api, member, earn, pts, other_program):
    config = make_api(["config:read", "config:write", "points:read", "points:write"])
    till = make_api(["points:read", "points:write"])
    url = "/api/v1/currencies/pts/pay-rule"
    missing = till.get(url)
    assert (missing.status_code, missing.json()["code"]) == (404, "pay_rule_not_found")
    body = {"minimum_points": 200, "step": 100, "max_share_percent": "50", "minimum_bill": "10.00"}
    assert till.put(url, body, format="json").status_code == 403  # setting it is configuration
    created = config.put(url, body, format="json")
    assert created.status_code == 201, created.content
    assert created.json() | {"created_at": None, "updated_at": None} == {
        "currency": "PTS",
        "is_active": True,
        "minimum_points": 200,
        "step": 100,
        "max_share_percent": "50.00",
        "minimum_bill": "10.00",
        "value_points": pts.value_points,
        "value_amount": str(pts.value_amount.quantize(Decimal("0.01"))),
        "created_at": None,
        "updated_at": None,
    }
    assert till.get(url).json()["step"] == 100  # tills read it to tell the customer
    earn(member, 5000)
    refused = pay(till, member, bill_amount="40.00", points=250)
    assert refused.json()["code"] == "not_a_multiple_of_step"
    # PUT replaces: what is omitted takes its default.
    changed = config.put(url, {"is_active": False}, format="json")
    assert changed.status_code == 200 and changed.json()["step"] == 1
    assert pay(till, member, bill_amount="40.00", points=250).json()["code"] == "pay_with_points_disabled"
    assert PayWithPointsRule.objects.get().history.count() == 2
    cases = [
        ({"step": 0}, "step"),
        ({"max_share_percent": "0"}, "max_share_percent"),
        ({"minimum_bill": "1.005"}, "minimum_bill"),
        ({"colour": "red"}, "colour"),
    ]
    for bad, field in cases:
        response = config.put(url, bad, format="json")
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == field, bad
    assert config.put("/api/v1/currencies/NOPE/pay-rule", body, format="json").status_code == 404
    # Another program's PTS is its own currency: our rule is neither seen nor changed.
    other = make_api(["config:read", "config:write", "points:read"], target_program=other_program)
    assert other.get(url).json()["code"] == "pay_rule_not_found"
    assert other.put(url, {"step": 7}, format="json").status_code == 201
    assert till.get(url).json()["step"] == 1
    assert PayWithPointsRule.objects.filter(program=other_program).get().step == 7


def test_pay_amounts_beyond_the_money_minor_unit_are_refused(rewards_api, member, earn, rule):
    earn(member, 5000)
    for body, field in (
        ({"bill_amount": "40.005", "points": 200}, "bill_amount"),
        ({"bill_amount": "40.00", "amount": "2.001"}, "amount"),
    ):
        response = pay(rewards_api, member, **body)
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == field, body
    assert Account.objects.get(member=member).available == 5000


@pytest.mark.django_db(transaction=True)
def test_pay_rule_two_first_saves_at_once_create_one_rule(pts):
    """The second save waits for the first (the currency row) and then changes the rule the
    first created: one answers created, the other changed, neither fails on the
    one-rule-per-currency key (the API's 201 and 200, never a 500)."""
    import threading

    from django.db import connection, transaction

    outcome: dict = {}

    def second() -> None:
        try:
            outcome["second"] = payments.pay_rule_put(currency=pts, step=5, actor=SYSTEM)[1]
        except Exception as error:  # asserted on below
            outcome["second"] = error
        finally:
            connection.close()

    with transaction.atomic():
        outcome["first"] = payments.pay_rule_put(currency=pts, step=10, actor=SYSTEM)[1]
        thread = threading.Thread(target=second)
        thread.start()
        wait_for_lock_waiter("the second save never waited")  # then commit
    thread.join(timeout=30)

    assert outcome == {"first": True, "second": False}
    assert PayWithPointsRule.objects.get(currency=pts).step == 5
