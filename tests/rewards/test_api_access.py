"""Every rewards endpoint: 401 without credentials, 403 without its scope, 404 for another
program's objects; plus the remaining input errors and replays."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from points.models import Account
from rewards import codes, services
from rewards.models import Voucher

from .conftest import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(member, make_reward, earn):
    earn(member, 5000)
    reward = make_reward()
    result = services.reward_redeem(member=member, reward=reward, actor=SYSTEM)
    voucher = Voucher.objects.get(redemption=result.redemption)
    return {
        "member": member.pk,
        "redemption": result.redemption.pk,
        "voucher": codes.format_code(voucher.code),
    }


# (method, path, scope that is needed, body)
ENDPOINTS = [
    ("get", "/api/v1/rewards", "rewards:read", None),
    ("post", "/api/v1/rewards", "config:write", {}),
    ("get", "/api/v1/rewards/coffee-5", "rewards:read", None),
    ("patch", "/api/v1/rewards/coffee-5", "config:write", {}),
    ("get", "/api/v1/members/{member}/rewards", "rewards:read", None),
    ("post", "/api/v1/members/{member}/rewards/coffee-5/redeem", "rewards:write", {}),
    ("get", "/api/v1/members/{member}/redemptions", "rewards:read", None),
    ("get", "/api/v1/members/{member}/vouchers", "rewards:read", None),
    ("get", "/api/v1/redemptions/{redemption}", "rewards:read", None),
    ("post", "/api/v1/redemptions/{redemption}/cancel", "rewards:write", {"reason": "x"}),
    ("get", "/api/v1/vouchers/{voucher}", "rewards:read", None),
    ("post", "/api/v1/vouchers/{voucher}/use", "rewards:write", {"reference": "R"}),
    ("post", "/api/v1/vouchers/{voucher}/cancel", "rewards:write", {"reason": "x"}),
    ("post", "/api/v1/members/{member}/points/pay", "points:write", {"bill_amount": "10", "points": 100}),
    ("post", "/api/v1/members/{member}/pricing", "rewards:read", {"lines": [{"unit_price": "1"}]}),
]


@pytest.mark.parametrize(("method", "path", "scope", "body"), ENDPOINTS)
def test_rewards_endpoints_need_credentials_scope_and_own_program(
    method, path, scope, body, world, make_api, other_program
):
    url = path.format(**world)

    def call(client):
        return getattr(client, method)(url, body, format="json") if body is not None else client.get(url)

    anonymous = call(APIClient())
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    others = [
        s
        for s in ("rewards:read", "rewards:write", "config:read", "config:write", "points:read")
        if s != scope
    ]
    forbidden = call(make_api(others))
    assert forbidden.status_code == 403, forbidden.content
    if "{" in path:  # an object of the program: another program's integration cannot see it
        response = call(make_api(target_program=other_program))
        assert response.status_code == 404, response.content
    assert Account.objects.get(member_id=world["member"]).available == 4500  # nothing changed


def test_reward_patch_errors(rewards_api, make_reward):
    make_reward()
    unknown = rewards_api.patch("/api/v1/rewards/coffee-5", {"eligible_tiers": ["platinum"]}, format="json")
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "eligible_tiers"
    bad = rewards_api.patch("/api/v1/rewards/coffee-5", {"limit_per_period": 2}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "limit_period"
    assert rewards_api.patch("/api/v1/rewards/nope", {"stock": 1}, format="json").status_code == 404


@pytest.mark.parametrize("cost", [{"points": 1}, {"currency": "PTS"}, {}])
def test_reward_patch_cost_missing_a_field_is_400(rewards_api, make_reward, cost):
    reward = make_reward()
    response = rewards_api.patch("/api/v1/rewards/coffee-5", {"costs": [cost]}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    missing = sorted({"currency", "points"} - cost.keys())
    assert body["errors"] == [
        {"field": f"costs.0.{name}", "code": "required", "message": "This field is required."}
        for name in missing
    ]
    assert [(c.currency.code, c.points) for c in reward.costs.all()] == [("PTS", 500)]  # nothing changed


def test_voucher_cancel_needs_a_reason_and_pay_replays_idempotency_key(rewards_api, world, pts):
    from decimal import Decimal

    from rewards import payments

    response = rewards_api.post(f"/api/v1/vouchers/{world['voucher']}/cancel", {}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "reason"
    payments.pay_rule_save(currency=pts, step=10, max_share_percent=Decimal("100"), actor=SYSTEM)
    url = f"/api/v1/members/{world['member']}/points/pay"
    first = rewards_api.post(
        url, {"bill_amount": "10", "points": 100}, format="json", HTTP_IDEMPOTENCY_KEY="p1"
    )
    again = rewards_api.post(
        url, {"bill_amount": "10", "points": 100}, format="json", HTTP_IDEMPOTENCY_KEY="p1"
    )
    assert first.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert Account.objects.get(member_id=world["member"]).available == 4400
