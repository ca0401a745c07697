"""The tiers admin: definitions through the services, the manual assignment action."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from membership_site.roles import AUDITOR, SUPPORT_AGENT
from tiers.models import MemberTier, Tier, TierChange

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    def _login(role: str | None = None):
        User = get_user_model()
        username = f"user-{(role or 'root').replace(' ', '-').lower()}"
        if role is None:
            user = User.objects.create_superuser(username, f"{username}@example.com", "pw-long-enough-1")
        else:
            user = User.objects.create_user(
                username, f"{username}@example.com", "pw-long-enough-1", is_staff=True
            )
            user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return user

    return _login


def tier_form(program, **changes):
    data = {
        "program": program.pk,
        "code": "gold",
        "name": "Gold",
        "rank": "30",
        "qualify_mode": "any",
        "qualify_spend": "1000",
        "qualify_points": "",
        "qualify_visits": "",
        "retain_spend": "800",
        "retain_points": "",
        "retain_visits": "",
        "window_kind": "rolling_months",
        "window_months": "12",
        "grace_months": "3",
        "downgrade_policy": "one_level",
        "earn_multiplier": "1.5",
        "discount_percent": "10",
        "perks": "",
        "rewards_eligible": "on",
        "reward_tags": "[]",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_tier_admin_creates_a_tier_through_the_service(client, staff, program):
    user = staff()
    response = client.post("/admin/tiers/tier/add/", tier_form(program))
    assert response.status_code == 302, response.content.decode()[:2000]
    tier = Tier.objects.get(code="gold")
    assert tier.is_default  # the program's first tier
    assert tier.history.first().history_user == user


def test_tier_admin_shows_rule_errors_on_the_form(client, staff, program):
    staff()
    response = client.post("/admin/tiers/tier/add/", tier_form(program, retain_spend="1200"))
    assert response.status_code == 200
    assert "between 0 and the qualification threshold" in response.content.decode()
    assert not Tier.objects.exists()


def test_tier_admin_moves_the_default(client, staff, program, ladder):
    staff()
    silver = ladder["silver"]
    data = tier_form(program, code=None, name="Silver", rank="20", qualify_spend="500", retain_spend="400")
    data["is_default"] = "on"
    response = client.post(f"/admin/tiers/tier/{silver.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(Tier.objects.filter(is_default=True).values_list("code", flat=True)) == ["silver"]
    refused = client.post(f"/admin/tiers/tier/{silver.pk}/change/", {**data, "is_default": ""})
    assert refused.status_code == 200
    assert Tier.objects.get(pk=silver.pk).is_default


def _assign(client, state, tier, **extra):
    return client.post(
        "/admin/tiers/membertier/",
        {
            "action": "assign_tier",
            "_selected_action": [state.pk],
            "tier": tier.pk,
            "reason": "Status match",
            "locked_until": "",
            "apply": "1",
            **extra,
        },
    )


@pytest.mark.parametrize("role", [None, SUPPORT_AGENT])
def test_member_tier_admin_assigns_a_tier(client, staff, ladder, member, role):
    user = staff(role)
    state = MemberTier.objects.get(member=member)
    locked_until = (date.today() + timedelta(days=30)).isoformat()
    response = _assign(client, state, ladder["gold"], locked_until=locked_until, lifetime="on")
    assert response.status_code == 302
    state.refresh_from_db()
    assert (state.tier.code, state.locked_until.isoformat(), state.lifetime_tier.code) == (
        "gold",
        locked_until,
        "gold",
    )
    change = TierChange.objects.get(member=member)
    assert (change.reason, change.note, change.actor_user) == ("manual", "Status match", user)


def test_member_tier_admin_reports_a_tier_of_another_program(
    client, staff, ladder, member, other_program, make_tier
):
    staff()
    foreign = make_tier("diamond", 5, target_program=other_program)
    response = _assign(client, MemberTier.objects.get(member=member), foreign)
    assert response.status_code == 302
    assert MemberTier.objects.get(member=member).tier.code == "bronze"
    assert not TierChange.objects.exists()


def test_auditors_cannot_assign_tiers(client, staff, ladder, member):
    staff(AUDITOR)
    assert client.get("/admin/tiers/membertier/").status_code == 200
    _assign(client, MemberTier.objects.get(member=member), ladder["gold"])
    assert MemberTier.objects.get(member=member).tier.code == "bronze"


@pytest.mark.parametrize(
    "page", ["tier", "tiersettings", "membertier", "tierchange", "tieractivity", "tierevaluation"]
)
def test_tiers_admin_pages_render(client, staff, ladder, member, record, page):
    staff()
    record(member, date.today(), spend="600.00")
    assert client.get(f"/admin/tiers/{page}/").status_code == 200
    state = MemberTier.objects.get(member=member)
    assert client.get(f"/admin/tiers/membertier/{state.pk}/change/").status_code == 200
