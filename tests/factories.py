"""factory_boy factories for rows that tests need without going through services.

Prefer the service-based fixtures in conftest.py (``program``, ``make_member``...): they
run the hooks and emit the events that real data has.
"""

import factory

from integrations.models import Integration
from integrations.scopes import SCOPES
from programs.models import Location, Program


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program

    code = factory.Sequence(lambda n: f"prog{n}")
    name = factory.Sequence(lambda n: f"Program {n}")
    timezone = "Europe/Paris"
    currency = "EUR"
    phone_region = "FR"


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location

    program = factory.SubFactory(ProgramFactory)
    code = factory.Sequence(lambda n: f"store-{n}")
    name = factory.Sequence(lambda n: f"Store {n}")


class IntegrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Integration

    program = factory.SubFactory(ProgramFactory)
    name = factory.Sequence(lambda n: f"Integration {n}")
    kind = Integration.Kind.POS
    scopes = factory.LazyFunction(lambda: sorted(SCOPES))
