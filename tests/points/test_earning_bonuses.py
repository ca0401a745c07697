"""Event bonuses: enrolment (once, set-based for imported lists), profile completion (once,
through the members_updated hook), birthdays (day or month, 29 February, re-runs, the
command and the task, on the program-local day) and referrals (code, recording, both
bonuses on the first purchase); none of them qualifies for tiers or takes the tier multiplier."""

from __future__ import annotations

from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from members import bulk
from members import services as member_services
from points import services, tasks
from points.earning import bonuses
from points.models import Account, BonusAward, Referral
from webhooks.models import Event

from .conftest import SYSTEM, assert_ledger_consistent, line

pytestmark = pytest.mark.django_db


def available(member) -> int:
    account = Account.objects.filter(member=member, currency__code="PTS").first()
    return account.available if account else 0


# --- Enrolment -----------------------------------------------------------------------------


def test_enrolment_bonus_once_per_new_member(earning_settings, make_member):
    earning_settings(enrolment_bonus=100)
    member = make_member()
    assert available(member) == 100
    award = BonusAward.objects.get(member=member)
    assert (award.kind, award.points, award.transaction.description) == ("enrolment", 100, "Welcome bonus")
    event = Event.objects.get(type="points.earned", member_id=member.pk)
    assert event.data["bonus"] == {"kind": "enrolment", "key": ""}
    bonuses.members_created_bonuses(members=[member], actor=SYSTEM)  # a hook run twice gives nothing
    assert available(member) == 100
    assert_ledger_consistent()


def test_bonuses_in_an_inactive_currency_are_skipped_one_member_or_many(
    program, earning_settings, make_member, make_currency
):
    stamps = make_currency("STAMPS")
    earning_settings(
        enrolment_bonus=10,
        profile_completion_bonus=5,
        profile_completion_fields=["phone"],
        bonus_currency=stamps,
    )
    services.currency_update(currency=stamps, is_active=False, actor=SYSTEM)
    # The enrolment and the updates go through; no bonus is given, alone or in bulk.
    one = make_member()
    many = [make_member() for _ in range(3)]
    bonuses.members_created_bonuses(members=many, actor=SYSTEM)
    member_services.member_update(member=one, actor=SYSTEM, phone="+33612345678")
    bonuses.members_updated_bonuses(updates=[(m, ["phone"]) for m in many], actor=SYSTEM)
    assert not BonusAward.objects.exists()
    assert not Account.objects.filter(currency=stamps).exclude(available=0).exists()


def test_enrolment_bonus_off_by_default(make_member):
    member = make_member()
    assert available(member) == 0 and not BonusAward.objects.exists()


def test_enrolment_bonus_for_an_imported_list_in_a_fixed_number_of_queries(
    program, earning_settings, make_member
):
    def new_members(count):
        return [make_member() for _ in range(count)]

    few, many = new_members(2), new_members(12)
    earning_settings(enrolment_bonus=50)
    counts = []
    for members in (few, many):
        with CaptureQueriesContext(connection) as queries:
            bonuses.members_created_bonuses(members=members, actor=SYSTEM)
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert all(available(m) == 50 for m in [*few, *many])
    assert_ledger_consistent()


def test_enrolment_bonus_through_the_bulk_member_import(program, earning_settings):
    earning_settings(enrolment_bonus=25)
    rows = [bulk.MemberInput(profile={"email": f"imported{n}@example.com"}) for n in range(5)]
    results = bulk.members_upsert_many(
        program=program, rows=rows, match="email", action="create", actor=SYSTEM
    )
    assert [r.outcome for r in results] == ["created"] * 5
    assert BonusAward.objects.filter(kind="enrolment").count() == 5
    assert all(available(r.member) == 25 for r in results)


# --- Profile completion --------------------------------------------------------------------


def test_profile_completion_bonus_once_when_the_last_field_is_filled(earning_settings, make_member):
    earning_settings(profile_completion_bonus=50, profile_completion_fields=["phone", "birth_date"])
    member = make_member(phone="")
    member_services.member_update(member=member, phone="+33611111111", actor=SYSTEM)
    assert available(member) == 0
    member_services.member_update(member=member, birth_date=date(1990, 5, 4), actor=SYSTEM)
    assert available(member) == 50
    member_services.member_update(member=member, birth_date=date(1990, 5, 5), actor=SYSTEM)
    member_services.member_update(member=member, phone="", actor=SYSTEM)
    member_services.member_update(member=member, phone="+33622222222", actor=SYSTEM)
    assert available(member) == 50
    assert BonusAward.objects.get(member=member).kind == "profile"


