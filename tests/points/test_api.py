from datetime import timedelta

import pytest
from django.utils import timezone

from members import services as member_services
from points.models import Hold, Transaction

from .conftest import SYSTEM


def _earn(api, member, amount=100, **body):
    return api.post(f"/api/v1/members/{member.pk}/points/earn", {"amount": amount, **body}, format="json")


# --- Earn ----------------------------------------------------------------------------------


def test_earn_api_returns_201_with_transaction_and_balance(points_api, member, program):
    from programs.services import location_create

    location_create(program=program, code="paris-01", name="Paris", actor=SYSTEM)
    response = _earn(points_api, member, 120, reference="R-1", location="paris-01", metadata={"basket": 3})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["balance"] == {"currency": "PTS", "available": 120, "pending": 0, "held": 0}
    assert body["transaction"]["kind"] == "earn"
    assert body["transaction"]["location"] == "paris-01"
    assert body["transaction"]["signed_amount"] == 120
    assert body["transaction"]["metadata"] == {"basket": 3}


def test_earn_api_repeated_reference_returns_200_original(points_api, member):
    first = _earn(points_api, member, 50, reference="R-2")
    again = _earn(points_api, member, 50, reference="R-2")
    assert again.status_code == 200
    assert again.json()["transaction"]["id"] == first.json()["transaction"]["id"]
    assert Transaction.objects.filter(kind="earn").count() == 1


def test_earn_api_reference_reused_for_other_amount_is_409(points_api, member):
    _earn(points_api, member, 50, reference="R-3")
    response = _earn(points_api, member, 60, reference="R-3")
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_reference"


