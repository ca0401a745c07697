"""X-API-Key and OAuth2 client credentials, scopes, IP allowlists, program isolation."""

import base64
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application
from rest_framework.test import APIClient

from integrations import services
from integrations.models import ApiKey, Integration
from membership_site.actors import Actor

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")


def _problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert {"type", "title", "detail"} <= set(body)
    return body


# --- API keys ---------------------------------------------------------------------------


def test_api_key_resolves_to_its_integration(api):
    response = api.get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["integration"]["id"] == api.integration.pk
    assert response.json()["program"] == "acme"
    assert response.json()["credential"] == "api_key"


def test_api_key_is_stored_only_as_prefix_and_hash(api):
    stored = ApiKey.objects.get(integration=api.integration)
    assert api.key.startswith(f"lk_{stored.prefix}_")
    assert stored.key_hash != api.key and api.key not in stored.key_hash
    assert len(stored.key_hash) == 64


def test_missing_credentials_is_401_problem(db):
    response = APIClient().get("/api/v1/members")
    _problem(response, 401, "not_authenticated")
    assert "WWW-Authenticate" in response


@pytest.mark.parametrize("key", ["garbage", "lk_000000000000_nope", ""])
def test_bad_api_key_is_401(db, api, key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key or api.key[:-1] + ("x" if api.key[-1] != "x" else "y"))
    _problem(client.get("/api/v1/members"), 401, "authentication_failed")


def test_revoked_and_expired_keys_are_401(api):
    stored = ApiKey.objects.get(integration=api.integration)
    services.api_key_revoke(api_key=stored, actor=SYSTEM)
    _problem(api.get("/api/v1/members"), 401, "authentication_failed")

    fresh = services.api_key_create(
        integration=api.integration, expires_at=timezone.now() - timedelta(seconds=1), actor=SYSTEM
    )
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=fresh.key)
    _problem(client.get("/api/v1/members"), 401, "authentication_failed")


def test_inactive_integration_is_401(api):
    services.integration_update(integration=api.integration, is_active=False, actor=SYSTEM)
    _problem(api.get("/api/v1/members"), 401, "authentication_failed")


def test_api_key_last_used_at_is_recorded(api):
    assert ApiKey.objects.get(integration=api.integration).last_used_at is None
    api.get("/api/v1/me")
    assert ApiKey.objects.get(integration=api.integration).last_used_at is not None


def test_several_keys_per_integration_for_rotation(api):
    second = services.api_key_create(integration=api.integration, name="new till", actor=SYSTEM)
    services.api_key_revoke(api_key=ApiKey.objects.get(prefix=api.key.split("_")[1]), actor=SYSTEM)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=second.key)
    assert client.get("/api/v1/me").status_code == 200
    assert api.get("/api/v1/me").status_code == 401


# --- scopes and program isolation -----------------------------------------------------------


def test_missing_scope_is_403_and_names_the_scope(make_api):
    reader = make_api(["members:read"])
    assert reader.get("/api/v1/members").status_code == 200
    body = _problem(reader.post("/api/v1/members", {"email": "a@example.com"}), 403, "insufficient_scope")
    assert "members:write" in body["detail"]
    _problem(reader.get("/api/v1/labels"), 403, "insufficient_scope")


def test_objects_of_another_program_are_404(api, make_api, other_program, make_member):
    foreign = make_member(target_program=other_program)
    _problem(api.get(f"/api/v1/members/{foreign.pk}"), 404, "member_not_found")
    other = make_api(target_program=other_program)
    assert other.get(f"/api/v1/members/{foreign.pk}").status_code == 200


# --- IP allowlist ------------------------------------------------------------------------


