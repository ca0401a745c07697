"""/api/v1/earning-rules, /api/v1/campaigns and /api/v1/earning-settings: CRUD through the
services, history, and every error path."""

from __future__ import annotations

from decimal import Decimal

import pytest

from points.models import Campaign, EarningRule

from .conftest import line

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(make_api):
    return make_api(["config:read", "config:write"])


def test_earning_rule_create_list_get_update_delete(api, location):
    response = api.post(
        "/api/v1/earning-rules",
        {
            "code": "base",
            "name": "1 point per euro",
            "value": "1",
            "locations": ["paris-01"],
            "weekdays": [6, 7, 6],
            "hours_from": "08:00",
            "hours_to": "20:00",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["currency"], data["effect"], data["scope"], data["stacking"]) == (
        "PTS",
        "points_per_unit",
        "per_line",
        "add",
    )
    assert data["weekdays"] == [6, 7] and data["value"] == "1.0000" and data["points_issued"] == 0
    assert api.get("/api/v1/earning-rules").json()["results"][0]["code"] == "base"
    assert api.get("/api/v1/earning-rules/base").json()["hours_to"] == "20:00:00"
    patched = api.patch("/api/v1/earning-rules/base", {"is_active": False, "priority": 5}, format="json")
    assert patched.status_code == 200
    assert (patched.json()["is_active"], patched.json()["priority"], patched.json()["name"]) == (
        False,
        5,
        "1 point per euro",
    )
    rule = EarningRule.objects.get()
    assert rule.history.count() == 2
    assert rule.history.first().history_integration_id == api.integration.pk
    assert api.delete("/api/v1/earning-rules/base").status_code == 204
    assert not EarningRule.objects.exists()


def test_earning_rule_list_filters_and_pagination(api, make_rule, make_currency):
    stamps = make_currency("STAMPS")
    make_rule("a", "1")
    make_rule("b", "2", effect="fixed_bonus", is_active=False)
    make_rule("c", "1", currency=stamps)
    codes = lambda params: [r["code"] for r in api.get("/api/v1/earning-rules", params).json()["results"]]  # noqa: E731
    assert codes({}) == ["a", "b", "c"]
    assert codes({"is_active": "false"}) == ["b"]
    assert codes({"effect": "fixed_bonus"}) == ["b"]
    assert codes({"currency": "stamps"}) == ["c"]
    page = api.get("/api/v1/earning-rules", {"limit": 2}).json()
    assert len(page["results"]) == 2 and page["next"]


def test_campaign_crud_with_budget_and_points_issued(api, member, base_rule, buy):
    response = api.post(
        "/api/v1/campaigns",
        {
            "code": "coffee-x2",
            "name": "Double points on coffee",
            "effect": "multiplier",
            "value": "2",
            "stacking": "multiply",
            "categories": ["coffee"],
            "budget_points": 1000,
            "starts_on": "2020-01-01",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["budget_used"] == 0
    buy(member, [line("A", "10.00", category="coffee")])
    data = api.get("/api/v1/campaigns/coffee-x2").json()
    assert (data["points_issued"], data["budget_used"]) == (10, 10)
    assert api.get("/api/v1/campaigns", {"effect": "multiplier"}).json()["results"][0]["code"] == "coffee-x2"
    lowered = api.patch("/api/v1/campaigns/coffee-x2", {"budget_points": 5}, format="json")
    assert lowered.status_code == 400
    assert (lowered.json()["code"], lowered.json()["budget_used"]) == ("invalid_rule", 10)
    in_use = api.delete("/api/v1/campaigns/coffee-x2")
    assert in_use.status_code == 409
    assert in_use.json()["code"] == "rule_in_use"
    assert api.patch("/api/v1/campaigns/coffee-x2", {"is_active": False}, format="json").status_code == 200
    assert Campaign.objects.get().history.count() == 2


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "code", "required"),
        ({"value": "0"}, "value", "min_value"),
        ({"value": "1.00001"}, "value", "max_decimal_places"),
        ({"effect": "discount"}, "effect", "invalid_choice"),
        ({"stacking": "multiply"}, "stacking", "invalid_rule"),  # a rate does not multiply
        ({"stacking": "best"}, "stacking", "invalid_rule"),  # base rates override by priority
        ({"effect": "fixed_bonus", "value": "1.5"}, "value", "invalid_rule"),
        ({"effect": "multiplier", "value": "101"}, "value", "invalid_rule"),
        ({"starts_on": "2026-03-02", "ends_on": "2026-03-01"}, "ends_on", "invalid_rule"),
        ({"hours_from": "10:00", "hours_to": "10:00"}, "hours_to", "invalid_rule"),
        ({"weekdays": [8]}, "weekdays.0", "max_value"),
        ({"locations": ["nowhere"]}, "locations", "unknown_location"),
        ({"tiers": ["gold"]}, "tiers", "invalid_rule"),
        ({"labels": ["vip"]}, "labels", "invalid_rule"),
        ({"currency": "NOPE"}, "currency", "unknown_currency"),
        ({"min_spend": "10.005"}, "min_spend", "invalid_rule"),
        ({"max_points_per_purchase": 0}, "max_points_per_purchase", "min_value"),
        ({"colour": "red"}, "colour", "unknown_field"),
        ({"code": "Not a slug!"}, "code", "invalid"),
    ],
)
def test_earning_rule_bad_input_is_400_and_changes_nothing(api, body, field, code):
    payload = {"code": "r1", "name": "Rule", "value": "1", **body}
    if body == {}:
        payload.pop("code")
    response = api.post("/api/v1/earning-rules", payload, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert any(e["field"] == field and e["code"] == code for e in response.json()["errors"]), response.json()
    assert not EarningRule.objects.exists()


def test_campaign_best_only_bonus_is_allowed_but_multiply_needs_a_multiplier(api):
    ok = api.post(
        "/api/v1/campaigns",
        {"code": "b", "name": "B", "effect": "fixed_bonus", "value": "5", "stacking": "best"},
        format="json",
    )
    assert ok.status_code == 201
    bad = api.post(
        "/api/v1/campaigns",
        {"code": "m", "name": "M", "effect": "points_per_unit", "value": "5", "stacking": "multiply"},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "stacking"


def test_earning_rule_code_taken_is_409(api, make_rule):
    make_rule("base", "1")
    response = api.post(
        "/api/v1/earning-rules", {"code": "base", "name": "Again", "value": "2"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "rule_code_taken"
    # Rules and campaigns have their own codes.
    assert (
        api.post("/api/v1/campaigns", {"code": "base", "name": "C", "value": "2"}, format="json").status_code
        == 201
    )


def test_earning_rule_patch_errors(api, make_rule):
    make_rule("base", "1")
    assert api.patch("/api/v1/earning-rules/nope", {"name": "X"}, format="json").status_code == 404
    bad = api.patch("/api/v1/earning-rules/base", {"effect": "fixed_bonus", "value": "0.5"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_rule"
    unknown = api.patch("/api/v1/earning-rules/base", {"code": "other"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["code"] == "unknown_field"
    assert EarningRule.objects.get().value == Decimal("1")


def test_earning_rule_idempotency_key_replays(api):
    body = {"code": "base", "name": "Base", "value": "1"}
    first = api.post("/api/v1/earning-rules", body, format="json", HTTP_IDEMPOTENCY_KEY="rule-1")
    again = api.post("/api/v1/earning-rules", body, format="json", HTTP_IDEMPOTENCY_KEY="rule-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert EarningRule.objects.count() == 1


def test_earning_rules_and_campaigns_access(make_api, make_rule, make_campaign, other_program, client):
    make_rule("base", "1")
    make_campaign("promo", "2")
    for url in ("/api/v1/earning-rules", "/api/v1/campaigns", "/api/v1/earning-settings"):
        assert client.get(url).status_code == 401
        assert make_api(["points:read", "points:write"]).get(url).status_code == 403
    reader = make_api(["config:read"])
    assert reader.get("/api/v1/earning-rules/base").status_code == 200
    assert reader.post("/api/v1/earning-rules", {}, format="json").status_code == 403
    assert reader.patch("/api/v1/campaigns/promo", {}, format="json").status_code == 403
    assert reader.delete("/api/v1/campaigns/promo").status_code == 403
    stranger = make_api(["config:read", "config:write"], target_program=other_program)
    assert stranger.get("/api/v1/earning-rules/base").json()["code"] == "earning_rule_not_found"
    assert stranger.get("/api/v1/campaigns/promo").status_code == 404
    assert stranger.delete("/api/v1/campaigns/promo").status_code == 404
    assert stranger.get("/api/v1/campaigns").json()["results"] == []


# --- Settings ------------------------------------------------------------------------------


def test_earning_settings_get_defaults_and_patch(api, make_currency):
    assert api.get("/api/v1/earning-settings").json() == {
        "return_window_days": 0,
        "bonus_currency": None,
        "enrolment_bonus": 0,
        "birthday_bonus": 0,
        "birthday_mode": "day",
        "referral_referrer_bonus": 0,
        "referral_referee_bonus": 0,
        "profile_completion_bonus": 0,
        "profile_completion_fields": [],
    }
    make_currency("STAMPS")
    response = api.patch(
        "/api/v1/earning-settings",
        {
            "return_window_days": 30,
            "bonus_currency": "stamps",
            "birthday_bonus": 100,
            "birthday_mode": "month",
            "profile_completion_bonus": 20,
            "profile_completion_fields": ["phone", "birth_date"],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["bonus_currency"] == "STAMPS"
    assert api.patch("/api/v1/earning-settings", {"enrolment_bonus": 5}, format="json").json()[
        "birthday_mode"
    ] == ("month")


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"return_window_days": 366}, "return_window_days", "max_value"),
        ({"enrolment_bonus": -1}, "enrolment_bonus", "min_value"),
        ({"bonus_currency": "NOPE"}, "bonus_currency", "unknown_currency"),
        ({"profile_completion_fields": ["password"]}, "profile_completion_fields.0", "invalid_choice"),
        ({"profile_completion_bonus": 10}, "profile_completion_fields", "invalid_earning_settings"),
        ({"birthday_mode": "week"}, "birthday_mode", "invalid_choice"),
        ({"colour": "red"}, "colour", "unknown_field"),
    ],
)
def test_earning_settings_bad_input_is_400(api, body, field, code):
    response = api.patch("/api/v1/earning-settings", body, format="json")
    assert response.status_code == 400, response.content
    assert any(e["field"] == field and e["code"] == code for e in response.json()["errors"]), response.json()
    assert api.get("/api/v1/earning-settings").json()["enrolment_bonus"] == 0


def test_earning_settings_history(api):
    from points.models import EarningSettings

    api.patch("/api/v1/earning-settings", {"enrolment_bonus": 5}, format="json")
    api.patch("/api/v1/earning-settings", {"enrolment_bonus": 6}, format="json")
    history = EarningSettings.objects.get().history.order_by("history_id")
    assert [h.enrolment_bonus for h in history] == [0, 5, 6]
    assert history.last().history_integration_id == api.integration.pk