def test_earn_api_idempotency_key_replays(points_api, member):
    first = points_api.post(
        f"/api/v1/members/{member.pk}/points/earn", {"amount": 10}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    again = points_api.post(
        f"/api/v1/members/{member.pk}/points/earn", {"amount": 10}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = points_api.post(
        f"/api/v1/members/{member.pk}/points/earn", {"amount": 11}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert other.status_code == 422
    assert Transaction.objects.filter(kind="earn").count() == 1


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "amount", "required"),
        ({"amount": 0}, "amount", "min_value"),
        ({"amount": "ten"}, "amount", "invalid"),
        ({"amount": 10, "colour": "red"}, "colour", "unknown_field"),
        ({"amount": 10, "currency": "NOPE"}, "currency", "unknown_currency"),
        ({"amount": 10, "location": "nowhere"}, "location", "unknown_location"),
        ({"amount": 10, "occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at", "in_future"),
        ({"amount": 10, "metadata": [1]}, "metadata", "not_a_dict"),
    ],
)
def test_earn_api_bad_input_is_400_and_changes_nothing(points_api, member, body, field, code):
    response = points_api.post(f"/api/v1/members/{member.pk}/points/earn", body, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert any(e["field"] == field and e["code"] == code for e in errors), errors
    assert not Transaction.objects.exists()


def test_points_api_needs_credentials_and_scope(make_api, member, client):
    url = f"/api/v1/members/{member.pk}/points/earn"
    assert client.post(url, {"amount": 1}, content_type="application/json").status_code == 401
    reader = make_api(["points:read"])
    response = _earn(reader, member, 1)
    assert response.status_code == 403
    assert "points:write" in response.json()["detail"]
    assert reader.get(f"/api/v1/members/{member.pk}/balances").status_code == 200
    nobody = make_api(["members:read"])
    assert nobody.get(f"/api/v1/members/{member.pk}/balances").status_code == 403


def test_points_api_member_of_other_program_is_404(make_api, make_member, other_program):
    stranger = make_member(target_program=other_program)
    api = make_api(["points:read", "points:write"])
    assert _earn(api, stranger).status_code == 404
    assert api.get(f"/api/v1/members/{stranger.pk}/balances").status_code == 404
    assert api.get(f"/api/v1/members/{stranger.pk}/transactions").status_code == 404


# --- Redeem, adjust, transfer ------------------------------------------------------------


def test_redeem_api_insufficient_is_409_with_available(points_api, member):
    _earn(points_api, member, 30)
    response = points_api.post(f"/api/v1/members/{member.pk}/points/redeem", {"amount": 50}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["available"], body["requested"]) == ("insufficient_points", 30, 50)


def test_redeem_api_success_and_member_status_codes(points_api, member):
    _earn(points_api, member, 100)
    ok = points_api.post(f"/api/v1/members/{member.pk}/points/redeem", {"amount": 40}, format="json")
    assert ok.status_code == 201
    assert ok.json()["balance"]["available"] == 60
    assert ok.json()["transaction"]["signed_amount"] == -40
    member_services.member_status_action(member=member, action="suspend", reason="x", actor=SYSTEM)
    suspended = points_api.post(f"/api/v1/members/{member.pk}/points/redeem", {"amount": 1}, format="json")
    assert suspended.json()["code"] == "member_suspended"
    member_services.member_status_action(member=member, action="terminate", reason="x", actor=SYSTEM)
    terminated = _earn(points_api, member, 1)
    assert (terminated.status_code, terminated.json()["code"]) == (409, "member_terminated")


def test_redeem_api_inactive_currency_is_409(points_api, member, make_currency):
    make_currency("OLD", is_active=False)
    response = points_api.post(
        f"/api/v1/members/{member.pk}/points/redeem", {"amount": 5, "currency": "old"}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "currency_inactive")


def test_redeem_api_below_minimum_is_422(points_api, member, make_currency):
    make_currency("CASH", minimum_redemption=100)
    _earn(points_api, member, 500, currency="CASH")
    response = points_api.post(
        f"/api/v1/members/{member.pk}/points/redeem", {"amount": 10, "currency": "CASH"}, format="json"
    )
    assert (response.status_code, response.json()["minimum"]) == (422, 100)


def test_adjust_api_requires_reason_and_nonzero(points_api, member):
    url = f"/api/v1/members/{member.pk}/points/adjust"
    assert points_api.post(url, {"amount": 5}, format="json").json()["errors"][0]["field"] == "reason"
    assert points_api.post(url, {"amount": 0, "reason": "x"}, format="json").status_code == 400
    response = points_api.post(url, {"amount": -5, "reason": "Correction"}, format="json")
    assert response.json()["code"] == "insufficient_points"
    response = points_api.post(url, {"amount": 25, "reason": "Goodwill"}, format="json")
    assert response.status_code == 201
    assert response.json()["transaction"]["reason"] == "Goodwill"


def test_transfer_api_moves_points_and_validates_recipient(points_api, member, make_member, other_program):
    other = make_member()
    _earn(points_api, member, 100)
    url = f"/api/v1/members/{member.pk}/points/transfer"
    response = points_api.post(url, {"to_member": other.pk, "amount": 30}, format="json")
    assert response.status_code == 201
    assert response.json()["balance"]["available"] == 70
    assert response.json()["counterparty_balance"]["available"] == 30
    stranger = make_member(target_program=other_program)
    bad = points_api.post(url, {"to_member": stranger.pk, "amount": 1}, format="json")
    assert (bad.status_code, bad.json()["code"]) == (400, "recipient_not_found")
    itself = points_api.post(url, {"to_member": member.pk, "amount": 1}, format="json")
    assert itself.json()["code"] == "transfer_to_self"
    received = points_api.get(f"/api/v1/members/{other.pk}/transactions").json()["results"]
    assert received[0]["kind"] == "transfer" and received[0]["signed_amount"] == 30


# --- Reverse -----------------------------------------------------------------------------


def test_reverse_api_partial_then_exceeding(points_api, member):
    earned = _earn(points_api, member, 100).json()["transaction"]["id"]
    url = f"/api/v1/transactions/{earned}/reverse"
    first = points_api.post(url, {"amount": 40, "reason": "Return"}, format="json")
    assert first.status_code == 201
    assert first.json()["transaction"]["reverses"] == earned
    assert first.json()["balance"]["available"] == 60
    too_much = points_api.post(url, {"amount": 61}, format="json")
    assert (too_much.status_code, too_much.json()["reversible"]) == (409, 60)
    rest = points_api.post(url, {}, format="json")
    assert rest.json()["balance"]["available"] == 0


def test_reverse_api_other_program_transaction_is_404(make_api, make_member, other_program):
    from points import services

    stranger = make_member(target_program=other_program)
    txn = services.points_earn(member=stranger, amount=10, actor=SYSTEM).transaction
    api = make_api(["points:read", "points:write"])
    assert api.post(f"/api/v1/transactions/{txn.pk}/reverse", {}, format="json").status_code == 404
    assert api.get(f"/api/v1/transactions/{txn.pk}").status_code == 404


def test_reverse_api_refuses_hold_transactions(points_api, member):
    _earn(points_api, member, 100)
    hold = points_api.post(f"/api/v1/members/{member.pk}/holds", {"amount": 10}, format="json").json()
    response = points_api.post(f"/api/v1/transactions/{hold['transaction']['id']}/reverse", {}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "not_reversible")


# --- Holds -------------------------------------------------------------------------------


def test_hold_api_create_capture_twice_is_409(points_api, member):
    _earn(points_api, member, 100)
    created = points_api.post(
        f"/api/v1/members/{member.pk}/holds", {"amount": 60, "expires_in_minutes": 30}, format="json"
    )
    assert created.status_code == 201
    hold = created.json()["hold"]
    assert created.json()["balance"] == {"currency": "PTS", "available": 40, "pending": 0, "held": 60}
    captured = points_api.post(f"/api/v1/holds/{hold['id']}/capture", {"amount": 50}, format="json")
    assert captured.status_code == 201
    assert captured.json()["hold"]["state"] == "captured"
    assert captured.json()["balance"]["available"] == 50
    again = points_api.post(f"/api/v1/holds/{hold['id']}/capture", {}, format="json")
    assert (again.status_code, again.json()["code"], again.json()["state"]) == (
        409,
        "hold_not_active",
        "captured",
    )
    assert points_api.get(f"/api/v1/holds/{hold['id']}").json()["captured_amount"] == 50


def test_hold_api_release_then_capture_is_409(points_api, member):
    _earn(points_api, member, 100)
    hold = points_api.post(f"/api/v1/members/{member.pk}/holds", {"amount": 60}, format="json").json()["hold"]
    released = points_api.post(f"/api/v1/holds/{hold['id']}/release", {}, format="json")
    assert released.json()["balance"]["available"] == 100
    response = points_api.post(f"/api/v1/holds/{hold['id']}/capture", {}, format="json")
    assert (response.status_code, response.json()["state"]) == (409, "released")
    assert points_api.post(f"/api/v1/holds/{hold['id']}/release", {}, format="json").status_code == 409


def test_hold_api_expired_capture_is_409(points_api, member):
    _earn(points_api, member, 100)
    hold = points_api.post(f"/api/v1/members/{member.pk}/holds", {"amount": 60}, format="json").json()["hold"]
    Hold.objects.filter(pk=hold["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = points_api.post(f"/api/v1/holds/{hold['id']}/capture", {}, format="json")
    assert (response.status_code, response.json()["state"]) == (409, "expired")


def test_hold_api_capture_more_than_hold_is_400(points_api, member):
    _earn(points_api, member, 100)
    hold = points_api.post(f"/api/v1/members/{member.pk}/holds", {"amount": 10}, format="json").json()["hold"]
    response = points_api.post(f"/api/v1/holds/{hold['id']}/capture", {"amount": 11}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "capture_exceeds_hold")


def test_hold_api_unknown_or_other_program_hold_is_404(
    points_api, make_api, member, other_program, make_member
):
    _earn(points_api, member, 100)
    hold = points_api.post(f"/api/v1/members/{member.pk}/holds", {"amount": 10}, format="json").json()["hold"]
    outsider = make_api(["points:read", "points:write"], target_program=other_program)
    assert outsider.post(f"/api/v1/holds/{hold['id']}/capture", {}, format="json").status_code == 404
    assert points_api.post("/api/v1/holds/999999/release", {}, format="json").status_code == 404


# --- Reads -------------------------------------------------------------------------------


def test_balances_api_lists_currencies_with_next_expiry(points_api, member, make_currency):
    make_currency("MILES", expiry_policy="rolling_days", expiry_period=10)
    _earn(points_api, member, 100, currency="MILES")
    _earn(points_api, member, 20, pending_until=(timezone.now() + timedelta(days=3)).isoformat())
    body = points_api.get(f"/api/v1/members/{member.pk}/balances").json()
    by_code = {b["currency"]: b for b in body["balances"]}
    assert by_code["PTS"]["pending"] == 20 and by_code["PTS"]["next_expiry_on"] is None
    assert by_code["MILES"]["available"] == 100
    assert by_code["MILES"]["next_expiry_amount"] == 100
    assert by_code["MILES"]["next_expiry_on"] == str(
        (timezone.now().astimezone(member.program.tz) + timedelta(days=10)).date()
    )
    assert by_code["MILES"]["lifetime_earned"] == 100


def test_transactions_api_filters_and_paginates(points_api, member):
    for index in range(5):
        _earn(points_api, member, 10 + index, reference=f"T-{index}")
    points_api.post(f"/api/v1/members/{member.pk}/points/redeem", {"amount": 5}, format="json")
    url = f"/api/v1/members/{member.pk}/transactions"
    page = points_api.get(url, {"limit": 2}).json()
    assert [t["kind"] for t in page["results"]] == ["redeem", "earn"]
    second = points_api.get(page["next"]).json()
    assert len(second["results"]) == 2
    assert points_api.get(url, {"kind": "redeem"}).json()["results"][0]["amount"] == 5
    assert [t["reference"] for t in points_api.get(url, {"reference": "T-3"}).json()["results"]] == ["T-3"]
    assert points_api.get(url, {"currency": "pts"}).json()["results"]
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert points_api.get(url, {"occurred_after": future}).json()["results"] == []
    assert points_api.get(url, {"kind": "bogus"}).status_code == 400
    assert points_api.get(url, {"occurred_after": "yesterday"}).status_code == 400
    assert points_api.get(url, {"cursor": "garbage"}).status_code == 400


def test_expiring_api_groups_by_date_and_validates_within(points_api, member, make_currency):
    make_currency("MILES", expiry_policy="rolling_days", expiry_period=30)
    _earn(points_api, member, 100, currency="MILES")
    _earn(
        points_api,
        member,
        50,
        currency="MILES",
        occurred_at=(timezone.now() - timedelta(days=20)).isoformat(),
    )
    url = f"/api/v1/members/{member.pk}/expiring"
    soon = points_api.get(url, {"within": "15d"}).json()
    assert soon["total"] == 50 and len(soon["items"]) == 1
    later = points_api.get(url, {"within": "90d"}).json()
    assert later["total"] == 150 and [i["amount"] for i in later["items"]] == [50, 100]
    for garbage in ("90", "d90", "-5d", "90 days", "99999d"):
        response = points_api.get(url, {"within": garbage})
        assert (response.status_code, response.json()["code"]) == (400, "invalid_duration"), garbage


# --- Currencies --------------------------------------------------------------------------


def test_currency_api_create_update_and_scopes(make_api):
    config = make_api(["config:read", "config:write"])
    created = config.post(
        "/api/v1/currencies",
        {"code": "stamps", "name": "Stamps", "expiry_policy": "rolling_months", "expiry_period": 12},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["code"] == "STAMPS"
    assert (
        config.post("/api/v1/currencies", {"code": "STAMPS", "name": "x"}, format="json").status_code == 409
    )
    bad_policy = config.post(
        "/api/v1/currencies", {"code": "X", "name": "x", "expiry_policy": "rolling_days"}, format="json"
    )
    assert (bad_policy.status_code, bad_policy.json()["code"]) == (400, "invalid_expiry_policy")
    bad_date = config.post(
        "/api/v1/currencies",
        {"code": "Y", "name": "y", "expiry_policy": "fixed_date", "expiry_month": 2, "expiry_day": 30},
        format="json",
    )
    assert bad_date.json()["errors"][0]["field"] == "expiry_day"
    patched = config.patch("/api/v1/currencies/stamps", {"is_active": False}, format="json")
    assert patched.json()["is_active"] is False
    codes = [c["code"] for c in config.get("/api/v1/currencies").json()["results"]]
    assert codes == ["PTS", "STAMPS"]
    assert config.get("/api/v1/currencies/NOPE").status_code == 404
    points_only = make_api(["points:read", "points:write"])
    assert points_only.get("/api/v1/currencies").status_code == 403
    assert make_api(["config:read"]).post("/api/v1/currencies", {"code": "Z", "name": "z"}).status_code == 403


def test_currency_api_default_moves(make_api, program):
    config = make_api(["config:read", "config:write"])
    config.post("/api/v1/currencies", {"code": "NEW", "name": "New", "is_default": True}, format="json")
    defaults = [c["code"] for c in config.get("/api/v1/currencies").json()["results"] if c["is_default"]]
    assert defaults == ["NEW"]
    refused = config.patch("/api/v1/currencies/NEW", {"is_default": False}, format="json")
    assert refused.status_code == 400


def test_member_lookup_includes_balances_section(api, member, make_member):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from members.selectors import member_profiles
    from points import selectors, services

    services.points_earn(member=member, amount=70, actor=SYSTEM)
    profile = api.get("/api/v1/members/lookup", {"email": member.email}).json()
    assert profile["balances"][0]["available"] == 70
    members = [make_member() for _ in range(5)]
    for other in members:
        services.points_earn(member=other, amount=5, actor=SYSTEM)
    with CaptureQueriesContext(connection) as one:
        selectors.profile_balances(members=[member])
    with CaptureQueriesContext(connection) as six:
        _section, data = selectors.profile_balances(members=[*members, member])
    assert len(one.captured_queries) == len(six.captured_queries) <= 3
    assert data[member.pk][0]["available"] == 70
    assert member_profiles([*members, member])[members[0].pk]["balances"][0]["available"] == 5


def test_gdpr_export_includes_points_section(member, make_member, earn):
    from members.selectors import member_export
    from points import services

    earn(member, 100, reference="R-9")
    other = make_member()
    services.points_transfer(member=member, to_member=other, amount=30, actor=SYSTEM)
    services.hold_create(member=member, amount=10, actor=SYSTEM)
    exported = member_export(member=other)["points"]
    assert exported["balances"][0]["available"] == 30
    assert [(t["kind"], t["signed_amount"]) for t in exported["transactions"]] == [("transfer", 30)]
    mine = member_export(member=member)["points"]
    assert [t["kind"] for t in mine["transactions"]] == ["earn", "transfer", "hold"]
    assert mine["holds"][0]["amount"] == 10