def test_profile_completion_bonus_at_creation_when_already_complete(earning_settings, make_member):
    earning_settings(profile_completion_bonus=30, profile_completion_fields=["phone"])
    complete = make_member(phone="+33633333333")
    incomplete = make_member()
    assert (available(complete), available(incomplete)) == (30, 0)


def test_profile_completion_bonus_for_a_bulk_update_in_a_fixed_number_of_queries(
    program, earning_settings, make_member
):
    """A bulk update (import) gives the bonus as member_update does, with the settings read
    once and a number of queries that does not grow with the members (it ran one settings
    query and one earn per member)."""
    earning_settings(profile_completion_bonus=40, profile_completion_fields=["phone", "city"])
    few = [make_member(city="Paris") for _ in range(5)]
    many = [make_member(city="Paris") for _ in range(50)]
    already = make_member(city="Paris", phone="+33600000001")  # complete: bonus given at creation
    incomplete = make_member()  # no city: a new phone completes nothing
    assert available(already) == 40

    def update(members, offset):
        rows = [
            bulk.MemberInput(number=member.number, profile={"phone": f"+336{offset + n:08d}"})
            for n, member in enumerate([*members, already, incomplete])
        ]
        with CaptureQueriesContext(connection) as queries:
            results = bulk.members_upsert_many(
                program=program, rows=rows, match="number", action="update", actor=SYSTEM
            )
        assert {result.outcome for result in results} == {"updated"}
        return queries

    counts = [update(few, 1000), update(many, 2000)]
    settings_reads = [sum("points_earningsettings" in q["sql"] for q in queries) for queries in counts]
    assert settings_reads == [1, 1]
    assert len(counts[0]) == len(counts[1]), [len(queries) for queries in counts]
    assert all(available(member) == 40 for member in [*few, *many, already])
    assert available(incomplete) == 0
    assert BonusAward.objects.filter(kind="profile").count() == 56
    assert Event.objects.filter(type="points.earned", data__bonus__kind="profile").count() == 56
    assert_ledger_consistent()


def test_profile_completion_bonus_bulk_and_single_updates_give_the_same(
    program, earning_settings, make_member
):
    """The list receiver gives what the single one gives: only when a configured field
    changed and none is empty, once, and nothing when the bonus is off."""
    earning_settings(profile_completion_bonus=20, profile_completion_fields=["phone"])
    bulk_done, single_done, untouched = (make_member() for _ in range(3))
    bulk_done.phone, single_done.phone = "+33611111111", "+33622222222"
    bonuses.members_updated_bonuses(updates=[(bulk_done, ["phone"]), (untouched, ["city"])], actor=SYSTEM)
    bonuses.member_updated_bonus(member=single_done, changed=["phone"], actor=SYSTEM)
    bonuses.members_updated_bonuses(updates=[(bulk_done, ["phone"]), (single_done, ["phone"])], actor=SYSTEM)
    assert [available(m) for m in (bulk_done, single_done, untouched)] == [20, 20, 0]
    earning_settings(profile_completion_bonus=0)
    untouched.phone = "+33633333333"
    with CaptureQueriesContext(connection) as queries:
        bonuses.members_updated_bonuses(updates=[(untouched, ["phone"])], actor=SYSTEM)
    assert available(untouched) == 0 and len(queries) == 1
    assert_ledger_consistent()


# --- Birthdays -----------------------------------------------------------------------------


@pytest.fixture
def birthdays(earning_settings, make_member):
    earning_settings(birthday_bonus=200)
    return {
        "march14": make_member(birth_date=date(1990, 3, 14)),
        "march2": make_member(birth_date=date(1985, 3, 2)),
        "leapling": make_member(birth_date=date(2000, 2, 29)),
        "april": make_member(birth_date=date(1990, 4, 14)),
        "unknown": make_member(),
    }


def given(day: date, program) -> set[int]:
    bonuses.birthday_bonuses(program=program, on=day, actor=SYSTEM)
    return set(
        BonusAward.objects.filter(kind="birthday", key=str(day.year)).values_list("member_id", flat=True)
    )


