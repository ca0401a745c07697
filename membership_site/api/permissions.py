"""Scope checks: a view names its area; reads need ``<area>:read``, writes ``<area>:write``."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from integrations.scopes import scope_name


def required_scope(view, method: str) -> str | None:
    """The scope a request needs: ``view.required_scopes[method]`` if the view sets one
    (e.g. a POST that only reads), otherwise from ``view.scope_area`` and the method."""
    overrides = getattr(view, "required_scopes", None) or {}
    if method.upper() in overrides:
        return overrides[method.upper()]
    area = getattr(view, "scope_area", None)
    if area is None:
        return None
    return scope_name(area, write=method.upper() not in SAFE_METHODS)


class HasScope(BasePermission):
    code = "insufficient_scope"

    def has_permission(self, request, view) -> bool:
        principal = request.auth
        if principal is None or not hasattr(principal, "scopes"):
            return False
        scope = required_scope(view, request.method)
        if scope is None:
            # A view that forgot to declare its scope is closed rather than open.
            self.message = "This operation is not available to integrations."
            return False
        if scope not in principal.scopes:
            self.message = f"This operation needs the scope '{scope}'."
            return False
        return True
