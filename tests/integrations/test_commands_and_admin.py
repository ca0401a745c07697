"""create_program / create_integration commands and the integrations admin."""

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from integrations.models import ApiKey, Integration
from programs.models import Program

pytestmark = pytest.mark.django_db


def test_create_program_command(db):
    out = StringIO()
    call_command(
        "create_program",
        "brand",
        "--name",
        "Brand",
        "--timezone",
        "Asia/Tokyo",
        "--currency",
        "jpy",
        stdout=out,
    )
    program = Program.objects.get(code="brand")
    assert program.timezone == "Asia/Tokyo" and program.currency == "JPY"
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_program", "brand", "--name", "Again")
    with pytest.raises(CommandError, match="IANA"):
        call_command("create_program", "other", "--name", "X", "--timezone", "Mars/Base")


def test_create_integration_command_prints_working_credentials(program):
    out = StringIO()
    call_command(
        "create_integration",
        "--program",
        "acme",
        "--name",
        "Till",
        "--scopes",
        "members:read points:write",
        "--kind",
        "pos",
        "--oauth",
        stdout=out,
    )
    text = out.getvalue()
    key = re.search(r"^API key: (\S+)$", text, re.M).group(1)
    assert re.search(r"^Client ID: \S+$", text, re.M)
    assert re.search(r"^Client secret: \S+$", text, re.M)
    integration = Integration.objects.get(name="Till")
    assert integration.scopes == ["members:read", "points:write"] and integration.kind == "pos"
    assert integration.oauth_application_id is not None
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    assert client.get("/api/v1/members").status_code == 200


def test_create_integration_command_rejects_unknown_scope_and_writes_nothing(program):
    with pytest.raises(CommandError, match="Unknown scopes"):
        call_command("create_integration", "--program", "acme", "--name", "X", "--scopes", "everything")
    assert not Integration.objects.exists()


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123-long")
    client.force_login(user)
    return client


def test_admin_api_key_creation_shows_the_secret_once(admin_client, api):
    response = admin_client.post(
        "/admin/integrations/apikey/add/",
        {"integration": api.integration.pk, "name": "till 4", "expires_at": ""},
    )
    assert response.status_code == 200
    key = re.search(r"lk_[0-9a-f]{12}_[A-Za-z0-9_-]+", response.content.decode()).group(0)
    stored = ApiKey.objects.get(name="till 4")
    assert key.startswith(f"lk_{stored.prefix}_") and key not in stored.key_hash
    page = admin_client.get(f"/admin/integrations/apikey/{stored.pk}/change/").content.decode()
    assert key not in page
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    assert client.get("/api/v1/me").status_code == 200


def test_admin_revoke_action(admin_client, api):
    stored = ApiKey.objects.get(integration=api.integration)
    response = admin_client.post(
        "/admin/integrations/apikey/", {"action": "revoke", "_selected_action": [stored.pk]}, follow=True
    )
    assert response.status_code == 200
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    assert api.get("/api/v1/me").status_code == 401


def test_admin_create_oauth_client_action_shows_secret(admin_client, api):
    response = admin_client.post(
        "/admin/integrations/integration/",
        {"action": "create_oauth_client", "_selected_action": [api.integration.pk]},
    )
    assert response.status_code == 200
    assert "Client secret" in response.content.decode()
    api.integration.refresh_from_db()
    assert api.integration.oauth_application_id is not None