def test_birthday_bonus_on_the_day_once_per_year(program, birthdays):
    assert given(date(2025, 3, 14), program) == {birthdays["march14"].pk}
    assert given(date(2025, 3, 14), program) == {birthdays["march14"].pk}  # re-run: nothing twice
    assert available(birthdays["march14"]) == 200
    assert given(date(2026, 3, 14), program) == {birthdays["march14"].pk}  # next year again
    assert available(birthdays["march14"]) == 400
    assert_ledger_consistent()


def test_birthday_on_29_february_falls_on_28_february_in_other_years(program, birthdays):
    assert given(date(2027, 2, 28), program) == {birthdays["leapling"].pk}
    assert given(date(2028, 2, 28), program) == set()  # a leap year: wait for the 29th
    assert given(date(2028, 2, 29), program) == {birthdays["leapling"].pk}


def test_birthday_bonus_in_the_birthday_month(program, birthdays, earning_settings):
    earning_settings(birthday_mode="month")
    assert given(date(2025, 3, 20), program) == {birthdays["march14"].pk, birthdays["march2"].pk}
    assert given(date(2025, 3, 31), program) == {birthdays["march14"].pk, birthdays["march2"].pk}
    assert available(birthdays["march2"]) == 200


def test_birthday_bonus_only_for_active_members(program, birthdays):
    member_services.member_change_status(
        member=birthdays["march14"], to_status="suspended", reason="Check", actor=SYSTEM
    )
    assert given(date(2025, 3, 14), program) == set()


def test_birthday_command_with_date_program_and_summary(program, birthdays):
    out = StringIO()
    call_command("earning_birthday_bonuses", "--date", "2025-03-14", "--no-progress", stdout=out)
    assert "acme 2025-03-14: 1 bonuses, 200 points." in out.getvalue()
    assert "1 birthday bonuses given, 200 points in all." in out.getvalue()
    again = StringIO()
    call_command("earning_birthday_bonuses", "--date", "2025-03-14", "--program", "acme", stdout=again)
    assert "0 birthday bonuses given" in again.getvalue()
    with pytest.raises(CommandError):
        call_command("earning_birthday_bonuses", "--program", "nope")
    with pytest.raises(CommandError):
        call_command("earning_birthday_bonuses", "--date", "2999-01-01")


def test_birthday_task_gives_today_s_bonuses(program, earning_settings, make_member):
    from django.utils import timezone

    earning_settings(birthday_bonus=10)
    today = timezone.now().astimezone(program.tz).date()
    member = make_member(
        birth_date=today.replace(year=1990) if (today.month, today.day) != (2, 29) else today
    )
    assert tasks.points_birthday_bonuses() == 1
    assert tasks.points_birthday_bonuses() == 0
    assert available(member) == 10


def test_birthday_task_counts_the_day_in_the_program_s_time_zone(
    program, earning_settings, make_member, monkeypatch
):
    from datetime import UTC, datetime

    from django.utils import timezone

    earning_settings(birthday_bonus=10)
    born_14th, born_13th = (
        make_member(birth_date=date(1990, 3, 14)),
        make_member(birth_date=date(1990, 3, 13)),
    )
    # 23:30 UTC on 13 March is 00:30 on 14 March in Paris: the 14th's birthdays are due.
    monkeypatch.setattr(timezone, "now", lambda: datetime(2025, 3, 13, 23, 30, tzinfo=UTC))
    assert tasks.points_birthday_bonuses() == 1
    assert (available(born_14th), available(born_13th)) == (10, 0)
    assert BonusAward.objects.get(kind="birthday").key == "2025"


# --- Referrals -----------------------------------------------------------------------------


@pytest.fixture
def api(make_api):
    return make_api(["points:read", "points:write"])


