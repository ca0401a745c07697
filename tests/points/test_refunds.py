"""Refunds: full, by lines and by amount; the cumulative floor; pending points cancelled
first; negative balances where allowed, shortfalls otherwise; replays and every API error."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from members import services as member_services
from points import services, upkeep
from points.earning import purchases
from points.models import Account, Purchase, Refund, Transaction
from tiers.models import TierActivity
from webhooks.models import Event

from .conftest import SYSTEM, line

pytestmark = pytest.mark.django_db
D = Decimal


def refund(purchase, reference="RF-1", **kwargs):
    return purchases.refund_record(purchase=purchase, reference=reference, actor=SYSTEM, **kwargs).refund


def balance(member) -> Account:
    return Account.objects.get(member=member, currency__code="PTS")


def test_refund_full_takes_every_point_back_and_undoes_the_visit(member, base_rule, buy, ledger_ok):
    purchase = buy(member, [line("A", "30.00"), line("B", "20.00")], tax=D("5.00"))
    assert purchase.points == 50
    done = refund(purchase)
    purchase.refresh_from_db()
    assert (done.amount, done.base, done.completes_purchase) == (D("55.00"), D("50.00"), True)
    assert (purchase.refunded_amount, purchase.fully_refunded) == (D("55.00"), True)
    assert balance(member).available == 0
    taken = done.earnings.get()
    assert (taken.points, taken.reversed, taken.shortfall, taken.from_pending) == (50, 50, 0, False)
    assert (
        Transaction.objects.get(pk=taken.transaction_id).reverses_id == purchase.earnings.get().transaction_id
    )
    activity = TierActivity.objects.get(source="refund", reference="RF-1")
    assert (activity.spend, activity.points, activity.visits) == (D("-50.00"), -50, -1)
    assert activity.occurred_at == purchase.occurred_at  # the reduction falls in the purchase's window
    event = Event.objects.get(type="purchase.refunded")
    assert event.data["refund"]["points"] == {"PTS": {"reversed": 50, "shortfall": 0}}
    assert Event.objects.filter(type="points.reversed").get().data["refund"]["reference"] == "RF-1"
    ledger_ok()


def test_refund_by_lines_reverses_in_proportion_never_more_than_earned(member, base_rule, buy, ledger_ok):
    purchase = buy(member, [line("A", "2.33", quantity="3")])  # 6.99: 6 points
    assert purchase.points == 6
    first = refund(purchase, "RF-1", lines=[(1, D(1))])  # 2.33 of 6.99: floor(6 × 1/3) = 2
    second = refund(purchase, "RF-2", lines=[(1, D(1))])  # 4.66: floor(6 × 2/3) = 4: 2 more
    third = refund(purchase, "RF-3", lines=[(1, None)])  # the rest of the line: all 6
    assert [r.earnings.get().reversed for r in (first, second, third)] == [2, 2, 2]
    assert [r.amount for r in (first, second, third)] == [D("2.33"), D("2.33"), D("2.33")]
    assert third.completes_purchase
    purchase.refresh_from_db()
    assert purchase.lines.get().refunded_quantity == 3 and purchase.fully_refunded
    assert balance(member).available == 0
    ledger_ok()


def test_refund_cumulative_floor_of_a_7_point_purchase_in_thirds(member, make_rule, buy):
    make_rule("base", "0.7")
    purchase = buy(member, [line("A", "3.40", quantity="3")])  # 10.20 × 0.7 = 7.14: 7 points
    taken = [refund(purchase, f"RF-{n}", lines=[(1, D(1))]).earnings.get().reversed for n in (1, 2, 3)]
    assert taken == [2, 2, 3]  # floor(7/3) = 2, floor(14/3) = 4, then all 7


def test_refund_by_amount_counts_the_eligible_share_of_the_total(member, base_rule, buy):
    purchase = buy(member, [line("A", "40.00")], tax=D("10.00"))  # total 50.00, 40 points
    first = refund(purchase, "RF-1", amount=D("25.00"))  # 25 of 50 = 20.00 of the eligible 40.00
    assert (first.base, first.earnings.get().reversed, first.completes_purchase) == (D("20.00"), 20, False)
    second = refund(purchase, "RF-2", amount=D("25.00"))
    assert (second.base, second.earnings.get().reversed, second.completes_purchase) == (D("20.00"), 20, True)
    with pytest.raises(purchases.PurchaseFullyRefundedError):
        refund(purchase, "RF-3", amount=D("1.00"))


def test_refund_gift_card_line_takes_no_points(member, base_rule, buy):
    purchase = buy(member, [line("A", "10.00"), line("GC", "50.00", gift_card=True)])
    done = refund(purchase, lines=[(2, None)])
    assert (done.amount, done.base) == (D("50.00"), D("0"))
    assert not done.earnings.exists()
    assert balance(member).available == 10


def test_refund_before_pending_points_are_available_cancels_them(
    member, base_rule, buy, earning_settings, ledger_ok
):
    earning_settings(return_window_days=14)
    purchase = buy(member, [line("A", "30.00")])
    assert (balance(member).available, balance(member).pending) == (0, 30)
    done = refund(purchase, lines=[(1, None)])
    taken = done.earnings.get()
    assert (taken.reversed, taken.from_pending, taken.shortfall) == (30, True, 0)
    assert (balance(member).available, balance(member).pending) == (0, 0)
    ledger_ok()


def test_refund_after_pending_points_became_available(
    member, base_rule, buy, earning_settings, monkeypatch, ledger_ok
):
    earning_settings(return_window_days=14)
    purchase = buy(member, [line("A", "30.00")])
    later = timezone.now() + timedelta(days=15)
    monkeypatch.setattr(timezone, "now", lambda: later)
    upkeep.points_release_pending(actor=SYSTEM)
    assert (balance(member).available, balance(member).pending) == (30, 0)
    taken = refund(purchase, amount=D("10.00")).earnings.get()
    assert (taken.reversed, taken.from_pending) == (10, False)
    assert balance(member).available == 20
    ledger_ok()


def test_refund_without_negative_balances_takes_what_is_there_and_records_the_shortfall(
    member, base_rule, buy, ledger_ok
):
    purchase = buy(member, [line("A", "100.00")])
    services.points_redeem(member=member, amount=70, actor=SYSTEM)
    done = refund(purchase)
    taken = done.earnings.get()
    assert (taken.points, taken.reversed, taken.shortfall) == (100, 30, 70)
    assert balance(member).available == 0
    earning = purchase.earnings.get()
    assert (earning.reversed, earning.shortfall) == (30, 70)
    assert Event.objects.get(type="purchase.refunded").data["refund"]["points"]["PTS"] == {
        "reversed": 30,
        "shortfall": 70,
    }
    ledger_ok()


def test_refund_with_negative_balances_allowed_goes_below_zero(member, base_rule, buy, pts, ledger_ok):
    services.currency_update(currency=pts, allow_negative=True, actor=SYSTEM)
    purchase = buy(member, [line("A", "100.00")])
    services.points_redeem(member=member, amount=70, actor=SYSTEM)
    taken = refund(purchase).earnings.get()
    assert (taken.reversed, taken.shortfall) == (100, 0)
    assert balance(member).available == -70
    ledger_ok()


def test_refund_after_the_earn_was_partly_reversed_through_the_api_takes_nothing_twice(
    member, base_rule, buy, make_api, ledger_ok
):
    purchase = buy(member, [line("A", "30.00"), line("B", "20.00")])  # 50 points
    earn_id = purchase.earnings.get().transaction_id
    api = make_api(["points:write"])
    response = api.post(f"/api/v1/transactions/{earn_id}/reverse", {"amount": 40}, format="json")
    assert response.status_code == 201, response.content
    # Line A owes 30 points back: the API reversal already took them; nothing moves.
    first = refund(purchase, "RF-1", lines=[(1, None)]).earnings.get()
    assert (first.points, first.reversed, first.shortfall, first.transaction_id) == (30, 30, 0, None)
    # The rest owes 20: 10 more of them were reversed already, the last 10 are taken now.
    second = refund(purchase, "RF-2").earnings.get()
    assert (second.points, second.reversed, second.shortfall) == (20, 20, 0)
    assert Transaction.objects.get(pk=second.transaction_id).amount == 10
    assert balance(member).available == 0
    earning = purchase.earnings.get()
    assert (earning.reversed, earning.shortfall) == (50, 0)
    # Qualifying points: +50, -40 (the API reversal), 0 and -10 (the refunds).
    activity = TierActivity.objects.filter(member=member)
    assert sorted(activity.values_list("source", "points")) == [
        ("purchase", 50),
        ("refund", -10),
        ("refund", 0),
        ("reversal", -40),
    ]
    ledger_ok()


def test_refund_for_a_terminated_member_is_recorded_as_shortfall(member, base_rule, buy):
    purchase = buy(member, [line("A", "40.00")])
    member_services.member_change_status(member=member, to_status="terminated", reason="Left", actor=SYSTEM)
    taken = refund(purchase).earnings.get()
    assert (taken.reversed, taken.shortfall, taken.transaction_id) == (0, 40, None)
    assert TierActivity.objects.filter(source="refund").exists()


def test_refund_repeated_reference_returns_the_original(member, base_rule, buy):
    purchase = buy(member, [line("A", "40.00")])
    first = purchases.refund_record(purchase=purchase, reference="RF-1", amount=D("10.00"), actor=SYSTEM)
    again = purchases.refund_record(purchase=purchase, reference="RF-1", amount=D("10.00"), actor=SYSTEM)
    assert first.created and not again.created and again.refund.pk == first.refund.pk
    assert Refund.objects.count() == 1 and balance(member).available == 30
    other = buy(member, [line("B", "5.00")])
    with pytest.raises(purchases.DuplicateReferenceError):
        refund(other, "RF-1")


# --- API ---------------------------------------------------------------------------------


@pytest.fixture
def api(make_api):
    return make_api(["points:read", "points:write"])


@pytest.fixture
def sale(member, base_rule, buy):
    return buy(
        member, [line("A", "10.00", quantity="3"), line("B", "20.00")], reference="SALE-1", tax=D("5.00")
    )


def url(reference="SALE-1"):
    return f"/api/v1/purchases/{reference}/refunds"


def test_refund_api_by_lines_then_list(api, sale):
    response = api.post(url(), {"reference": "RF-1", "lines": [{"line": 1, "quantity": "1"}]}, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["amount"] == "10.00" and data["base"] == "10.00" and not data["completes_purchase"]
    assert data["lines"] == [{"line": 1, "quantity": "1", "amount": "10.00"}]
    assert data["points"][0] | {"transaction_id": None} == {
        "currency": "PTS",
        "points": 10,
        "reversed": 10,
        "shortfall": 0,
        "from_pending": False,
        "transaction_id": None,
    }
    assert data["purchase"] == {
        "reference": "SALE-1",
        "refunded_amount": "10.00",
        "refundable_amount": "45.00",
        "fully_refunded": False,
    }
    again = api.post(url(), {"reference": "RF-1", "lines": [{"line": 1, "quantity": "1"}]}, format="json")
    assert again.status_code == 200 and again.json()["reference"] == "RF-1"
    api.post(url(), {"reference": "RF-2"}, format="json")
    listed = api.get(url())
    assert [r["reference"] for r in listed.json()["results"]] == ["RF-2", "RF-1"]
    assert api.get(url(), {"occurred_after": "2999-01-01T00:00:00Z"}).json()["results"] == []
    detail = api.get("/api/v1/purchases/SALE-1").json()
    assert detail["fully_refunded"] is True
    assert detail["lines"][0]["refunded_quantity"] == "3"


@pytest.mark.parametrize(
    ("payload", "status", "code", "field"),
    [
        ({}, 400, "required", "reference"),
        ({"reference": "RF-9", "lines": [{"line": 9}]}, 400, "unknown_line", "lines.0.line"),
        ({"reference": "RF-9", "lines": [{"line": 1}, {"line": 1}]}, 400, "invalid", "lines.1.line"),
        (
            {"reference": "RF-9", "lines": [{"line": 1, "quantity": "4"}]},
            409,
            "refund_exceeds_purchase",
            None,
        ),
        ({"reference": "RF-9", "lines": []}, 400, "min_length", "lines"),
        ({"reference": "RF-9", "amount": "10.0001"}, 400, "max_decimal_places", "amount"),
        ({"reference": "RF-9", "amount": "10.005"}, 400, "invalid_amount", "amount"),
        ({"reference": "RF-9", "amount": "60.00"}, 409, "refund_exceeds_purchase", None),
        ({"reference": "RF-9", "amount": "0"}, 400, "min_value", "amount"),
        ({"reference": "RF-9", "amount": "1.00", "lines": [{"line": 1}]}, 400, "exclusive", "amount"),
        ({"reference": "RF-9", "colour": "red"}, 400, "unknown_field", "colour"),
        ({"reference": "RF-9", "occurred_at": "2999-01-01T00:00:00Z"}, 400, "in_future", "occurred_at"),
    ],
)
def test_refund_api_errors_change_nothing(api, sale, payload, status, code, field):
    response = api.post(url(), payload, format="json")
    assert response.status_code == status, response.content
    problem = response.json()
    if status == 400:
        assert any(e["field"] == field and e["code"] == code for e in problem["errors"]), problem
    else:
        assert problem["code"] == code
    assert not Refund.objects.exists()
    assert balance(sale.member).available == 50


def test_refund_api_amount_decimals_checked_against_the_money_currency(
    api, make_program, make_api, make_member
):
    from points.earning import config

    yen = make_program("tokyo", currency="JPY", timezone="Asia/Tokyo")
    config.earning_rule_create(program=yen, code="base", name="Base", value=D("0.01"), actor=SYSTEM)
    client = make_api(["points:write"], target_program=yen)
    member = make_member(target_program=yen)
    purchases.purchase_record(
        program=yen, member=member, reference="JP-1", lines=[line("A", "1500")], actor=SYSTEM
    )
    response = client.post(
        "/api/v1/purchases/JP-1/refunds", {"reference": "RF", "amount": "10.5"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_amount"


def test_refund_api_reference_used_for_another_purchase_is_409(api, sale, member, buy):
    buy(member, [line("C", "5.00")], reference="SALE-2")
    api.post(url(), {"reference": "RF-1", "amount": "1.00"}, format="json")
    response = api.post(url("SALE-2"), {"reference": "RF-1", "amount": "1.00"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_reference"


def test_refund_api_fully_refunded_purchase_is_409(api, sale):
    assert api.post(url(), {"reference": "RF-1"}, format="json").status_code == 201
    response = api.post(url(), {"reference": "RF-2"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "purchase_fully_refunded"


def test_refund_api_access(make_api, sale, other_program, client):
    assert client.post(url(), {"reference": "RF-1"}, content_type="application/json").status_code == 401
    reader = make_api(["points:read"])
    assert reader.post(url(), {"reference": "RF-1"}, format="json").status_code == 403
    assert reader.get(url()).status_code == 200
    assert make_api(["members:read"]).get(url()).status_code == 403
    stranger = make_api(["points:read", "points:write"], target_program=other_program)
    response = stranger.post(url(), {"reference": "RF-1"}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "purchase_not_found"
    assert stranger.get(url()).status_code == 404
    assert not Refund.objects.exists()


def test_refund_api_idempotency_key_replays(api, sale):
    first = api.post(url(), {"reference": "RF-1", "amount": "5.00"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = api.post(url(), {"reference": "RF-1", "amount": "5.00"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Refund.objects.count() == 1
    assert Purchase.objects.get().refunded_amount == D("5.00")
