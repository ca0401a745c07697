"""What the tiers app adds to members: the default tier on creation and the till lookup."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from members import hooks as member_hooks
from members.selectors import member_profiles
from tests.tiers.conftest import SYSTEM
from tiers import services
from tiers.models import MemberTier, TierChange

pytestmark = pytest.mark.django_db


def test_new_members_get_the_default_tier(ladder, make_member):
    member = make_member()
    state = MemberTier.objects.get(member=member)
    assert (state.tier.code, state.since, state.grace_until) == ("bronze", member.joined_at, None)


def test_members_created_hook_assigns_a_whole_chunk_in_two_queries(make_member, make_tier):
    members = [make_member() for _ in range(5)]  # created before the program had tiers
    make_tier("bronze", 1)
    assert services.members_assign_default in member_hooks.members_created._receivers
    with CaptureQueriesContext(connection) as queries:
        # The tiers receiver alone: other apps (earning bonuses) register on the hook too.
        services.members_assign_default(members=members, actor=SYSTEM)
    # The default tier, then one insert; run inside the creating transaction (savepoints aside).
    assert len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]) == 2
    assert MemberTier.objects.filter(tier__code="bronze").count() == 5


def test_till_lookup_shows_the_tier(api, ladder, member, record):
    record(member, date.today(), spend="1000.00")
    response = api.get("/api/v1/members/lookup", {"email": member.email})
    assert response.status_code == 200
    tier = response.json()["tier"]
    assert (tier["code"], tier["name"], tier["earn_multiplier"], tier["discount_percent"]) == (
        "gold",
        "Gold",
        "1.500",
        "10.00",
    )
    assert tier["grace_until"] is None


def test_profile_section_uses_a_fixed_number_of_queries(ladder, make_member, make_tier, other_program):
    one = [make_member()]
    many = [make_member() for _ in range(6)]
    make_tier("basic", 1, target_program=other_program)
    many.append(make_member(target_program=other_program))
    MemberTier.objects.filter(member=many[0]).delete()  # falls back to the default tier
    with CaptureQueriesContext(connection) as single:
        member_profiles(one)
    with CaptureQueriesContext(connection) as several:
        profiles = member_profiles(many)
    assert len(several.captured_queries) <= len(single.captured_queries) + 2
    assert profiles[many[0].pk]["tier"]["code"] == "bronze"
    assert profiles[many[-1].pk]["tier"]["code"] == "basic"


def test_profile_section_is_null_without_tiers(member):
    assert member_profiles([member])[member.pk]["tier"] is None


def test_gdpr_export_includes_the_tier_history_and_activity(api, ladder, member, record):
    record(member, date.today(), spend="600.00", reference="R-1")
    services.member_tier_assign(member=member, tier=ladder["gold"], reason="Status match", actor=SYSTEM)
    data = api.get(f"/api/v1/members/{member.pk}/export").json()["tiers"]
    assert data["tier"] == "gold"
    assert [(c["reason"], c["to_tier__code"]) for c in data["history"]] == [
        ("upgrade", "silver"),
        ("manual", "gold"),
    ]
    assert [(a["reference"], a["spend"]) for a in data["activity"]] == [("R-1", "600.00")]


def test_gdpr_erasure_blanks_staff_notes_on_tier_changes(api, ladder, member):
    services.member_tier_assign(member=member, tier=ladder["gold"], reason="Ana's complaint", actor=SYSTEM)
    response = api.post(f"/api/v1/members/{member.pk}/erase", {"reason": "Asked by the member"})
    assert response.status_code == 200, response.content
    change = TierChange.objects.get(member=member)
    assert (change.note, change.to_tier.code) == ("", "gold")