def test_ip_allowlist_refuses_other_addresses(make_api):
    client = make_api(ip_allowlist=["203.0.113.0/24"])
    _problem(client.get("/api/v1/me", REMOTE_ADDR="198.51.100.7"), 403, "ip_not_allowed")
    assert client.get("/api/v1/me", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_ip_allowlist_reads_x_forwarded_for_behind_trusted_proxies(make_api, settings):
    settings.NUM_PROXIES = 1
    client = make_api(ip_allowlist=["203.0.113.0/24"])
    ok = client.get("/api/v1/me", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    assert ok.status_code == 200
    refused = client.get("/api/v1/me", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9, 1.2.3.4")
    _problem(refused, 403, "ip_not_allowed")


def test_integration_create_rejects_bad_scopes_cidrs_and_rates(program):
    from integrations.errors import InvalidIpAllowlistError, InvalidRateLimitError, InvalidScopesError

    with pytest.raises(InvalidScopesError):
        services.integration_create(program=program, name="x", scopes=["members:delete"], actor=SYSTEM)
    with pytest.raises(InvalidIpAllowlistError):
        services.integration_create(program=program, name="x", scopes=[], ip_allowlist=["nope"], actor=SYSTEM)
    with pytest.raises(InvalidRateLimitError):
        services.integration_create(program=program, name="x", scopes=[], rate_limit="lots", actor=SYSTEM)


# --- OAuth2 client credentials -------------------------------------------------------------


def _token(client_id, secret, scope=None):
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    return Client().post("/o/token/", data, HTTP_AUTHORIZATION=f"Basic {basic}")


@pytest.fixture
def oauth_integration(program):
    integration = services.integration_create(
        program=program, name="Shop", scopes=["members:read", "members:write", "points:read"], actor=SYSTEM
    )
    return integration, services.oauth_client_create(integration=integration, actor=SYSTEM)


def test_oauth_client_credentials_token_resolves_to_the_integration(oauth_integration):
    integration, client = oauth_integration
    response = _token(client.client_id, client.client_secret)
    assert response.status_code == 200, response.content
    token = response.json()
    assert set(token["scope"].split()) == {"members:read", "members:write", "points:read"}
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token['access_token']}")
    me = api.get("/api/v1/me").json()
    assert me["integration"]["id"] == integration.pk and me["credential"] == "oauth2"


def test_oauth_token_scopes_are_a_subset_of_the_integrations(oauth_integration):
    _integration, client = oauth_integration
    narrow = _token(client.client_id, client.client_secret, scope="members:read").json()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {narrow['access_token']}")
    assert api.get("/api/v1/members").status_code == 200
    _problem(api.post("/api/v1/members", {"email": "a@example.com"}), 403, "insufficient_scope")

    refused = _token(client.client_id, client.client_secret, scope="members:read config:write")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"


def test_oauth_secrets_and_tokens_are_not_stored_in_clear(oauth_integration):
    _integration, client = oauth_integration
    token = _token(client.client_id, client.client_secret).json()["access_token"]
    application = Application.objects.get(client_id=client.client_id)
    assert application.client_secret != client.client_secret
    assert not AccessToken.objects.filter(token=token).exists()
    assert AccessToken.objects.filter(application=application).count() == 1


def test_oauth_bad_secret_and_bad_token(oauth_integration):
    _integration, client = oauth_integration
    assert _token(client.client_id, "wrong").status_code == 401
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    _problem(api.get("/api/v1/members"), 401, "authentication_failed")


def test_oauth_token_stops_working_when_integration_is_disabled(oauth_integration):
    integration, client = oauth_integration
    token = _token(client.client_id, client.client_secret).json()["access_token"]
    services.integration_update(integration=integration, is_active=False, actor=SYSTEM)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    _problem(api.get("/api/v1/me"), 401, "authentication_failed")
    assert _token(client.client_id, client.client_secret).status_code == 400


def test_oauth_client_only_once_per_integration(oauth_integration):
    from integrations.errors import OAuthClientExistsError

    integration, _client = oauth_integration
    with pytest.raises(OAuthClientExistsError):
        services.oauth_client_create(integration=integration, actor=SYSTEM)


def test_oauth_token_loses_scopes_taken_from_its_integration_later(oauth_integration):
    # ``integration`` was read before its OAuth2 client was created: updating it must not
    # unlink the client (the update once saved the stale copy whole).
    integration, client = oauth_integration
    token = _token(client.client_id, client.client_secret).json()
    assert "members:write" in token["scope"].split()
    services.integration_update(integration=integration, scopes=["members:read"], actor=SYSTEM)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token['access_token']}")
    response = api.get("/api/v1/members")
    assert response.status_code == 200, response.content
    _problem(api.post("/api/v1/members", {"email": "a@example.com"}), 403, "insufficient_scope")
    assert api.get("/api/v1/me").json()["scopes"] == ["members:read"]
    assert Integration.objects.get(pk=integration.pk).oauth_application.client_id == client.client_id
