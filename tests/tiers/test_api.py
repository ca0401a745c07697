"""The tiers API: definitions (config scopes) and a member's tier (tiers scopes)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from members import services as member_services
from tests.tiers.conftest import SYSTEM
from tiers import services
from tiers.models import MemberTier, Tier, TierChange
from webhooks.models import Event

pytestmark = pytest.mark.django_db

GOLD = {
    "code": "gold",
    "name": "Gold",
    "rank": 30,
    "qualify_spend": "1000.00",
    "retain_spend": "800",
    "grace_months": 3,
    "earn_multiplier": "1.5",
    "discount_percent": "10",
    "reward_tags": ["gold-lounge"],
}


def error_fields(response) -> dict[str, str]:
    return {error["field"]: error["code"] for error in response.json().get("errors", [])}


# --- Tier definitions ---------------------------------------------------------------------


def test_tier_create_returns_201_and_the_first_tier_is_the_default(api):
    first = api.post("/api/v1/tiers", {"code": "bronze", "name": "Bronze", "rank": 10})
    assert first.status_code == 201, first.content
    assert first.json()["is_default"] is True

    response = api.post("/api/v1/tiers", GOLD)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["is_default"] is False
    assert body["qualify_spend"] == "1000.00"  # EUR: two decimals
    assert body["retain_spend"] == "800.00"
    assert body["earn_multiplier"] == "1.500"
    assert body["window_kind"] == "rolling_months" and body["window_months"] == 12
    assert body["reward_tags"] == ["gold-lounge"]
    assert Tier.objects.get(code="gold").history.count() == 1


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"colour": "gold"}, "colour", "unknown_field"),
        ({"rank": -1}, "rank", "min_value"),
        ({"qualify_spend": "0"}, "qualify_spend", "min_value"),
        ({"qualify_spend": "100.005"}, "qualify_spend", "invalid_tier"),
        ({"retain_spend": "1200"}, "retain_spend", "invalid_tier"),
        ({"retain_visits": 3}, "retain_visits", "invalid_tier"),
        ({"window_kind": "weekly"}, "window_kind", "invalid_choice"),
        ({"window_months": 0}, "window_months", "min_value"),
        ({"earn_multiplier": "-1"}, "earn_multiplier", "min_value"),
        ({"discount_percent": "101"}, "discount_percent", "max_value"),
        ({"reward_tags": ["not a tag"]}, "reward_tags.0", "invalid"),
        ({"code": "Not a slug!"}, "code", "invalid"),
    ],
)
def test_tier_create_rejects_bad_input_with_field_errors(api, changes, field, code):
    response = api.post("/api/v1/tiers", {**GOLD, **changes})
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert error_fields(response).get(field) == code, response.json()
    assert not Tier.objects.exists()


def test_tier_create_conflicts_on_code_and_rank(api):
    assert api.post("/api/v1/tiers", GOLD).status_code == 201
    same_code = api.post("/api/v1/tiers", {**GOLD, "rank": 40})
    assert same_code.status_code == 409
    assert same_code.json()["code"] == "tier_code_taken"
    same_rank = api.post("/api/v1/tiers", {**GOLD, "code": "platinum"})
    assert same_rank.status_code == 409
    assert same_rank.json()["code"] == "tier_rank_taken"
    assert Tier.objects.count() == 1


def test_tier_create_replays_with_the_same_idempotency_key(api):
    first = api.post("/api/v1/tiers", GOLD, HTTP_IDEMPOTENCY_KEY="tier-1")
    again = api.post("/api/v1/tiers", GOLD, HTTP_IDEMPOTENCY_KEY="tier-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = api.post("/api/v1/tiers", {**GOLD, "rank": 31}, HTTP_IDEMPOTENCY_KEY="tier-1")
    assert other.status_code == 422
    assert Tier.objects.count() == 1


def test_tier_list_is_paginated_by_rank_and_filtered(api, ladder):
    page = api.get("/api/v1/tiers?limit=2")
    assert page.status_code == 200
    assert [tier["code"] for tier in page.json()["results"]] == ["bronze", "silver"]
    rest = api.get(page.json()["next"])
    assert [tier["code"] for tier in rest.json()["results"]] == ["gold"]
    defaults = api.get("/api/v1/tiers?is_default=true")
    assert [tier["code"] for tier in defaults.json()["results"]] == ["bronze"]
    assert api.get("/api/v1/tiers?window_kind=weekly").status_code == 400


def test_tier_update_changes_only_what_is_sent(api, ladder):
    response = api.patch("/api/v1/tiers/gold", {"grace_months": 6, "retain_spend": None})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["grace_months"], body["retain_spend"], body["qualify_spend"]) == (6, None, "1000.00")
    assert body["earn_multiplier"] == "1.500"
    assert api.patch("/api/v1/tiers/gold", {"code": "au"}).status_code == 400


@pytest.mark.parametrize("field", ["qualify_points", "qualify_visits", "retain_points", "retain_visits"])
def test_tier_update_threshold_beyond_the_column_is_400(api, ladder, field):
    # 10**30 overflowed the column: a DataError 500 before the serializer had a ceiling.
    for value in (10**30, 2**63):
        response = api.patch("/api/v1/tiers/gold", {field: value}, format="json")
        assert response.status_code == 400, response.content
        assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [(field, "max_value")]
    assert getattr(Tier.objects.get(code="gold"), field) == getattr(ladder["gold"], field)


def test_tier_update_moves_the_default_and_refuses_to_drop_it(api, ladder):
    refused = api.patch("/api/v1/tiers/bronze", {"is_default": False})
    assert refused.status_code == 409
    assert refused.json()["code"] == "default_tier_required"

    moved = api.patch("/api/v1/tiers/silver", {"is_default": True})
    assert moved.status_code == 200
    assert list(Tier.objects.filter(is_default=True).values_list("code", flat=True)) == ["silver"]


def test_tier_delete_only_unused_tiers(api, ladder, member):
    assert api.delete("/api/v1/tiers/bronze").status_code == 409  # the default (and held)
    services.member_tier_assign(member=member, tier=ladder["gold"], reason="VIP", actor=SYSTEM)
    held = api.delete("/api/v1/tiers/gold")
    assert held.status_code == 409
    assert held.json()["code"] == "tier_in_use"
    assert api.delete("/api/v1/tiers/silver").status_code == 204
    assert set(Tier.objects.values_list("code", flat=True)) == {"bronze", "gold"}


def test_tier_api_of_another_program_answers_404(make_api, other_program, make_tier):
    make_tier("elsewhere", 1, target_program=other_program)
    api = make_api()
    for response in (
        api.get("/api/v1/tiers/elsewhere"),
        api.patch("/api/v1/tiers/elsewhere", {"name": "Mine"}),
        api.delete("/api/v1/tiers/elsewhere"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "tier_not_found"
    assert api.get("/api/v1/tiers").json()["results"] == []


def test_tier_api_needs_credentials_and_config_scopes(client, make_api, ladder):
    assert client.get("/api/v1/tiers").status_code == 401
    reader = make_api(["config:read"])
    assert reader.get("/api/v1/tiers").status_code == 200
    denied = reader.post("/api/v1/tiers", GOLD)
    assert denied.status_code == 403
    assert denied.json()["code"] == "insufficient_scope"
    assert reader.patch("/api/v1/tiers/gold", {"name": "G"}).status_code == 403
    assert make_api(["tiers:read", "tiers:write"]).get("/api/v1/tiers").status_code == 403


def test_tier_settings_read_and_change(api, make_api):
    assert api.get("/api/v1/tier-settings").json() == {"adjustments_qualify": False}
    changed = api.patch("/api/v1/tier-settings", {"adjustments_qualify": True})
    assert changed.status_code == 200
    assert api.get("/api/v1/tier-settings").json() == {"adjustments_qualify": True}
    assert api.patch("/api/v1/tier-settings", {"adjustments_qualify": "perhaps"}).status_code == 400
    assert (
        make_api(["config:read"]).patch("/api/v1/tier-settings", {"adjustments_qualify": False}).status_code
        == 403
    )


# --- A member's tier ----------------------------------------------------------------------


def test_member_tier_shows_progress(api, ladder, member, record):
    record(member, date.today(), spend="600.00", visits=2)

    response = api.get(f"/api/v1/members/{member.pk}/tier")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tier"]["code"] == "silver"
    assert body["tier"]["earn_multiplier"] == "1.250"
    assert body["grace_until"] is None and body["lifetime_tier"] is None
    keep = body["keep"]
    assert keep["tier"] == "silver" and keep["met"] is True
    assert keep["metrics"] == {"spend": "600.00", "points": 0, "visits": 2}
    assert keep["thresholds"] == {"mode": "any", "spend": "400.00", "points": None, "visits": 8}
    assert keep["window"]["kind"] == "rolling_months" and keep["window"]["months"] == 12
    upcoming = body["next"]
    assert upcoming["tier"] == "gold" and upcoming["met"] is False
    assert upcoming["remaining"] == {"spend": "400.00", "points": None, "visits": None}
    assert [change["reason"] for change in body["history"]] == ["upgrade"]
    assert body["history"][0]["from_tier"] == "bronze" and body["history"][0]["to_tier"] == "silver"


def test_member_tier_of_a_program_without_tiers_is_null(api, member):
    body = api.get(f"/api/v1/members/{member.pk}/tier").json()
    assert (body["tier"], body["keep"], body["next"], body["history"]) == (None, None, None, [])


def test_member_tier_assign_by_hand(api, ladder, member):
    locked_until = (date.today() + timedelta(days=90)).isoformat()
    response = api.post(
        f"/api/v1/members/{member.pk}/tier",
        {"tier": "gold", "reason": "Status match", "locked_until": locked_until},
        HTTP_IDEMPOTENCY_KEY="assign-1",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["tier"]["code"], body["locked_until"]) == ("gold", locked_until)
    change = TierChange.objects.get(member=member)
    assert (change.reason, change.note, change.actor_integration_id) == (
        "manual",
        "Status match",
        api.integration.pk,
    )
    event = Event.objects.get(type="tier.changed", member_id=member.pk)
    assert (event.data["reason"], event.data["to"], event.data["note"]) == ("manual", "gold", "Status match")
    replay = api.post(
        f"/api/v1/members/{member.pk}/tier",
        {"tier": "gold", "reason": "Status match", "locked_until": locked_until},
        HTTP_IDEMPOTENCY_KEY="assign-1",
    )
    assert replay["Idempotent-Replayed"] == "true"
    assert TierChange.objects.filter(member=member).count() == 1


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ({"tier": "diamond", "reason": "x"}, "tier", "unknown_tier"),
        ({"tier": "gold"}, "reason", "required"),
        ({"tier": "gold", "reason": "   "}, "reason", "blank"),
        (
            {"tier": "gold", "reason": "x", "locked_until": "2001-01-01"},
            "locked_until",
            "invalid_tier_assignment",
        ),
        ({"tier": "gold", "reason": "x", "locked_until": "soon"}, "locked_until", "invalid"),
        ({"tier": "gold", "reason": "x", "until": "2030-01-01"}, "until", "unknown_field"),
    ],
)
def test_member_tier_assign_rejects_bad_input(api, ladder, member, payload, field, code):
    response = api.post(f"/api/v1/members/{member.pk}/tier", payload)
    assert response.status_code == 400, response.content
    assert error_fields(response).get(field) == code, response.json()
    assert not TierChange.objects.exists()


def test_member_tier_assign_refuses_a_tier_of_another_program(api, ladder, member, other_program, make_tier):
    make_tier("diamond", 50, target_program=other_program)
    response = api.post(f"/api/v1/members/{member.pk}/tier", {"tier": "diamond", "reason": "x"})
    assert response.status_code == 400
    assert error_fields(response) == {"tier": "unknown_tier"}


def test_member_tier_assign_to_a_terminated_member_conflicts(api, ladder, member):
    member_services.member_status_action(member=member, action="terminate", reason="left", actor=SYSTEM)
    response = api.post(f"/api/v1/members/{member.pk}/tier", {"tier": "gold", "reason": "x"})
    assert response.status_code == 409
    assert response.json()["code"] == "member_terminated"
    assert MemberTier.objects.get(member=member).tier.code == "bronze"


def test_member_tier_of_another_programs_member_answers_404(make_api, ladder, make_member, other_program):
    stranger = make_member(target_program=other_program)
    api = make_api()
    for response in (
        api.get(f"/api/v1/members/{stranger.pk}/tier"),
        api.post(f"/api/v1/members/{stranger.pk}/tier", {"tier": "gold", "reason": "x"}),
        api.get(f"/api/v1/members/{stranger.pk}/tier/history"),
        api.get(f"/api/v1/members/{stranger.pk}/tier/activity"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "member_not_found"


def test_member_tier_api_needs_tiers_scopes(client, make_api, ladder, member):
    assert client.get(f"/api/v1/members/{member.pk}/tier").status_code == 401
    reader = make_api(["tiers:read"])
    assert reader.get(f"/api/v1/members/{member.pk}/tier").status_code == 200
    denied = reader.post(f"/api/v1/members/{member.pk}/tier", {"tier": "gold", "reason": "x"})
    assert denied.status_code == 403
    assert (
        make_api(["members:read", "config:read"]).get(f"/api/v1/members/{member.pk}/tier").status_code == 403
    )
    assert not TierChange.objects.exists()


def test_member_tier_history_is_paginated_and_filtered(api, ladder, member):
    for tier in ("silver", "gold", "bronze"):
        services.member_tier_assign(member=member, tier=ladder[tier], reason=f"to {tier}", actor=SYSTEM)
    page = api.get(f"/api/v1/members/{member.pk}/tier/history?limit=2")
    assert page.status_code == 200
    assert [change["to_tier"] for change in page.json()["results"]] == ["bronze", "gold"]
    assert [c["to_tier"] for c in api.get(page.json()["next"]).json()["results"]] == ["silver"]
    upgrades = api.get(f"/api/v1/members/{member.pk}/tier/history?reason=upgrade")
    assert upgrades.json()["results"] == []
    assert api.get(f"/api/v1/members/{member.pk}/tier/history?reason=promotion").status_code == 400


def test_member_tier_activity_lists_what_counts(api, ladder, member, record):
    record(member, date(2025, 1, 5), spend="20.00", visits=1, reference="A-1")
    record(member, date(2025, 1, 6), spend="-5.00", source="refund", reference="A-2")
    body = api.get(f"/api/v1/members/{member.pk}/tier/activity").json()
    assert [(row["reference"], row["spend"]) for row in body["results"]] == [
        ("A-2", "-5.00"),
        ("A-1", "20.00"),
    ]
    refunds = api.get(
        f"/api/v1/members/{member.pk}/tier/activity?source=refund&occurred_from=2025-01-06"
    ).json()
    assert [row["reference"] for row in refunds["results"]] == ["A-2"]
    assert api.get(f"/api/v1/members/{member.pk}/tier/activity?occurred_from=tomorrow").status_code == 400
