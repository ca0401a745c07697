"""Members API: profiles, filters, status lifecycle, cards, labels, consents, lookup."""

from datetime import timedelta

import pytest
from django.utils import timezone

from members import services
from members.models import Card, Consent, Label, Member, StatusChange
from webhooks.models import Event

pytestmark = pytest.mark.django_db


def _events(type_):
    return list(Event.objects.filter(type=type_).order_by("id"))


# --- create --------------------------------------------------------------------------------


def test_member_create_normalises_and_stores_everything(api, program):
    services.label_create(program=program, code="vip", name="VIP", actor=_sys())
    response = api.post(
        "/api/v1/members",
        {
            "email": " Ana.Lopez@Example.COM ",
            "phone": "06 12 34 56 78",
            "first_name": "Ana",
            "last_name": "Lopez",
            "birth_date": "1990-05-17",
            "language": "fr-FR",
            "address": {
                "line1": "1 rue de la Paix",
                "city": "Paris",
                "postal_code": "75002",
                "country": "fr",
            },
            "preferences": {"newsletter_frequency": "weekly"},
            "external_ref": "crm-981",
            "labels": ["vip"],
            "consents": [{"purpose": "email", "granted": True, "source": "pos"}],
            "card": "9000 0000 0000 0017",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "ana.lopez@example.com"
    assert body["phone"] == "+33612345678"
    assert body["address"]["country"] == "FR"
    assert body["labels"] == ["vip"]
    assert body["consents"][0]["purpose"] == "email" and body["consents"][0]["source"] == "pos"
    assert body["cards"][0]["number"] == "9000000000000017"
    assert body["status"] == "active"
    assert len(body["number"]) == 10 and body["number"].isdigit()
    member = Member.objects.get(pk=body["id"])
    assert member.program == program
    [event] = _events("member.created")
    assert event.member_id == member.pk and event.program_id == program.pk
    assert event.data["member"]["number"] == member.number


def _sys():
    from membership_site.actors import Actor

    return Actor.system("tests")


def test_member_create_generates_unique_luhn_numbers(make_member):
    from members.normalize import luhn_check_digit

    numbers = {make_member().number for _ in range(20)}
    assert len(numbers) == 20
    assert all(luhn_check_digit(n[:-1]) == n[-1] for n in numbers)


def test_member_create_rejects_unknown_fields(api):
    response = api.post("/api/v1/members", {"email": "a@example.com", "nickname": "x"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {"field": "nickname", "code": "unknown_field", "message": "This field is not part of this request."}
    ]
    assert not Member.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ({"email": "not-an-email"}, "email", "invalid_email"),
        ({"phone": "12"}, "phone", "invalid_phone"),
        ({"birth_date": "17/05/1990"}, "birth_date", "invalid"),
        ({"birth_date": "2999-01-01"}, "birth_date", "invalid_birth_date"),
        ({"birth_date": "1899-12-31"}, "birth_date", "invalid_birth_date"),
        ({"language": "not a language"}, "language", "invalid"),
        ({"language": "bei-dia-x5-PVc-wJr6CnT"}, "language", "max_length"),  # was a 500 (column is 16)
        ({"address": {"country": "FRA"}}, "address.country", "invalid"),
        ({"consents": [{"purpose": "fax", "granted": True}]}, "consents.0.purpose", "invalid_choice"),
        ({"labels": ["nope"]}, "labels", "unknown_label"),
        ({"status": "suspended"}, "status", "invalid_choice"),
    ],
)
def test_member_create_validation_errors_name_the_field(api, payload, field, code):
    response = api.post("/api/v1/members", payload)
    assert response.status_code == 400, response.content
    assert {"field": field, "code": code} in [
        {k: e[k] for k in ("field", "code")} for e in response.json()["errors"]
    ]
    assert not Member.objects.exists()
    assert not Event.objects.exists()


def test_member_update_language_longer_than_the_column_is_400(api, member):
    response = api.patch(
        f"/api/v1/members/{member.pk}", {"language": "bei-dia-x5-PVc-wJr6CnT"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [("language", "max_length")]
    member.refresh_from_db()
    assert member.language == ""


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [
        ("email", "dup@example.com", "DUP@example.com"),
        ("phone", "+33612345678", "06 12 34 56 78"),
        ("external_ref", "crm-1", "crm-1"),
        ("number", "1234567890", "1234 5678 90"),
    ],
)
def test_member_create_duplicate_in_program_is_409(api, field, first, second):
    assert api.post("/api/v1/members", {field: first}).status_code == 201
    second_payload = {field: second.replace(" ", "")} if field == "number" else {field: second}
    response = api.post("/api/v1/members", second_payload)
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_member"
    assert response.json()["errors"][0]["field"] == field
    assert Member.objects.count() == 1


def test_member_same_email_allowed_in_two_programs(make_api, other_program, api):
    other = make_api(target_program=other_program)
    assert api.post("/api/v1/members", {"email": "same@example.com"}).status_code == 201
    assert other.post("/api/v1/members", {"email": "same@example.com"}).status_code == 201


# --- read, update -------------------------------------------------------------------------


def test_member_of_other_program_is_404_and_absent_from_lists(api, make_member, other_program):
    foreign = make_member(target_program=other_program, email="foreign@example.com")
    assert api.get(f"/api/v1/members/{foreign.pk}").status_code == 404
    assert api.patch(f"/api/v1/members/{foreign.pk}", {"first_name": "x"}).status_code == 404
    assert api.post(f"/api/v1/members/{foreign.pk}/suspend", {"reason": "x"}).status_code == 404
    assert api.get("/api/v1/members").json()["results"] == []
    assert api.get("/api/v1/members", {"email": "foreign@example.com"}).json()["results"] == []


def test_member_patch_changes_only_sent_fields_and_emits_changed(api, member):
    response = api.patch(
        f"/api/v1/members/{member.pk}", {"last_name": "Lopez-Diaz", "address": {"city": "Lyon"}}
    )
    assert response.status_code == 200, response.content
    member.refresh_from_db()
    assert member.last_name == "Lopez-Diaz" and member.city == "Lyon"
    assert member.email == "ana@example.com"
    [event] = _events("member.updated")
    assert event.data["changed"] == ["city", "last_name"]


def test_member_patch_without_change_writes_no_event(api, member):
    assert api.patch(f"/api/v1/members/{member.pk}", {"first_name": "Ana"}).status_code == 200
    assert _events("member.updated") == []


def test_member_patch_to_a_taken_email_is_409(api, member, make_member):
    make_member(email="taken@example.com")
    response = api.patch(f"/api/v1/members/{member.pk}", {"email": "Taken@Example.com"})
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "email"


def test_member_list_filters(api, program, make_member):
    services.label_create(program=program, code="vip", name="VIP", actor=_sys())
    ana = make_member(
        email="ana@example.com", phone="+33612345678", labels=["vip"], card_number="9000000000000017"
    )
    ben = make_member(email="ben@example.com")
    services.member_change_status(member=ben, to_status="suspended", reason="test", actor=_sys())
    old = make_member(email="old@example.com", joined_at=timezone.now() - timedelta(days=400))

    def ids(**params):
        response = api.get("/api/v1/members", params)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids(status="suspended") == {ben.pk}
    assert ids(label="vip") == {ana.pk}
    assert ids(email="ANA@example.com") == {ana.pk}
    assert ids(phone="06 12 34 56 78") == {ana.pk}
    assert ids(card="9000-0000-0000-0017") == {ana.pk}
    assert ids(joined_before=(timezone.now() - timedelta(days=300)).isoformat()) == {old.pk}
    assert ids(joined_after=(timezone.now() - timedelta(days=1)).isoformat()) == {ana.pk, ben.pk}
    since = timezone.now()
    assert ids(updated_since=since.isoformat()) == set()
    services.member_update(member=old, first_name="Changed", actor=_sys())
    assert ids(updated_since=since.isoformat()) == {old.pk}
    assert api.get("/api/v1/members", {"joined_after": "yesterday"}).status_code == 400


def test_member_list_pages_with_a_capped_limit(api, make_member, settings):
    settings.API_PAGE_SIZE_MAX = 3
    for _ in range(5):
        make_member()
    first = api.get("/api/v1/members", {"limit": 100}).json()
    assert len(first["results"]) == 3
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 2 and second["next"] is None
    assert {r["id"] for r in first["results"]}.isdisjoint({r["id"] for r in second["results"]})
    bad = api.get("/api/v1/members", {"cursor": "garbage"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "cursor"


# --- status lifecycle ---------------------------------------------------------------------


def test_member_status_lifecycle_records_reason_and_actor(api, make_member):
    member = make_member(status="pending")
    steps = [
        ("activate", "active"),
        ("suspend", "suspended"),
        ("reactivate", "active"),
        ("terminate", "terminated"),
    ]
    for action, expected in steps:
        response = api.post(f"/api/v1/members/{member.pk}/{action}", {"reason": f"because {action}"})
        assert response.status_code == 200, response.content
        assert response.json()["status"] == expected
    changes = list(StatusChange.objects.filter(member=member).order_by("at", "id"))
    assert [(c.from_status, c.to_status) for c in changes] == [
        ("pending", "active"),
        ("active", "suspended"),
        ("suspended", "active"),
        ("active", "terminated"),
    ]
    assert all(c.actor_integration_id == api.integration.pk for c in changes)
    assert changes[1].reason == "because suspend"
    assert [e.data["to"] for e in _events("member.status_changed")] == [
        "active",
        "suspended",
        "active",
        "terminated",
    ]


@pytest.mark.parametrize(
    ("start", "action"),
    [
        ("active", "activate"),
        ("active", "reactivate"),
        ("pending", "suspend"),
        ("pending", "reactivate"),
        ("suspended", "suspend"),
    ],
)
def test_member_illegal_status_transition_is_409(api, make_member, start, action):
    member = make_member(status="pending")
    if start != "pending":
        services.member_change_status(member=member, to_status="active", reason="x", actor=_sys())
    if start == "suspended":
        services.member_change_status(member=member, to_status="suspended", reason="x", actor=_sys())
    response = api.post(f"/api/v1/members/{member.pk}/{action}", {"reason": "x"})
    assert response.status_code == 409
    assert response.json()["code"] == "illegal_status_transition"
    assert response.json()["current_status"] == start
    member.refresh_from_db()
    assert member.status == start


def test_member_terminated_is_final(api, member):
    api.post(f"/api/v1/members/{member.pk}/terminate", {"reason": "closed"})
    for action in ("activate", "reactivate", "suspend", "terminate"):
        assert api.post(f"/api/v1/members/{member.pk}/{action}", {"reason": "x"}).status_code == 409
    response = api.patch(f"/api/v1/members/{member.pk}", {"first_name": "New"})
    assert response.status_code == 409 and response.json()["code"] == "member_terminated"


def test_member_status_change_requires_reason(api, member):
    response = api.post(f"/api/v1/members/{member.pk}/suspend", {})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "reason"


# --- cards ------------------------------------------------------------------------------


def test_card_issue_generated_and_given(api, member):
    generated = api.post(f"/api/v1/members/{member.pk}/cards", {"kind": "digital"})
    assert generated.status_code == 201
    assert len(generated.json()["number"]) == 16 and generated.json()["kind"] == "digital"
    given = api.post(f"/api/v1/members/{member.pk}/cards", {"number": "5555 4444"})
    assert given.json()["number"] == "55554444"
    taken = api.post(f"/api/v1/members/{member.pk}/cards", {"number": "55554444"})
    assert taken.status_code == 409 and taken.json()["code"] == "card_number_taken"
    assert [c["number"] for c in api.get(f"/api/v1/members/{member.pk}/cards").json()] == [
        "55554444",
        generated.json()["number"],
    ]
    assert len(_events("card.issued")) == 2


def test_card_replace_keeps_old_number_resolvable_but_unusable(api, make_member, program):
    from members.errors import CardNotUsableError
    from members.selectors import member_identify

    member = make_member(card_number="1111222233334444")
    response = api.post(
        f"/api/v1/members/{member.pk}/cards/1111222233334444/replace",
        {"reason": "Lost", "new_number": "9999888877776666"},
    )
    assert response.status_code == 201, response.content
    assert response.json()["number"] == "9999888877776666"
    old = Card.objects.get(number="1111222233334444")
    assert old.status == "replaced" and old.replaced_by.number == "9999888877776666"

    lookup = api.get("/api/v1/members/lookup", {"card": "1111222233334444"}).json()
    assert lookup["id"] == member.pk
    assert lookup["card"] == {
        "number": "1111222233334444",
        "kind": "physical",
        "status": "replaced",
        "usable": False,
    }
    with pytest.raises(CardNotUsableError):
        member_identify(program=program, card="1111222233334444", for_transaction=True)
    found, card = member_identify(program=program, card="9999888877776666", for_transaction=True)
    assert found == member and card.status == "active"

    again = api.post(f"/api/v1/members/{member.pk}/cards/1111222233334444/replace", {"reason": "x"})
    assert again.status_code == 409 and again.json()["code"] == "card_not_active"
    [event] = _events("card.replaced")
    assert event.data["replaced_number"] == "1111222233334444"


def test_card_block(api, make_member):
    member = make_member(card_number="1111")
    response = api.post(f"/api/v1/members/{member.pk}/cards/1111/block", {"reason": "Stolen"})
    assert response.status_code == 200 and response.json()["status"] == "blocked"
    assert api.post(f"/api/v1/members/{member.pk}/cards/1111/block", {"reason": "x"}).status_code == 409
    assert api.post(f"/api/v1/members/{member.pk}/cards/2222/block", {"reason": "x"}).status_code == 404
    assert api.get("/api/v1/members/lookup", {"card": "1111"}).json()["card"]["usable"] is False


# --- labels --------------------------------------------------------------------------------


def test_labels_config_and_assignment(api, member):
    created = api.post("/api/v1/labels", {"code": "vip", "name": "VIP"})
    assert created.status_code == 201
    assert api.post("/api/v1/labels", {"code": "vip", "name": "Again"}).status_code == 409
    assert api.patch("/api/v1/labels/vip", {"name": "Very important"}).json()["name"] == "Very important"
    assert [row["code"] for row in api.get("/api/v1/labels").json()["results"]] == ["vip"]

    first = api.post(f"/api/v1/members/{member.pk}/labels", {"label": "vip"})
    assert first.status_code == 201 and first.json() == {"assigned": True}
    repeat = api.post(f"/api/v1/members/{member.pk}/labels", {"label": "vip"})
    assert repeat.status_code == 200 and repeat.json() == {"assigned": False}
    spec = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert {"200", "201"} <= set(spec["paths"]["/api/v1/members/{member_id}/labels"]["post"]["responses"])
    assert api.get(f"/api/v1/members/{member.pk}").json()["labels"] == ["vip"]
    unknown = api.post(f"/api/v1/members/{member.pk}/labels", {"label": "nope"})
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_label"

    assert api.delete(f"/api/v1/members/{member.pk}/labels/vip").status_code == 204
    assert api.delete(f"/api/v1/members/{member.pk}/labels/vip").status_code == 204
    assert api.delete(f"/api/v1/members/{member.pk}/labels/nope").status_code == 404
    assert [e.type for e in Event.objects.filter(type__startswith="label.")] == [
        "label.assigned",
        "label.removed",
    ]


def test_labels_need_config_scope_to_define(make_api):
    members_only = make_api(["members:read", "members:write"])
    response = members_only.post("/api/v1/labels", {"code": "vip", "name": "VIP"})
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert not Label.objects.exists()


# --- consents ---------------------------------------------------------------------------


def test_consents_keep_time_and_source_and_history(api, member):
    response = api.post(
        f"/api/v1/members/{member.pk}/consents",
        {
            "consents": [
                {"purpose": "sms", "granted": True, "source": "app"},
                {"purpose": "push", "granted": False},
            ]
        },
    )
    assert response.status_code == 200, response.content
    sms = Consent.objects.get(member=member, purpose="sms")
    assert sms.granted and sms.source == "app"
    api.post(
        f"/api/v1/members/{member.pk}/consents",
        {"consents": [{"purpose": "sms", "granted": False, "source": "web"}]},
    )
    sms.refresh_from_db()
    assert not sms.granted and sms.source == "web"
    assert [h.granted for h in sms.history.order_by("history_date")] == [True, False]
    assert [e.data["changed"] for e in _events("member.updated")] == [
        ["consents.push", "consents.sms"],
        ["consents.sms"],
    ]
    assert api.post(f"/api/v1/members/{member.pk}/consents", {"consents": []}).status_code == 400


# --- lookup -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"card": "9000 0000 0000 0017"},
        {"phone": "06 12 34 56 78"},
        {"email": "ANA@example.com"},
        {"number": None},
    ],
)
def test_member_lookup_by_each_identifier(api, make_member, params):
    member = make_member(email="ana@example.com", phone="+33612345678", card_number="9000000000000017")
    if params == {"number": None}:
        params = {"number": member.number}
    response = api.get("/api/v1/members/lookup", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == member.pk and body["number"] == member.number and body["status"] == "active"


@pytest.mark.parametrize("params", [{}, {"card": "1", "email": "a@example.com"}])
def test_member_lookup_needs_exactly_one_identifier(api, params):
    response = api.get("/api/v1/members/lookup", params)
    assert response.status_code == 400 and response.json()["code"] == "lookup_criteria"


def test_member_lookup_unknown_is_404(api, make_member, other_program):
    make_member(target_program=other_program, email="elsewhere@example.com")
    response = api.get("/api/v1/members/lookup", {"email": "elsewhere@example.com"})
    assert response.status_code == 404 and response.json()["code"] == "member_not_found"


def test_member_lookup_uses_a_bounded_number_of_queries(
    api, program, make_member, django_assert_max_num_queries
):
    for code in ("vip", "staff", "new"):
        services.label_create(program=program, code=code, name=code, actor=_sys())
    member = make_member(labels=["vip", "staff", "new"], card_number="4242")
    for _ in range(3):
        services.card_issue(member=member, actor=_sys())
    api.get("/api/v1/members/lookup", {"card": "4242"})  # warm the key's last_used_at
    # Authentication (1), card with member and program (1), labels (1), plus what higher
    # apps' profile sections add, each a fixed number whatever the member has.
    with django_assert_max_num_queries(8):
        response = api.get("/api/v1/members/lookup", {"card": "4242"})
    assert response.status_code == 200
    assert response.json()["labels"] == ["new", "staff", "vip"]


# --- audit ------------------------------------------------------------------------------


def test_member_history_records_the_integration(api, member):
    api.patch(f"/api/v1/members/{member.pk}", {"first_name": "Anna"})
    latest = member.history.latest("history_date")
    assert latest.first_name == "Anna"
    assert latest.history_integration_id == api.integration.pk
    assert latest.history_user_id is None
