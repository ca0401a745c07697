"""The rewards API: catalog, a member's rewards with reasons, redeem and cancel, errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from members import services as member_services
from rewards.models import Redemption, Reward, Voucher

from .conftest import SYSTEM

pytestmark = pytest.mark.django_db

REWARD_BODY = {
    "code": "coffee-5",
    "name": "5 EUR off",
    "kind": "amount_voucher",
    "costs": [{"currency": "PTS", "points": 500}],
    "voucher_amount": "5.00",
    "stock": 10,
}


# --- Catalog ---------------------------------------------------------------------------------


def test_reward_api_create_get_list_patch(rewards_api, program):
    member_services.label_create(program=program, code="vip", name="VIP", actor=SYSTEM)
    response = rewards_api.post("/api/v1/rewards", {**REWARD_BODY, "eligible_labels": ["vip"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["costs"] == [{"currency": "PTS", "points": 500}]
    assert body["voucher_amount"] == "5.00" and body["eligible_labels"] == ["vip"]
    assert rewards_api.get("/api/v1/rewards/coffee-5").json()["stock"] == 10
    listed = rewards_api.get("/api/v1/rewards?kind=amount_voucher").json()
    assert [r["code"] for r in listed["results"]] == ["coffee-5"]
    assert rewards_api.get("/api/v1/rewards?kind=physical").json()["results"] == []
    patched = rewards_api.patch("/api/v1/rewards/coffee-5", {"stock": 3, "is_active": False}, format="json")
    assert patched.status_code == 200 and patched.json()["stock"] == 3
    assert Reward.objects.get().history.count() == 2


def test_reward_api_errors(rewards_api, make_api, program, other_program):
    bad = rewards_api.post("/api/v1/rewards", {**REWARD_BODY, "colour": "red"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["errors"] == [
        {"field": "colour", "code": "unknown_field", "message": "This field is not part of this request."}
    ]
    bad = rewards_api.post("/api/v1/rewards", {**REWARD_BODY, "costs": [], "stock": -1}, format="json")
    assert {e["field"] for e in bad.json()["errors"]} == {"costs", "stock"}
    no_amount = rewards_api.post("/api/v1/rewards", {**REWARD_BODY, "voucher_amount": None}, format="json")
    assert no_amount.status_code == 400 and no_amount.json()["code"] == "invalid_reward"
    assert no_amount.json()["errors"][0]["field"] == "voucher_amount"
    unknown = rewards_api.post(
        "/api/v1/rewards", {**REWARD_BODY, "costs": [{"currency": "XX", "points": 1}]}, format="json"
    )
    assert unknown.json()["code"] == "unknown_currency"
    assert rewards_api.post("/api/v1/rewards", REWARD_BODY, format="json").status_code == 201
    taken = rewards_api.post("/api/v1/rewards", REWARD_BODY, format="json")
    assert taken.status_code == 409 and taken.json()["code"] == "reward_code_taken"
    reader = make_api(["rewards:read"])
    assert reader.get("/api/v1/rewards").status_code == 200
    assert reader.post("/api/v1/rewards", REWARD_BODY, format="json").status_code == 403
    assert make_api(["config:write"]).get("/api/v1/rewards").status_code == 403
    anonymous = rewards_api.__class__()
    assert anonymous.get("/api/v1/rewards").status_code == 401
    other = make_api(target_program=other_program)
    assert other.get("/api/v1/rewards/coffee-5").json()["code"] == "reward_not_found"


# --- A member's rewards -------------------------------------------------------------------------


def test_member_rewards_lists_available_and_reasons(rewards_api, member, make_reward, earn, program):
    vip = member_services.label_create(program=program, code="vip", name="VIP", actor=SYSTEM)
    earn(member, 600)
    now = timezone.now()
    make_reward("ok")
    make_reward("dear", cost=5000)
    make_reward("gone", stock=0)
    make_reward("off", is_active=False)
    make_reward("soon", valid_from=now + timedelta(days=2))
    make_reward("vip-only", eligible_labels=[vip])
    make_reward("once", limit_total=1, cost=100)
    from rewards import services

    services.reward_redeem(member=member, reward=Reward.objects.get(code="once"), actor=SYSTEM)

    url = f"/api/v1/members/{member.pk}/rewards"
    available = rewards_api.get(url).json()["results"]
    assert [r["code"] for r in available] == ["ok"]
    assert available[0]["available"] is True and available[0]["reasons"] == []
    everything = rewards_api.get(url + "?include_unavailable=true").json()["results"]
    reasons = {r["code"]: r["reasons"] for r in everything}
    assert reasons == {
        "dear": ["insufficient_points"],
        "gone": ["out_of_stock"],
        "off": ["inactive"],
        "ok": [],
        "once": ["limit_reached"],
        "soon": ["not_yet_valid"],
        "vip-only": ["not_eligible_label"],
    }
    assert {r["code"]: r["redeemed_total"] for r in everything}["once"] == 1
    bad = rewards_api.get(url + "?include_unavailable=maybe")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "include_unavailable"


def test_member_rewards_fixed_number_of_queries(rewards_api, member, make_reward, earn, program):
    earn(member, 10_000)
    make_reward("r0")
    url = f"/api/v1/members/{member.pk}/rewards?include_unavailable=true"
    default_url = f"/api/v1/members/{member.pk}/rewards"
    rewards_api.get(url)  # the first request of a key also records its use
    with CaptureQueriesContext(connection) as small:
        assert rewards_api.get(url).status_code == 200
    with CaptureQueriesContext(connection) as small_default:
        assert rewards_api.get(default_url).status_code == 200
    vip = member_services.label_create(program=program, code="vip", name="VIP", actor=SYSTEM)
    for index in range(1, 25):
        make_reward(
            f"r{index}",
            stock=index,
            limit_total=2,
            eligible_labels=[vip] if index % 2 else [],
            tier_tags=["lounge"] if index % 3 == 0 else [],
        )
    with CaptureQueriesContext(connection) as large:
        body = rewards_api.get(url).json()
    assert len(body["results"]) == 25
    assert len(large.captured_queries) == len(small.captured_queries)
    with CaptureQueriesContext(connection) as large_default:
        body = rewards_api.get(default_url).json()
    assert len(body["results"]) == 9  # r0 and the untagged even ones
    assert len(large_default.captured_queries) == len(small_default.captured_queries)


def test_member_rewards_other_program_member_is_404(make_api, member, other_program):
    other = make_api(target_program=other_program)
    response = other.get(f"/api/v1/members/{member.pk}/rewards")
    assert response.status_code == 404 and response.json()["code"] == "member_not_found"


# --- Redeem and cancel -------------------------------------------------------------------------


def redeem(api, member, code="coffee-5", **body):
    return api.post(f"/api/v1/members/{member.pk}/rewards/{code}/redeem", body, format="json")


def test_redeem_api_201_then_reference_replay_200(rewards_api, member, make_reward, earn):
    earn(member, 1000)
    make_reward(stock=2)
    response = redeem(rewards_api, member, reference="app-1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["balance"] == {"currency": "PTS", "available": 500, "pending": 0, "held": 0}
    assert body["redemption"]["voucher"]["amount"] == "5.00"
    assert body["redemption"]["voucher"]["code"].count("-") == 3
    again = redeem(rewards_api, member, reference="app-1")
    assert again.status_code == 200 and again.json()["redemption"]["id"] == body["redemption"]["id"]
    assert Redemption.objects.count() == 1


def test_redeem_api_idempotency_key_replays(rewards_api, member, make_reward, earn):
    earn(member, 1000)
    make_reward()
    url = f"/api/v1/members/{member.pk}/rewards/coffee-5/redeem"
    first = rewards_api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = rewards_api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    other = rewards_api.post(url, {"reference": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert Redemption.objects.count() == 1


def test_redeem_api_problem_codes(rewards_api, make_api, member, make_reward, earn, program, other_program):
    vip = member_services.label_create(program=program, code="vip", name="VIP", actor=SYSTEM)
    earn(member, 1000)
    make_reward("gone", stock=0)
    make_reward("vip-only", eligible_labels=[vip])
    make_reward("dear", cost=5000)
    make_reward("off", is_active=False)
    make_reward("mug", kind=Reward.Kind.PHYSICAL)
    make_reward("once", limit_total=1, cost=10)
    assert redeem(rewards_api, member, "once").status_code == 201

    cases = {
        "gone": (409, "out_of_stock"),
        "vip-only": (422, "not_eligible"),
        "dear": (409, "insufficient_points"),
        "off": (409, "reward_inactive"),
        "mug": (400, "address_required"),
        "once": (409, "member_limit_reached"),
        "nope": (404, "reward_not_found"),
    }
    for code, (status, problem) in cases.items():
        response = redeem(rewards_api, member, code)
        assert (response.status_code, response.json()["code"]) == (status, problem), code
    assert redeem(rewards_api, member, "dear").json()["available"] == 990
    bad = redeem(rewards_api, member, "mug", address={"name": "A", "city": "Paris", "country": "France"})
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {"address.address_line1", "address.country"}
    assert redeem(rewards_api, member, "gone", location="nowhere").json()["code"] == "unknown_location"
    assert redeem(make_api(["rewards:read"]), member).status_code == 403
    other = make_api(target_program=other_program)
    assert redeem(other, member, "gone").json()["code"] == "member_not_found"
    assert Redemption.objects.count() == 1


def test_redeem_api_physical_with_address(rewards_api, member, make_reward, earn):
    earn(member, 1000)
    make_reward("mug", kind=Reward.Kind.PHYSICAL)
    address = {"name": "Ana Lopez", "address_line1": "1 rue de la Paix", "city": "Paris", "country": "fr"}
    response = redeem(rewards_api, member, "mug", address=address)
    assert response.status_code == 201, response.content
    shipment = response.json()["redemption"]["shipment"]
    assert shipment["country"] == "FR" and shipment["status"] == "pending"


def test_redemption_cancel_api(rewards_api, make_api, member, make_reward, earn, other_program):
    earn(member, 1000)
    make_reward(stock=1)
    redemption_id = redeem(rewards_api, member).json()["redemption"]["id"]
    url = f"/api/v1/redemptions/{redemption_id}/cancel"
    assert rewards_api.post(url, {}, format="json").json()["errors"][0]["field"] == "reason"
    other = make_api(target_program=other_program)
    assert other.post(url, {"reason": "x"}, format="json").json()["code"] == "redemption_not_found"
    response = rewards_api.post(url, {"reason": "Changed mind"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["redemption"]["status"] == "cancelled"
    assert response.json()["balance"]["available"] == 1000
    assert Reward.objects.get().stock == 1
    again = rewards_api.post(url, {"reason": "again"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "redemption_not_cancellable"
    listed = rewards_api.get(f"/api/v1/members/{member.pk}/redemptions?status=cancelled").json()["results"]
    assert [r["id"] for r in listed] == [redemption_id]
    assert rewards_api.get(f"/api/v1/redemptions/{redemption_id}").json()["voucher"]["status"] == "cancelled"
    vouchers = rewards_api.get(f"/api/v1/members/{member.pk}/vouchers?status=cancelled").json()["results"]
    assert len(vouchers) == 1 and Voucher.objects.get().status == "cancelled"


def test_member_rewards_member_without_points_or_eligible_tier(rewards_api, member, make_reward, program):
    from tiers import services as tier_services

    tier_services.tier_create(
        program=program, code="basic", name="Basic", rank=1, rewards_eligible=False, actor=SYSTEM
    )
    make_reward("a")
    url = f"/api/v1/members/{member.pk}/rewards"
    assert rewards_api.get(url).json()["results"] == []
    body = rewards_api.get(url + "?include_unavailable=1").json()["results"]
    assert body[0]["reasons"] == ["not_eligible_tier", "insufficient_points"]


@pytest.mark.parametrize(
    ("action", "status", "reason"),
    [
        ("suspend", "active", "member_suspended"),
        (None, "pending", "member_not_active"),
        ("terminate", "active", "member_terminated"),
    ],
)
def test_member_rewards_member_who_may_not_spend_sees_everything_greyed_out(
    rewards_api, make_member, make_reward, earn, action, status, reason
):
    member = make_member(status=status)
    if status == "active":
        earn(member, 1000)
    make_reward("ok", cost=100)
    make_reward("gone", stock=0, cost=100)
    if action:
        member_services.member_status_action(member=member, action=action, reason="Review", actor=SYSTEM)
    url = f"/api/v1/members/{member.pk}/rewards"
    assert rewards_api.get(url).json()["results"] == []
    greyed = rewards_api.get(url + "?include_unavailable=true").json()["results"]
    expected_ok = [reason] if status == "active" else [reason, "insufficient_points"]
    assert {r["code"]: (r["available"], r["reasons"]) for r in greyed} == {
        "ok": (False, expected_ok),
        "gone": (False, [reason, "out_of_stock", *expected_ok[1:]]),
    }
    # Redeeming says the same, before anything about the reward itself.
    for code in ("ok", "gone"):
        refused = redeem(rewards_api, member, code)
        assert (refused.status_code, refused.json()["code"]) == (409, reason), code
    assert Redemption.objects.count() == 0


def test_member_rewards_reactivated_member_gets_rewards_again(rewards_api, member, make_reward, earn):
    earn(member, 1000)
    make_reward("ok", cost=100)
    member_services.member_status_action(member=member, action="suspend", reason="Review", actor=SYSTEM)
    url = f"/api/v1/members/{member.pk}/rewards"
    assert rewards_api.get(url).json()["results"] == []
    member_services.member_status_action(member=member, action="reactivate", reason="Cleared", actor=SYSTEM)
    assert [r["code"] for r in rewards_api.get(url).json()["results"]] == ["ok"]
    assert redeem(rewards_api, member, "ok").status_code == 201


def test_member_rewards_tier_tags(rewards_api, member, earn, program):
    from tiers import services as tier_services

    bronze = tier_services.tier_create(program=program, code="bronze", name="Bronze", rank=10, actor=SYSTEM)
    gold = tier_services.tier_create(
        program=program, code="gold", name="Gold", rank=30, reward_tags=["lounge"], actor=SYSTEM
    )
    tier_services.member_tier_assign(member=member, tier=bronze, reason="Start", actor=SYSTEM)
    earn(member, 1000)
    created = rewards_api.post(
        "/api/v1/rewards", {**REWARD_BODY, "code": "lounge", "tier_tags": ["lounge"]}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["tier_tags"] == ["lounge"]
    assert rewards_api.post("/api/v1/rewards", REWARD_BODY, format="json").status_code == 201
    url = f"/api/v1/members/{member.pk}/rewards"
    assert [r["code"] for r in rewards_api.get(url).json()["results"]] == ["coffee-5"]
    reasons = {
        r["code"]: r["reasons"] for r in rewards_api.get(url + "?include_unavailable=1").json()["results"]
    }
    assert reasons == {"coffee-5": [], "lounge": ["not_eligible_tier"]}
    refused = redeem(rewards_api, member, "lounge")
    assert (refused.status_code, refused.json()["code"]) == (422, "not_eligible")
    tier_services.member_tier_assign(member=member, tier=gold, reason="Upgrade", actor=SYSTEM)
    assert [r["code"] for r in rewards_api.get(url).json()["results"]] == ["coffee-5", "lounge"]
    assert redeem(rewards_api, member, "lounge").status_code == 201
    patched = rewards_api.patch("/api/v1/rewards/lounge", {"tier_tags": []}, format="json")
    assert patched.status_code == 200 and patched.json()["tier_tags"] == []
    bad = rewards_api.patch("/api/v1/rewards/lounge", {"tier_tags": ["not a tag"]}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "tier_tags.0"


def test_member_rewards_in_sort_order_across_pages(rewards_api, member, make_reward, earn):
    earn(member, 1000)
    for code, order in (("a", 5), ("b", 1), ("c", 5), ("d", -2), ("e", 1)):
        make_reward(code, cost=10, sort_order=order)
    url = f"/api/v1/members/{member.pk}/rewards?limit=2"
    codes = []
    while url:
        page = rewards_api.get(url).json()
        codes += [r["code"] for r in page["results"]]
        url = page["next"]
    # Lower sort_order first, then by code (the member catalog's order, as in the admin).
    assert codes == ["d", "b", "e", "a", "c"]
