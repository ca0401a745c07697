"""Programs and locations: services, hooks and the configuration API."""

import pytest

from membership_site.actors import Actor
from programs import hooks, services
from programs.errors import InvalidCurrencyError, InvalidTimezoneError, ProgramCodeTakenError
from programs.models import Location

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")


def test_program_create_validates_timezone_currency_and_code(program):
    with pytest.raises(InvalidTimezoneError):
        services.program_create(code="x", name="X", timezone="Europe/Atlantis", actor=SYSTEM)
    with pytest.raises(InvalidCurrencyError):
        services.program_create(code="x", name="X", currency="EURO", actor=SYSTEM)
    with pytest.raises(ProgramCodeTakenError):
        services.program_create(code="acme", name="Again", actor=SYSTEM)
    created = services.program_create(
        code="x", name="X", currency="gbp", timezone="Europe/London", actor=SYSTEM
    )
    assert created.currency == "GBP"


def test_program_created_hook_runs_inside_the_transaction(db):
    seen = []

    def receiver(*, program, actor):
        seen.append((program.code, actor.label))
        raise RuntimeError("a higher app failed to set up")

    hooks.program_created.register(receiver)
    try:
        with pytest.raises(RuntimeError):
            services.program_create(code="hooked", name="Hooked", actor=SYSTEM)
    finally:
        hooks.program_created._receivers.remove(receiver)
    assert seen == [("hooked", "tests")]
    from programs.models import Program

    assert not Program.objects.filter(code="hooked").exists()


def test_program_api_shows_the_integrations_program(api):
    response = api.get("/api/v1/program")
    assert response.status_code == 200
    assert response.json() == {
        "code": "acme",
        "name": "Acme Coffee",
        "timezone": "Europe/Paris",
        "currency": "EUR",
        "phone_region": "FR",
        "status": "active",
    }


def test_locations_api_create_list_update(api, make_api, other_program):
    created = api.post("/api/v1/locations", {"code": "paris-01", "name": "Paris", "kind": "store"})
    assert created.status_code == 201, created.content
    assert api.post("/api/v1/locations", {"code": "paris-01", "name": "Again"}).status_code == 409
    assert api.post("/api/v1/locations", {"code": "has space", "name": "X"}).status_code == 400
    assert api.post("/api/v1/locations", {"code": "x", "name": "X", "kind": "moon"}).status_code == 400
    updated = api.patch("/api/v1/locations/paris-01", {"is_active": False})
    assert updated.status_code == 200 and updated.json()["is_active"] is False
    assert [row["code"] for row in api.get("/api/v1/locations").json()["results"]] == ["paris-01"]

    other = make_api(target_program=other_program)
    assert other.get("/api/v1/locations/paris-01").status_code == 404
    assert other.get("/api/v1/locations").json()["results"] == []
    other.post("/api/v1/locations", {"code": "paris-01", "name": "Same code, other brand"})
    assert Location.objects.filter(code="paris-01").count() == 2


def test_locations_need_config_scopes(make_api):
    reader = make_api(["config:read"])
    assert reader.get("/api/v1/locations").status_code == 200
    assert reader.post("/api/v1/locations", {"code": "x", "name": "X"}).status_code == 403
    nobody = make_api(["members:read"])
    assert nobody.get("/api/v1/locations").status_code == 403


def test_location_history_records_the_integration(api):
    api.post("/api/v1/locations", {"code": "lyon", "name": "Lyon"})
    api.patch("/api/v1/locations/lyon", {"name": "Lyon Part-Dieu"})
    location = Location.objects.get(code="lyon")
    assert [h.name for h in location.history.order_by("history_date")] == ["Lyon", "Lyon Part-Dieu"]
    assert {h.history_integration_id for h in location.history.all()} == {api.integration.pk}


def test_program_and_location_updates_keep_changes_made_since_the_callers_copy_was_read(program):
    from programs.models import Program

    stale = Program.objects.get(pk=program.pk)
    services.program_update(program=program, phone_region="FR", actor=SYSTEM)
    services.program_update(program=stale, name="Renamed", actor=SYSTEM)
    assert Program.objects.values_list("name", "phone_region").get(pk=program.pk) == ("Renamed", "FR")

    location = services.location_create(program=program, code="lyon", name="Lyon", actor=SYSTEM)
    stale_location = Location.objects.get(pk=location.pk)
    services.location_update(location=location, kind=Location.Kind.WEB, actor=SYSTEM)
    services.location_update(location=stale_location, name="Lyon 2", actor=SYSTEM)
    assert Location.objects.values_list("name", "kind").get(pk=location.pk) == ("Lyon 2", "web")