def test_referral_both_bonuses_after_the_referee_s_first_purchase(
    api, earning_settings, make_member, base_rule, buy
):
    earning_settings(referral_referrer_bonus=300, referral_referee_bonus=150)
    referrer, referee = make_member(), make_member()
    code = api.get(f"/api/v1/members/{referrer.pk}/referral").json()["code"]
    assert len(code) == 8
    assert api.get(f"/api/v1/members/{referrer.pk}/referral").json()["code"] == code  # stable
    response = api.post(f"/api/v1/members/{referee.pk}/referral", {"code": code.lower()}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["referred_by"] == {
        "member_id": referrer.pk,
        "number": referrer.number,
        "code": code,
        "status": "pending",
    }
    assert (available(referrer), available(referee)) == (0, 0)
    buy(referee, [line("A", "10.00")])
    assert (available(referrer), available(referee)) == (300, 160)
    assert Referral.objects.get().status == "completed"
    assert api.get(f"/api/v1/members/{referrer.pk}/referral").json()["referrals"] == {
        "pending": 0,
        "completed": 1,
    }
    buy(referee, [line("B", "10.00")])
    assert (available(referrer), available(referee)) == (300, 170)
    assert_ledger_consistent()


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("unknown", 400, "unknown_referral_code"),
        ("self", 400, "self_referral"),
        ("twice", 409, "already_referred"),
        ("late", 409, "referral_too_late"),
        ("terminated", 409, "member_terminated"),
        ("blank", 400, "required"),
    ],
)
def test_referral_api_errors(api, make_member, base_rule, buy, case, status, code):
    referrer, referee = make_member(), make_member()
    referral_code = bonuses.referral_code_get_or_create(member=referrer, actor=SYSTEM).code
    body = {"code": referral_code}
    if case == "unknown":
        body = {"code": "NOPE2345"}
    elif case == "self":
        referee = referrer
    elif case == "twice":
        bonuses.referral_record(member=referee, code=referral_code, actor=SYSTEM)
    elif case == "late":
        buy(referee, [line()])
    elif case == "terminated":
        member_services.member_change_status(member=referee, to_status="terminated", reason="x", actor=SYSTEM)
    elif case == "blank":
        body = {}
    response = api.post(f"/api/v1/members/{referee.pk}/referral", body, format="json")
    assert response.status_code == status, response.content
    problem = response.json()
    assert problem["code"] == code or any(e["code"] == code for e in problem.get("errors", []))
    assert Referral.objects.count() == (1 if case == "twice" else 0)


def test_referral_api_access(make_api, make_member, other_program, client):
    member = make_member()
    url = f"/api/v1/members/{member.pk}/referral"
    assert client.get(url).status_code == 401
    assert make_api(["members:read"]).get(url).status_code == 403
    reader = make_api(["points:read"])
    assert reader.get(url).status_code == 200
    assert reader.post(url, {"code": "X"}, format="json").status_code == 403
    stranger = make_api(["points:read", "points:write"], target_program=other_program)
    assert stranger.get(url).status_code == 404


def test_event_bonuses_neither_qualify_for_tiers_nor_take_the_tier_multiplier(
    program, earning_settings, make_member, base_rule, buy
):
    from decimal import Decimal

    from tiers import services as tier_services
    from tiers.models import MemberTier, TierActivity

    # Every member holds the default tier, which doubles purchase points.
    tier_services.tier_create(
        program=program, code="bronze", name="Bronze", rank=10, earn_multiplier=Decimal("2"), actor=SYSTEM
    )
    tier_services.tier_create(
        program=program, code="silver", name="Silver", rank=20, qualify_points=100, actor=SYSTEM
    )
    earning_settings(
        enrolment_bonus=100,
        profile_completion_bonus=30,
        profile_completion_fields=["phone"],
        birthday_bonus=200,
        referral_referrer_bonus=300,
        referral_referee_bonus=150,
    )
    referrer = make_member(phone="+33644444444", birth_date=date(1990, 3, 14))
    assert available(referrer) == 130  # enrolment and profile completion, not doubled
    bonuses.birthday_bonuses(program=program, on=date(2025, 3, 14), actor=SYSTEM)
    assert available(referrer) == 330
    referee = make_member()
    code = bonuses.referral_code_get_or_create(member=referrer, actor=SYSTEM).code
    bonuses.referral_record(member=referee, code=code, actor=SYSTEM)
    purchase = buy(referee, [line("A", "10.00")])
    assert purchase.points == 20  # the purchase itself takes the multiplier
    assert (available(referrer), available(referee)) == (630, 100 + 150 + 20)
    # 630 and 270 bonus-rich points, yet only the purchase's 20 points count for tiers.
    assert list(TierActivity.objects.values_list("member_id", "source", "points")) == [
        (referee.pk, "purchase", 20)
    ]
    assert set(MemberTier.objects.values_list("tier__code", flat=True)) == {"bronze"}
