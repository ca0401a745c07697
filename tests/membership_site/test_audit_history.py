"""Audit history on Program, Location, Integration, Member, Card and Label: the acting staff
user or integration is recorded and shown on the object's admin history page."""

import pytest
from django.contrib.auth import get_user_model

from integrations import services as integration_services
from integrations.models import Integration
from members.models import Card, Label
from membership_site.actors import Actor
from programs.models import Location

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-long-enough-1")
    client.force_login(user)
    return user


def _history_page(client, obj) -> str:
    opts = obj._meta
    response = client.get(f"/admin/{opts.app_label}/{opts.model_name}/{obj.pk}/history/")
    assert response.status_code == 200
    return response.content.decode()


def test_api_changes_record_and_show_the_integration(api, client, superuser, member):
    api.integration.name = "Store tills"
    api.integration.save()
    assert api.post("/api/v1/locations", {"code": "lyon", "name": "Lyon"}).status_code == 201
    assert api.patch(f"/api/v1/members/{member.pk}", {"first_name": "Anna"}).status_code == 200
    assert api.post(f"/api/v1/members/{member.pk}/cards", {"number": "7777"}).status_code == 201
    assert api.post("/api/v1/labels", {"code": "vip", "name": "VIP"}).status_code == 201

    objects = [
        Location.objects.get(code="lyon"),
        member,
        Card.objects.get(number="7777"),
        Label.objects.get(code="vip"),
    ]
    for obj in objects:
        latest = obj.history.latest("history_date")
        assert latest.history_integration_id == api.integration.pk, obj
        assert latest.history_user_id is None
        page = _history_page(client, obj)
        assert f"Integration: Store tills (#{api.integration.pk})" in page, obj


def test_staff_changes_record_and_show_the_user(client, superuser, program):
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
    assert response.status_code == 302
    integration = integration_services.integration_create(
        program=program, name="CRM", scopes=["members:read"], actor=Actor.system("tests")
    )
    response = client.post(
        f"/admin/integrations/integration/{integration.pk}/change/",
        {
            "name": "CRM sync",
            "kind": "crm",
            "scopes": ["members:read", "members:write"],
            "is_active": "on",
            "ip_allowlist": "",
            "rate_limit": "",
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]

    for obj in (program, Integration.objects.get(pk=integration.pk)):
        latest = obj.history.latest("history_date")
        assert latest.history_user == superuser, obj
        assert latest.history_integration_id is None
        page = _history_page(client, obj)
        assert ">root</a>" in page, obj
