"""POST/GET /api/v1/purchases, /purchases/quote and /purchases/{reference}: identification,
money checks, replays, member status, quote = purchase, and every error path."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from members import services as member_services
from points.models import Purchase, Transaction
from tests.conftest import SYSTEM
from webhooks.models import Event

pytestmark = pytest.mark.django_db

URL = "/api/v1/purchases"


def body(who=None, **fields):
    data = {
        "member": {"id": who.pk} if who is not None else {},
        "reference": "R-1",
        "lines": [
            {"sku": "BEANS", "category": "coffee", "quantity": "2", "unit_price": "8.99", "discount": "1.00"},
            {"sku": "MUG", "unit_price": "12.50"},
        ],
    }
    data.update(fields)
    return data


@pytest.fixture
def api(make_api):
    return make_api(["points:read", "points:write"])


def test_purchase_api_records_points_with_breakdown(api, member, base_rule, make_campaign, location):
    make_campaign("coffee-x2", "2", categories=["coffee"], priority=10)
    response = api.post(URL, body(member, location="paris-01", tax="3.00", shipping="4.90"), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["total"] == "37.38"  # 16.98 + 12.50 + 3.00 + 4.90, computed when omitted
    assert data["eligible_amount"] == "29.48"
    assert data["points"] == 46  # 29.48 base + 16.98 for coffee x2 = 46.46
    assert data["first_purchase"] is True
    assert data["location"] == "paris-01"
    assert [(b["code"], b["lines"], b["points"]) for b in data["breakdown"]] == [
        ("base", [1, 2], 29),
        ("coffee-x2", [1], 17),
    ]
    assert data["breakdown"][1]["base"] == "16.98" and data["breakdown"][1]["value"] == "2"
    assert data["lines"][0]["line_total"] == "17.98" and data["lines"][0]["amount"] == "16.98"
    assert data["earnings"][0]["currency"] == "PTS" and data["earnings"][0]["points"] == 46
    assert data["balances"][0] == {"currency": "PTS", "available": 46, "pending": 0, "held": 0}
    txn = Transaction.objects.get(pk=data["earnings"][0]["transaction_id"])
    assert (txn.kind, txn.amount, txn.location.code) == ("earn", 46, "paris-01")
    earned = Event.objects.get(type="points.earned", member_id=member.pk)
    assert earned.data["purchase"]["reference"] == "R-1"
    assert [item["code"] for item in earned.data["purchase"]["breakdown"]] == ["base", "coffee-x2"]
    recorded = Event.objects.get(type="purchase.recorded", member_id=member.pk)
    assert recorded.data["purchase"]["points"] == {"PTS": 46}


@pytest.mark.parametrize(
    ("identifier", "factory"),
    [
        ("id", lambda m: m.pk),
        ("card", lambda m: m.cards.get().number),
        ("phone", lambda m: "06 12 34 56 78"),
        ("email", lambda m: "ANA@example.com"),
        ("number", lambda m: m.number),
    ],
)
def test_purchase_api_identifies_the_member_each_way(api, make_member, base_rule, identifier, factory):
    member = make_member(email="ana@example.com", phone="+33612345678", card_number="9000000000000017")
    response = api.post(URL, {**body(), "member": {identifier: factory(member)}}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["member_id"] == member.pk
    assert response.json()["card"] == ("9000000000000017" if identifier == "card" else None)


def test_purchase_api_refuses_a_replaced_or_blocked_card(api, make_member, base_rule):
    member = make_member(card_number="9000000000000017")
    card = member.cards.get()
    member_services.card_replace(card=card, reason="Lost", actor=SYSTEM)
    response = api.post(URL, {**body(), "member": {"card": "9000000000000017"}}, format="json")
    assert response.status_code == 422
    assert response.json()["code"] == "card_not_usable"
    assert not Purchase.objects.exists()


def test_purchase_api_repeated_reference_returns_the_original_with_200(api, member, base_rule):
    first = api.post(URL, body(member), format="json")
    again = api.post(URL, body(member), format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["points"] == first.json()["points"]
    assert Purchase.objects.count() == 1
    assert Transaction.objects.filter(kind="earn").count() == 1


def test_purchase_api_reference_of_another_member_or_total_is_409(api, member, make_member, base_rule):
    api.post(URL, body(member), format="json")
    other = make_member()
    response = api.post(URL, body(other), format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_reference"
    different = api.post(URL, body(member, lines=[{"sku": "X", "unit_price": "1.00"}]), format="json")
    assert different.status_code == 409


def test_purchase_api_idempotency_key_replays(api, member, base_rule):
    first = api.post(URL, body(member), format="json", HTTP_IDEMPOTENCY_KEY="till-1")
    again = api.post(URL, body(member), format="json", HTTP_IDEMPOTENCY_KEY="till-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post(URL, body(member, reference="R-2"), format="json", HTTP_IDEMPOTENCY_KEY="till-1")
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert Purchase.objects.count() == 1


def test_purchase_api_keeps_a_past_occurred_at_and_records_when_it_learned(api, member, base_rule):
    past = timezone.now() - timedelta(days=3)
    response = api.post(URL, body(member, occurred_at=past.isoformat()), format="json")
    purchase = Purchase.objects.get()
    assert purchase.occurred_at == past.replace(microsecond=purchase.occurred_at.microsecond)
    assert purchase.recorded_at > purchase.occurred_at + timedelta(days=2)
    txn = Transaction.objects.get(kind="earn")
    assert txn.occurred_at == purchase.occurred_at
    assert response.json()["occurred_at"] != response.json()["recorded_at"]


@pytest.mark.parametrize(
    ("status", "code"),
    [("suspended", "member_suspended"), ("terminated", "member_terminated")],
)
def test_purchase_api_refuses_suspended_and_terminated_members(api, member, base_rule, status, code):
    member_services.member_change_status(member=member, to_status=status, reason="Test", actor=SYSTEM)
    response = api.post(URL, body(member), format="json")
    assert response.status_code == 409
    assert response.json()["code"] == code
    assert not Purchase.objects.exists()
    quote = api.post(f"{URL}/quote", body(member), format="json")
    assert quote.status_code == 409


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"reference": ""}, "reference", "blank"),
        ({"lines": []}, "lines", "min_length"),
        ({"lines": [{"unit_price": "1.00"}]}, "lines.0.sku", "required"),
        ({"lines": [{"sku": "A", "unit_price": "-1"}]}, "lines.0.unit_price", "min_value"),
        ({"lines": [{"sku": "A", "unit_price": "1", "quantity": "0"}]}, "lines.0.quantity", "min_value"),
        ({"lines": [{"sku": "A", "unit_price": "1", "colour": "red"}]}, "lines.0.colour", "unknown_field"),
        ({"colour": "red"}, "colour", "unknown_field"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at", "in_future"),
        ({"currency": "USD"}, "currency", "currency_mismatch"),
        ({"location": "nowhere"}, "location", "unknown_location"),
        ({"total": "1.00"}, "total", "amounts_inconsistent"),
        ({"tax": "1.001"}, "tax", "invalid_amount"),
        (
            {"lines": [{"sku": "A", "unit_price": "1.00", "quantity": "3", "line_total": "3.05"}]},
            "lines.0.line_total",
            "amounts_inconsistent",
        ),
        (
            {"lines": [{"sku": "A", "unit_price": "1.00", "discount": "2.00"}]},
            "lines.0.discount",
            "amounts_inconsistent",
        ),
        ({"member": {}}, None, "lookup_criteria"),
        ({"member": {"id": 1, "email": "a@b.c"}}, None, "lookup_criteria"),
    ],
)
def test_purchase_api_bad_input_is_400_and_changes_nothing(api, member, base_rule, changes, field, code):
    response = api.post(URL, body(member, **changes), format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert any(e["field"] == field and e["code"] == code for e in problem["errors"]), problem
    assert not Purchase.objects.exists()
    assert not Transaction.objects.exists()


def test_purchase_api_inconsistent_total_is_explained_in_the_currency_decimals(api, member, base_rule):
    lines = [{"sku": "A", "unit_price": "49.9"}]
    response = api.post(URL, body(member, lines=lines, total="59.9"), format="json")
    assert response.status_code == 400
    problem = response.json()
    assert problem["expected"] == "49.90"
    assert problem["detail"] == "total 59.90 is not the lines after discounts plus tax and shipping (49.90)."


def test_purchase_api_totals_within_one_minor_unit_per_line_are_kept(api, member, base_rule):
    lines = [
        {"sku": "A", "unit_price": "0.33", "quantity": "3", "line_total": "1.00"},  # 0.99 ± 0.01
        {"sku": "B", "unit_price": "1.00"},
    ]
    response = api.post(URL, body(member, lines=lines, total="2.02"), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["total"] == "2.02"
    assert response.json()["lines"][0]["line_total"] == "1.00"


def test_purchase_api_money_decimals_follow_the_program_currency(api, make_program, make_api, make_member):
    yen = make_program("tokyo", currency="JPY", timezone="Asia/Tokyo")
    from points.earning import config

    config.earning_rule_create(program=yen, code="base", name="Base", value=Decimal("0.01"), actor=SYSTEM)
    client = make_api(["points:write"], target_program=yen)
    member = make_member(target_program=yen)
    bad = client.post(URL, body(member, lines=[{"sku": "A", "unit_price": "100.5"}]), format="json")
    assert bad.status_code == 400
    assert bad.json()["errors"][0] == {
        "field": "lines.0.unit_price",
        "code": "invalid_amount",
        "message": "JPY amounts have at most 0 decimals.",
    }
    good = client.post(URL, body(member, lines=[{"sku": "A", "unit_price": "1500"}]), format="json")
    assert good.status_code == 201, good.content
    assert (good.json()["total"], good.json()["points"]) == ("1500", 15)


def test_purchase_api_needs_credentials_and_scopes(make_api, member, base_rule, client):
    assert client.post(URL, body(member), content_type="application/json").status_code == 401
    reader = make_api(["points:read"])
    response = reader.post(URL, body(member), format="json")
    assert response.status_code == 403
    assert "points:write" in response.json()["detail"]
    assert reader.post(f"{URL}/quote", body(member), format="json").status_code == 200
    assert reader.get(URL).status_code == 200
    nobody = make_api(["members:read"])
    assert nobody.post(f"{URL}/quote", body(member), format="json").status_code == 403
    assert nobody.get(URL).status_code == 403
    assert nobody.get(f"{URL}/R-1").status_code == 403


def test_purchase_api_member_or_purchase_of_another_program_is_404(make_api, make_member, other_program, api):
    stranger = make_member(target_program=other_program)
    response = api.post(URL, body(stranger), format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "member_not_found"
    theirs = make_api(["points:read", "points:write"], target_program=other_program)
    assert theirs.post(URL, body(stranger, reference="THEIRS"), format="json").status_code == 201
    assert api.get(f"{URL}/THEIRS").status_code == 404
    assert api.get(f"{URL}/THEIRS").json()["code"] == "purchase_not_found"
    assert api.get(URL).json()["results"] == []


def test_purchase_api_get_by_reference_and_list_with_filters(api, member, make_member, base_rule, location):
    other = make_member()
    api.post(URL, body(member, reference="A-1", location="paris-01"), format="json")
    api.post(URL, body(other, reference="B-1"), format="json")
    api.post(URL, body(member, reference="A-2"), format="json")
    detail = api.get(f"{URL}/A-1")
    assert detail.status_code == 200
    assert detail.json()["reference"] == "A-1"
    listed = api.get(URL, {"member": member.pk})
    assert [p["reference"] for p in listed.json()["results"]] == ["A-2", "A-1"]
    assert [p["reference"] for p in api.get(URL, {"location": "paris-01"}).json()["results"]] == ["A-1"]
    assert [p["reference"] for p in api.get(URL, {"reference": "B-1"}).json()["results"]] == ["B-1"]
    page = api.get(URL, {"limit": 2})
    assert len(page.json()["results"]) == 2 and page.json()["next"]
    rest = api.get(page.json()["next"])
    assert [p["reference"] for p in rest.json()["results"]] == ["A-1"]
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert api.get(URL, {"occurred_after": future}).json()["results"] == []
    assert api.get(URL, {"fully_refunded": "true"}).json()["results"] == []
    assert api.get(URL, {"occurred_after": "yesterday"}).status_code == 400


def test_purchase_quote_equals_the_real_purchase_for_the_same_input(api, member, base_rule, make_campaign):
    from tiers import services as tier_services

    tier_services.tier_create(program=member.program, code="bronze", name="Bronze", rank=1, actor=SYSTEM)
    tier_services.tier_create(
        program=member.program,
        code="silver",
        name="Silver",
        rank=2,
        qualify_spend=Decimal("1"),
        earn_multiplier=Decimal("1.25"),
        actor=SYSTEM,
    )
    tier_services.members_assign_default(members=[member], actor=SYSTEM)
    make_campaign("coffee-x2", "2", categories=["coffee"], priority=10, max_points_per_purchase=10)
    make_campaign("bonus", "50", effect="fixed_bonus", scope="per_purchase", min_spend=Decimal("20.00"))
    data = body(member, tax="3.00")
    quote = api.post(f"{URL}/quote", data, format="json")
    assert quote.status_code == 200, quote.content
    assert not Purchase.objects.exists() and not Transaction.objects.exists()
    recorded = api.post(URL, data, format="json")
    assert recorded.status_code == 201
    assert quote.json()["points"] == recorded.json()["points"] == 89  # 29.48 + 10 (capped) + 50
    assert quote.json()["breakdown"] == recorded.json()["breakdown"]
    assert quote.json()["earnings"] == [{"currency": "PTS", "points": 89, "pending_until": None}]
    # The quote looks at the member as it is now: the purchase upgraded them to Silver.
    again = api.post(f"{URL}/quote", data, format="json")
    assert [b["code"] for b in again.json()["breakdown"]] == ["base", "coffee-x2", "silver", "bonus"]


def test_purchase_api_pending_for_the_return_window(api, member, base_rule, earning_settings):
    earning_settings(return_window_days=14)
    response = api.post(URL, body(member), format="json")
    data = response.json()
    assert data["balances"][0]["pending"] == data["points"] and data["balances"][0]["available"] == 0
    assert data["earnings"][0]["pending_until"] is not None
    offline = timezone.now() - timedelta(days=20)  # its return window is over already
    late = api.post(URL, body(member, reference="R-old", occurred_at=offline.isoformat()), format="json")
    assert late.json()["earnings"][0]["pending_until"] is None
    assert late.json()["balances"][0]["available"] == late.json()["points"]


def test_member_export_holds_purchases_refunds_bonuses_and_referral(api, make_api, member, base_rule, buy):
    from points.earning import purchases
    from tests.points.conftest import line

    purchase = buy(member, [line("A", "10.00")], reference="EXP-1")
    purchases.refund_record(purchase=purchase, reference="EXP-RF", amount=Decimal("2.50"), actor=SYSTEM)
    exporter = make_api(["members:read"])
    section = exporter.get(f"/api/v1/members/{member.pk}/export").json()["earning"]
    assert section["purchases"][0]["reference"] == "EXP-1"
    assert section["purchases"][0]["lines"] == [{"sku": "A", "quantity": "1", "amount": "10.00"}]
    assert section["refunds"][0]["amount"] == "2.50"
    assert (section["bonuses"], section["referral_code"], section["referred_by"]) == ([], None, None)


def test_purchase_api_amounts_too_large_are_400_not_500(api, member, make_rule):
    make_rule("base", "100000")
    huge = [{"sku": "A", "unit_price": "9999999999999", "quantity": "999999"}]
    response = api.post(URL, body(member, lines=huge), format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "field": "lines.0.quantity",
        "code": "invalid_amount",
        "message": "quantity × unit_price is too large.",
    }
    many = [{"sku": f"S{n}", "unit_price": "9999999999999"} for n in range(2)]
    assert api.post(URL, body(member, lines=many), format="json").json()["errors"][0]["field"] == "total"
    rich = [{"sku": "A", "unit_price": "99999999"}]
    response = api.post(URL, body(member, lines=rich), format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "lines"
    assert api.post(f"{URL}/quote", body(member, lines=rich), format="json").status_code == 400
    assert not Purchase.objects.exists()
