"""Staff roles (groups created by migration) and the admin for programs and members."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from members.models import Label, Member, StatusChange
from membership_site.roles import AUDITOR, PROGRAM_MANAGER, SUPPORT_AGENT
from programs.models import Program

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    def _login(role: str | None = None, superuser: bool = False):
        User = get_user_model()
        username = f"user-{(role or 'root').replace(' ', '-').lower()}"
        if superuser:
            user = User.objects.create_superuser(username, f"{username}@example.com", "pw-long-enough-1")
        else:
            user = User.objects.create_user(
                username, f"{username}@example.com", "pw-long-enough-1", is_staff=True
            )
            user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return user

    return _login


def _member_form(member, **changes):
    data = {
        "first_name": member.first_name,
        "last_name": member.last_name,
        "email": member.email,
        "phone": member.phone,
        "birth_date": "",
        "language": "",
        "address_line1": "",
        "address_line2": "",
        "city": "",
        "postal_code": "",
        "region": "",
        "country": "",
        "external_ref": "",
        "preferences": "{}",
        # The read-only inlines still post their management forms.
        **{
            f"{prefix}-{field}": value
            for prefix in ("cards", "label_links", "consents", "status_changes")
            for field, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
        },
    }
    data.update(changes)
    return data


def test_role_groups_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {PROGRAM_MANAGER, SUPPORT_AGENT, AUDITOR}
    auditor = set(Group.objects.get(name=AUDITOR).permissions.values_list("codename", flat=True))
    assert "view_member" in auditor and "view_program" in auditor
    assert not any(code.startswith(("add_", "change_", "delete_")) for code in auditor)


def test_program_manager_changes_configuration_and_members(client, staff, program, member):
    staff(PROGRAM_MANAGER)
    assert client.get(f"/admin/programs/program/{program.pk}/change/").status_code == 200
    response = client.post(
        f"/admin/programs/program/{program.pk}/change/",
        {
            "name": "Acme Renamed",
            "timezone": "Europe/Paris",
            "currency": "EUR",
            "phone_region": "FR",
            "status": "active",
            "locations-TOTAL_FORMS": "0",
            "locations-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert Program.objects.get(pk=program.pk).name == "Acme Renamed"
    response = client.post(
        f"/admin/members/member/{member.pk}/change/", _member_form(member, last_name="Manager")
    )
    assert response.status_code == 302
    assert Member.objects.get(pk=member.pk).last_name == "Manager"


def test_support_agent_changes_members_but_not_configuration(client, staff, program, member):
    staff(SUPPORT_AGENT)
    response = client.post(
        f"/admin/members/member/{member.pk}/change/", _member_form(member, last_name="Support")
    )
    assert response.status_code == 302
    assert Member.objects.get(pk=member.pk).last_name == "Support"
    assert client.get(f"/admin/programs/program/{program.pk}/change/").status_code == 200  # view only
    response = client.post(f"/admin/programs/program/{program.pk}/change/", {"name": "Hacked"})
    assert response.status_code == 403
    assert Program.objects.get(pk=program.pk).name == "Acme Coffee"
    assert client.get("/admin/integrations/integration/add/").status_code == 403
    assert client.post(f"/admin/members/member/{member.pk}/delete/", {"post": "yes"}).status_code == 403


def test_auditor_reads_everything_and_changes_nothing(client, staff, program, member):
    staff(AUDITOR)
    assert client.get("/admin/members/member/").status_code == 200
    assert client.get(f"/admin/members/member/{member.pk}/change/").status_code == 200
    assert client.get(f"/admin/members/member/{member.pk}/history/").status_code == 200
    response = client.post(
        f"/admin/members/member/{member.pk}/change/", _member_form(member, last_name="Auditor")
    )
    assert response.status_code == 403
    assert Member.objects.get(pk=member.pk).last_name == "Lopez"
    response = client.post(
        "/admin/members/member/",
        {"action": "suspend", "_selected_action": [member.pk], "reason": "x", "apply": "1"},
    )
    assert Member.objects.get(pk=member.pk).status == "active"
    assert client.get("/admin/members/label/add/").status_code == 403


@pytest.mark.parametrize(
    "query", ["{number}", "9000000000000017", "ana@example.com", "+33612345678", "Lopez", "Ana"]
)
def test_admin_member_search(client, staff, make_member, query):
    staff(superuser=True)
    member = make_member(
        first_name="Ana",
        last_name="Lopez",
        email="ana@example.com",
        phone="+33612345678",
        card_number="9000000000000017",
    )
    make_member(first_name="Someone", last_name="Else")
    response = client.get("/admin/members/member/", {"q": query.format(number=member.number)})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [member]


def test_admin_status_action_asks_reason_and_uses_the_service(client, staff, member):
    user = staff(SUPPORT_AGENT)
    page = client.post("/admin/members/member/", {"action": "suspend", "_selected_action": [member.pk]})
    assert page.status_code == 200 and b"reason" in page.content
    client.post(
        "/admin/members/member/",
        {"action": "suspend", "_selected_action": [member.pk], "reason": "Chargeback", "apply": "1"},
    )
    member.refresh_from_db()
    assert member.status == "suspended"
    change = StatusChange.objects.get(member=member)
    assert change.reason == "Chargeback" and change.actor_user == user
    # The history row names the staff user.
    assert member.history.latest("history_date").history_user == user


def test_admin_member_create_goes_through_the_service(client, staff, program):
    staff(PROGRAM_MANAGER)
    data = _member_form(
        Member(first_name="New", last_name="Person", email="NEW@Example.com", phone="06 11 22 33 44")
    )
    data["program"] = program.pk
    response = client.post("/admin/members/member/add/", data)
    assert response.status_code == 302, response.content[:3000]
    created = Member.objects.get(email="new@example.com")
    assert created.phone == "+33611223344" and len(created.number) == 10


def test_admin_member_form_rejects_bad_phone(client, staff, member):
    staff(PROGRAM_MANAGER)
    response = client.post(f"/admin/members/member/{member.pk}/change/", _member_form(member, phone="12"))
    assert response.status_code == 200
    assert "phone" in response.context["adminform"].form.errors


def test_admin_member_form_rejects_a_future_birth_date(client, staff, member):
    staff(PROGRAM_MANAGER)
    response = client.post(
        f"/admin/members/member/{member.pk}/change/", _member_form(member, birth_date="2999-01-01")
    )
    assert response.status_code == 200
    assert "birth_date" in response.context["adminform"].form.errors
    assert Member.objects.get(pk=member.pk).birth_date is None


def test_admin_label_actions(client, staff, program, member):
    from members import services
    from membership_site.actors import Actor

    label = services.label_create(program=program, code="vip", name="VIP", actor=Actor.system())
    staff(SUPPORT_AGENT)
    client.post(
        "/admin/members/member/",
        {"action": "assign_label", "_selected_action": [member.pk], "label": label.pk, "apply": "1"},
    )
    assert list(member.labels.values_list("code", flat=True)) == ["vip"]
    assert Label.objects.count() == 1
