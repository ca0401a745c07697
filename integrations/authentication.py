"""API authentication: ``X-API-Key`` and OAuth2 bearer tokens, both resolving to an
Integration.

``request.user`` and ``request.auth`` are the same ``IntegrationPrincipal``: the
integration, its program and the scopes this credential carries.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from membership_site.actors import Actor, set_current_actor

from .models import ApiKey, Integration
from .services import API_KEY_PREFIX, api_key_hash

LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class IntegrationPrincipal:
    integration: Integration
    scopes: frozenset[str]
    credential: str

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    @property
    def program(self):
        return self.integration.program

    @property
    def program_id(self) -> int:
        return self.integration.program_id

    @property
    def actor(self) -> Actor:
        return Actor.for_integration(self.integration)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def __str__(self) -> str:
        return f"integration {self.integration.pk} via {self.credential}"


class IpNotAllowed(exceptions.PermissionDenied):
    default_code = "ip_not_allowed"
    default_detail = "Requests for this integration are not allowed from this address."


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or the entry NUM_PROXIES from the right of
    X-Forwarded-For when that many trusted proxies stand in front of the app."""
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if settings.NUM_PROXIES and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(settings.NUM_PROXIES, len(hops))]
    return remote


def _principal(request, integration: Integration, scopes, credential: str) -> IntegrationPrincipal:
    if not integration.is_active:
        raise exceptions.AuthenticationFailed("This integration is disabled.")
    if integration.ip_allowlist:
        try:
            address = ipaddress.ip_address(client_ip(request))
        except ValueError:
            raise IpNotAllowed() from None
        if not any(address in ipaddress.ip_network(cidr) for cidr in integration.ip_allowlist):
            raise IpNotAllowed()
    principal = IntegrationPrincipal(
        integration=integration,
        scopes=frozenset(scopes) & frozenset(integration.scopes),
        credential=credential,
    )
    # For the access log and for audit records written while serving this request.
    request._request.api_integration_id = integration.pk
    set_current_actor(principal.actor)
    return principal


class ApiKeyAuthentication(BaseAuthentication):
    header = "HTTP_X_API_KEY"

    def authenticate(self, request):
        key = request.META.get(self.header)
        if not key:
            return None
        prefix = key[len(API_KEY_PREFIX) :].split("_", 1)[0] if key.startswith(API_KEY_PREFIX) else ""
        api_key = (
            ApiKey.objects.select_related("integration__program").filter(prefix=prefix).first()
            if prefix
            else None
        )
        if api_key is None or not hmac.compare_digest(api_key.key_hash, api_key_hash(key)):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if not api_key.is_usable:
            raise exceptions.AuthenticationFailed("This API key is revoked or expired.")
        principal = _principal(
            request, api_key.integration, api_key.integration.scopes, f"api_key:{api_key.prefix}"
        )
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_GRANULARITY:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return principal, principal

    def authenticate_header(self, request) -> str:
        return 'ApiKey header="X-API-Key"'


class IntegrationOAuth2Authentication(OAuth2Authentication):
    """A bearer token from ``POST /o/token/`` (client credentials) of a linked client."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            if request.META.get("HTTP_AUTHORIZATION", "").lower().startswith("bearer "):
                raise exceptions.AuthenticationFailed("Invalid or expired access token.")
            return None
        _user, token = result
        integration = (
            Integration.objects.select_related("program")
            .filter(oauth_application_id=token.application_id)
            .first()
        )
        if integration is None:
            raise exceptions.AuthenticationFailed("This OAuth2 client is not linked to an integration.")
        principal = _principal(request, integration, token.scope.split(), "oauth2")
        return principal, principal
