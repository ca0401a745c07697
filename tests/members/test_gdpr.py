"""GDPR: export everything held about a member; erase their personal data."""

import pytest

from members import hooks
from members.models import Card, Consent, Member
from webhooks.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def rich_member(make_member, program):
    from members import services
    from membership_site.actors import Actor

    services.label_create(program=program, code="vip", name="VIP", actor=Actor.system())
    member = make_member(
        first_name="Ana",
        last_name="Lopez",
        email="ana@example.com",
        phone="+33612345678",
        city="Paris",
        external_ref="crm-1",
        labels=["vip"],
        card_number="1111222233334444",
        consents=[services.ConsentInput(purpose="email", granted=True, source="pos")],
    )
    services.member_update(member=member, first_name="Anna", actor=Actor.system())
    return member


def test_member_export_holds_profile_consents_cards_labels_history(api, rich_member):
    response = api.get(f"/api/v1/members/{rich_member.pk}/export")
    assert response.status_code == 200
    data = response.json()
    assert data["member"]["email"] == "ana@example.com" and data["member"]["first_name"] == "Anna"
    assert data["program"] == "acme"
    assert data["labels"] == ["vip"]
    assert data["consents"][0]["purpose"] == "email"
    assert data["cards"][0]["number"] == "1111222233334444"
    assert data["status_changes"] == []


def test_member_export_includes_sections_of_higher_apps(api, rich_member):
    def section(*, member):
        return "loyalty_extra", {"member_id": member.pk}

    hooks.export_sections.register(section)
    try:
        data = api.get(f"/api/v1/members/{rich_member.pk}/export").json()
    finally:
        hooks.export_sections._receivers.remove(section)
    assert data["loyalty_extra"] == {"member_id": rich_member.pk}


def test_member_erase_blanks_personal_data_everywhere(api, rich_member):
    response = api.post(f"/api/v1/members/{rich_member.pk}/erase", {"reason": "Asked by the member"})
    assert response.status_code == 200, response.content
    member = Member.objects.get(pk=rich_member.pk)
    assert member.status == "terminated" and member.erased_at is not None
    assert (member.email, member.phone, member.first_name, member.last_name, member.city) == (
        "",
        "",
        "",
        "",
        "",
    )
    assert member.number == rich_member.number
    for row in member.history.all():
        assert (row.email, row.phone, row.first_name, row.last_name, row.external_ref) == ("", "", "", "", "")
    assert not Consent.objects.filter(member=member).exists()
    assert not Consent.history.filter(member_id=member.pk).exists()
    card = Card.objects.get(member=member)
    assert card.status == "blocked" and card.number.startswith("ERASED-")
    assert not card.history.filter(number="1111222233334444").exists()
    assert not member.labels.exists()
    [event] = Event.objects.filter(type="member.erased")
    assert event.data == {
        "member": {"id": member.pk, "number": member.number},
        "reason": "Asked by the member",
    }
    # The old identifiers no longer find anyone.
    assert api.get("/api/v1/members/lookup", {"email": "ana@example.com"}).status_code == 404
    assert api.get("/api/v1/members/lookup", {"card": "1111222233334444"}).status_code == 404


def test_member_erase_removes_personal_data_from_the_members_stored_events(
    api, make_api, rich_member, program
):
    from members import services
    from membership_site.actors import Actor

    other = services.member_create(program=program, actor=Actor.system(), email="ana@example.org")
    assert (
        api.post(f"/api/v1/members/{rich_member.pk}/cards", {"number": "5555666677778888"}).status_code == 201
    )
    from webhooks.services import event_record

    # A store named after the member's city is not personal data.
    store = event_record(
        program_id=program.pk, member_id=rich_member.pk, type="member.updated", data={"location": "Paris"}
    )
    before = {e.event_id: e.member_sequence for e in Event.objects.filter(member_id=rich_member.pk)}
    assert {"member.created", "member.updated", "card.issued"} <= set(
        Event.objects.filter(member_id=rich_member.pk).values_list("type", flat=True)
    )

    assert api.post(f"/api/v1/members/{rich_member.pk}/erase", {"reason": "Asked"}).status_code == 200

    events = Event.objects.filter(member_id=rich_member.pk).order_by("member_sequence")
    # Same events, same order: only their personal data is gone.
    after = {e.event_id: e.member_sequence for e in events}
    assert {event_id: after[event_id] for event_id in before} == before
    assert [e.type for e in events][-2:] == ["member.status_changed", "member.erased"]
    stream = make_api(["events:read"]).get("/api/v1/events", {"member": rich_member.pk}).json()
    served = str(stream["results"]) + str([e.data for e in events])
    for personal in (
        "ana@example.com",
        "+33612345678",
        "Ana",
        "Anna",
        "Lopez",
        "crm-1",
        "1111222233334444",
        "5555666677778888",
    ):
        assert personal not in served
    created = events.get(type="member.created").data["member"]
    assert created["id"] == rich_member.pk and created["number"] == rich_member.number
    assert created["email"] is None and created["first_name"] is None and created["labels"] == ["vip"]
    store.refresh_from_db()
    assert store.data == {"location": "Paris"}
    # Another member's events are untouched.
    assert Event.objects.get(member_id=other.pk).data["member"]["email"] == "ana@example.org"


def test_member_erase_twice_is_409_and_frees_identifiers(api, rich_member):
    api.post(f"/api/v1/members/{rich_member.pk}/erase", {"reason": "x"})
    again = api.post(f"/api/v1/members/{rich_member.pk}/erase", {"reason": "x"})
    assert again.status_code == 409 and again.json()["code"] == "member_erased"
    # The person can join again with the same e-mail and card later.
    assert (
        api.post("/api/v1/members", {"email": "ana@example.com", "card": "1111222233334444"}).status_code
        == 201
    )


def test_member_erase_requires_reason_and_write_scope(make_api, rich_member):
    reader = make_api(["members:read"])
    assert reader.post(f"/api/v1/members/{rich_member.pk}/erase", {"reason": "x"}).status_code == 403
    writer = make_api(["members:write"])
    assert writer.post(f"/api/v1/members/{rich_member.pk}/erase", {}).status_code == 400
    assert Member.objects.get(pk=rich_member.pk).erased_at is None


def test_member_erased_hook_runs_in_the_transaction(api, rich_member):
    def fail(*, member, actor):
        raise RuntimeError("a higher app could not erase")

    hooks.member_erased.register(fail)
    api.raise_request_exception = False
    try:
        assert api.post(f"/api/v1/members/{rich_member.pk}/erase", {"reason": "x"}).status_code == 500
    finally:
        hooks.member_erased._receivers.remove(fail)
    member = Member.objects.get(pk=rich_member.pk)
    assert member.erased_at is None and member.email == "ana@example.com"
