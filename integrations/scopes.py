"""API scopes: ``<area>:read`` and ``<area>:write``.

A credential (API key or OAuth2 token) carries a subset of its integration's scopes.
``IntegrationScopes`` is django-oauth-toolkit's scopes backend: a client may only ask for
scopes its integration has, and gets all of them when it asks for none.
"""

from __future__ import annotations

from typing import Any

from oauth2_provider.scopes import BaseScopes

AREAS: dict[str, str] = {
    "members": "members, cards, labels and lookups",
    "points": "balances, transactions, holds and purchases",
    "tiers": "tier status and assignments",
    "rewards": "the catalog, redemptions and vouchers",
    "events": "the event stream",
    "webhooks": "webhook endpoints and deliveries",
    "jobs": "imports, exports and other bulk jobs",
    "config": "program configuration: locations, labels, currencies, rules, tiers, rewards",
}

SCOPES: dict[str, str] = {
    f"{area}:{access}": f"{'Read' if access == 'read' else 'Change'} {what}"
    for area, what in AREAS.items()
    for access in ("read", "write")
}


def scope_name(area: str, *, write: bool) -> str:
    return f"{area}:{'write' if write else 'read'}"


def invalid_scopes(scopes: list[str]) -> list[str]:
    return [scope for scope in scopes if scope not in SCOPES]


class IntegrationScopes(BaseScopes):
    def get_all_scopes(self) -> dict[str, str]:
        return SCOPES

    def get_available_scopes(self, application: Any = None, request: Any = None, *args, **kwargs):
        from .models import Integration

        integration = (
            Integration.objects.filter(oauth_application=application, is_active=True).only("scopes").first()
        )
        return list(integration.scopes) if integration else []

    def get_default_scopes(self, application: Any = None, request: Any = None, *args, **kwargs):
        return self.get_available_scopes(application, request, *args, **kwargs)
