"""OpenAPI generation (drf-spectacular): security schemes, scopes per operation, the
problem details schema on every operation and the Idempotency-Key header on every POST."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from integrations.scopes import SCOPES

from .permissions import required_scope

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details. `code` is stable; branch on it, not on `title`.",
    "properties": {
        "type": {"type": "string", "example": "/api/problems/validation_error"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "example": "validation_error"},
        "errors": {
            "type": "array",
            "description": "Present for validation errors: one entry per problem.",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string", "nullable": True, "example": "lines.0.sku"},
                    "code": {"type": "string", "example": "required"},
                    "message": {"type": "string"},
                },
                "required": ["field", "code", "message"],
            },
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
    "additionalProperties": True,
}

_ERRORS_ALL = {
    "400": "Invalid input (`validation_error` with `errors`, `malformed_body`, ...).",
    "401": "Missing or invalid credentials.",
    "403": "The credential lacks the scope, or the address is not allowed.",
    "404": "Not found in the integration's program.",
    "429": "Rate limit exceeded; see `Retry-After`.",
}
_ERRORS_POST = {
    "409": "Conflict with the current state, or the Idempotency-Key is still in use.",
    "413": "The request body is too large.",
    "415": "The content type is not supported.",
    "422": "The request cannot be carried out (e.g. Idempotency-Key reused for another request).",
}

IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": (
        "Makes the POST safe to retry: the same key with the same request replays the first "
        "response; with a different request it gets 422; while the first is running, 409. "
        "Keys are kept 24 hours, per integration."
    ),
}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "integrations.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An integration's API key (`lk_...`), shown once when created.",
        }


class OAuth2Scheme(OpenApiAuthenticationExtension):
    target_class = "integrations.authentication.IntegrationOAuth2Authentication"
    name = "OAuth2"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {
            "type": "oauth2",
            "description": "Client credentials of an integration's OAuth2 client.",
            "flows": {"clientCredentials": {"tokenUrl": "/o/token/", "scopes": SCOPES}},
        }


class ApiAutoSchema(AutoSchema):
    def get_auth(self):
        auths = super().get_auth()  # registers the security schemes as components
        scope = required_scope(self.view, self.method)
        if not auths or scope is None:
            return auths
        return [{ApiKeyScheme.name: []}, {OAuth2Scheme.name: [scope]}]

    def get_description(self):
        description = super().get_description() or ""
        scope = required_scope(self.view, self.method)
        if scope:
            description = f"{description}\n\nScope: `{scope}`.".strip()
        return description


def add_problem_responses(result, generator, request, public):
    """Postprocessing hook: the Problem schema, error responses and Idempotency-Key."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            errors = dict(_ERRORS_ALL)
            if method != "get":
                errors.update(_ERRORS_POST)
            for status, description in errors.items():
                responses.setdefault(status, {"description": description, "content": problem})
            if method == "post":
                params = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in params):
                    params.append(IDEMPOTENCY_PARAMETER)
    return result
