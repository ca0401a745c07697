"""Writes for integrations, API keys and OAuth2 clients.

Secrets (API keys, OAuth2 client secrets) are returned once by the service that creates
them and only their hashes are stored.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_id, generate_client_secret
from oauth2_provider.models import get_application_model

from membership_site.actors import Actor
from programs.models import Program

from .errors import (
    ApiKeyAlreadyRevokedError,
    InvalidIpAllowlistError,
    InvalidRateLimitError,
    InvalidScopesError,
    OAuthClientExistsError,
)
from .models import ApiKey, Integration
from .scopes import invalid_scopes

API_KEY_PREFIX = "lk_"
_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


def api_key_hash(key: str) -> str:
    # API keys are 192-bit random strings, so a fast hash is enough (unlike passwords).
    return hashlib.sha256(key.encode()).hexdigest()


def clean_scopes(scopes: list[str]) -> list[str]:
    unknown = invalid_scopes(scopes)
    if unknown:
        raise InvalidScopesError(f"Unknown scopes: {', '.join(unknown)}.", field="scopes")
    return sorted(set(scopes))


def clean_ip_allowlist(cidrs: list[str]) -> list[str]:
    normalised = []
    for cidr in cidrs:
        try:
            normalised.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
        except ValueError:
            raise InvalidIpAllowlistError(
                f"'{cidr}' is not an IP address or CIDR range.", field="ip_allowlist"
            ) from None
    return normalised


def clean_rate_limit(rate: str) -> str:
    if rate and not _RATE.match(rate):
        raise InvalidRateLimitError(f"'{rate}' is not a rate like '600/min'.", field="rate_limit")
    return rate


@transaction.atomic
def integration_create(
    *,
    program: Program,
    name: str,
    scopes: list[str],
    kind: str = Integration.Kind.OTHER,
    ip_allowlist: list[str] | None = None,
    rate_limit: str = "",
    actor: Actor,
) -> Integration:
    return Integration.objects.create(
        program=program,
        name=name,
        kind=kind,
        scopes=clean_scopes(scopes),
        ip_allowlist=clean_ip_allowlist(ip_allowlist or []),
        rate_limit=clean_rate_limit(rate_limit),
    )


@transaction.atomic
def integration_update(*, integration: Integration, actor: Actor, **fields: Any) -> Integration:
    if "scopes" in fields:
        fields["scopes"] = clean_scopes(fields["scopes"])
    if "ip_allowlist" in fields:
        fields["ip_allowlist"] = clean_ip_allowlist(fields["ip_allowlist"])
    if "rate_limit" in fields:
        fields["rate_limit"] = clean_rate_limit(fields["rate_limit"])
    # Only the given fields, on the locked row: saving the caller's copy whole would put
    # back what it holds stale (e.g. unlink an OAuth2 client created since it was read).
    locked = Integration.objects.select_for_update(no_key=True).get(pk=integration.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
        setattr(integration, name, value)
    locked.save(update_fields=[*fields, "updated_at"])
    return locked


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    key: str  # the whole secret key: show it once, it is not stored


@transaction.atomic
def api_key_create(
    *,
    integration: Integration,
    name: str = "",
    expires_at: datetime | None = None,
    actor: Actor,
) -> NewApiKey:
    """Create a key ``lk_<prefix>_<secret>``; only the prefix and a hash are stored."""
    prefix = secrets.token_hex(6)
    key = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
    api_key = ApiKey.objects.create(
        integration=integration,
        name=name,
        prefix=prefix,
        key_hash=api_key_hash(key),
        expires_at=expires_at,
        created_by_id=actor.user_id,
    )
    return NewApiKey(api_key=api_key, key=key)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    api_key = ApiKey.objects.select_for_update(no_key=True).get(pk=api_key.pk)
    if api_key.revoked_at is not None:
        raise ApiKeyAlreadyRevokedError(f"Key {api_key.prefix} was revoked at {api_key.revoked_at}.")
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    return api_key


@dataclass(frozen=True)
class NewOAuthClient:
    client_id: str
    client_secret: str  # show it once: only its hash is stored


@transaction.atomic
def oauth_client_create(*, integration: Integration, actor: Actor) -> NewOAuthClient:
    """Create the OAuth2 client (client credentials grant) that acts as the integration."""
    integration = Integration.objects.select_for_update(no_key=True).get(pk=integration.pk)
    if integration.oauth_application_id is not None:
        raise OAuthClientExistsError(f"Integration {integration.pk} already has an OAuth2 client.")
    client_id = generate_client_id()
    client_secret = generate_client_secret()
    Application = get_application_model()
    application = Application.objects.create(
        name=f"{integration.program.code}: {integration.name}"[:255],
        client_id=client_id,
        client_secret=client_secret,  # hashed by the model on save
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        hash_client_secret=True,
    )
    integration.oauth_application = application
    integration.save(update_fields=["oauth_application", "updated_at"])
    return NewOAuthClient(client_id=client_id, client_secret=client_secret)
