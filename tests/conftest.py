"""Shared fixtures: programs, integrations with API clients, members.

Fixtures that create domain data go through the services, so hooks run and events are
written as in production.
"""

from __future__ import annotations

import itertools

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from integrations import services as integration_services
from integrations.models import Integration
from integrations.scopes import SCOPES
from members import services as member_services
from members.models import Member
from membership_site.actors import Actor
from programs import services as program_services
from programs.models import Program

SYSTEM = Actor.system("tests")
_sequence = itertools.count(1)


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle counters and other cached values must not leak between tests.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def system_actor() -> Actor:
    return SYSTEM


@pytest.fixture
def make_program(db):
    def _make(code: str | None = None, **fields) -> Program:
        fields.setdefault("name", "Test program")
        fields.setdefault("timezone", "Europe/Paris")
        fields.setdefault("currency", "EUR")
        fields.setdefault("phone_region", "FR")
        return program_services.program_create(code=code or f"prog{next(_sequence)}", actor=SYSTEM, **fields)

    return _make


@pytest.fixture
def program(make_program) -> Program:
    return make_program("acme", name="Acme Coffee")


@pytest.fixture
def other_program(make_program) -> Program:
    return make_program("other", name="Other brand")


class ApiTestClient(APIClient):
    """An API client holding an integration's key; ``.integration`` and ``.program``."""

    integration: Integration
    key: str

    @property
    def program(self) -> Program:
        return self.integration.program


@pytest.fixture
def make_api(program):
    def _make(
        scopes: list[str] | None = None,
        *,
        target_program: Program | None = None,
        **integration_fields,
    ) -> ApiTestClient:
        integration = integration_services.integration_create(
            program=target_program or program,
            name=integration_fields.pop("name", f"Integration {next(_sequence)}"),
            scopes=sorted(SCOPES) if scopes is None else scopes,
            kind=integration_fields.pop("kind", Integration.Kind.POS),
            actor=SYSTEM,
            **integration_fields,
        )
        new_key = integration_services.api_key_create(integration=integration, actor=SYSTEM)
        client = ApiTestClient()
        client.integration = integration
        client.key = new_key.key
        client.credentials(HTTP_X_API_KEY=new_key.key)
        return client

    return _make


@pytest.fixture
def api(make_api) -> ApiTestClient:
    """All scopes, on ``program``."""
    return make_api()


@pytest.fixture
def make_member(program):
    def _make(target_program: Program | None = None, **fields) -> Member:
        n = next(_sequence)
        fields.setdefault("first_name", f"Member{n}")
        fields.setdefault("email", f"member{n}@example.com")
        return member_services.member_create(program=target_program or program, actor=SYSTEM, **fields)

    return _make


@pytest.fixture
def member(make_member) -> Member:
    return make_member(first_name="Ana", last_name="Lopez", email="ana@example.com", phone="+33612345678")


pytest_plugins = ["tests.celery_support"]
