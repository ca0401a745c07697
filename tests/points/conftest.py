"""Fixtures for the points tests: the default currency, helpers that go through the
services, and a ledger check."""

from __future__ import annotations

import pytest

from points import services, upkeep
from points.models import Currency
from tests.conftest import SYSTEM


@pytest.fixture
def pts(program) -> Currency:
    """The program's default currency (created by the program_created hook)."""
    return Currency.objects.select_related("program").get(program=program, code="PTS")


@pytest.fixture
def make_currency(program):
    def _make(code: str = "STAMPS", **fields) -> Currency:
        fields.setdefault("name", code.title())
        currency = services.currency_create(program=program, code=code, actor=SYSTEM, **fields)
        return Currency.objects.select_related("program").get(pk=currency.pk)

    return _make


@pytest.fixture
def earn():
    def _earn(member, amount: int, **kwargs):
        return services.points_earn(member=member, amount=amount, actor=SYSTEM, **kwargs)

    return _earn


@pytest.fixture
def redeem():
    def _redeem(member, amount: int, **kwargs):
        return services.points_redeem(member=member, amount=amount, actor=SYSTEM, **kwargs)

    return _redeem


def assert_ledger_consistent(program=None) -> None:
    differences = upkeep.points_verify_ledger(program=program)
    assert differences == [], "\n".join(str(d) for d in differences)


@pytest.fixture
def ledger_ok():
    return assert_ledger_consistent


@pytest.fixture
def points_api(make_api):
    return make_api(["points:read", "points:write"])


# --- Earning (purchases, rules, campaigns) --------------------------------------------------


def line(sku: str = "SKU", price: str = "10.00", quantity: str = "1", **fields):
    """A purchase line for the earning services (money as strings, like the API)."""
    from decimal import Decimal

    from points.earning.basket import LineInput

    for name in ("line_total", "discount"):
        if name in fields and fields[name] is not None:
            fields[name] = Decimal(fields[name])
    return LineInput(sku=sku, unit_price=Decimal(price), quantity=Decimal(quantity), **fields)


@pytest.fixture
def location(program):
    from programs.services import location_create

    return location_create(program=program, code="paris-01", name="Paris", actor=SYSTEM)


@pytest.fixture
def make_rule(program):
    def _make(code: str = "base", value: str = "1", **fields):
        from decimal import Decimal

        from points.earning import config

        return config.earning_rule_create(
            program=program,
            code=code,
            name=fields.pop("name", code),
            value=Decimal(value),
            actor=SYSTEM,
            **fields,
        )

    return _make


@pytest.fixture
def make_campaign(program):
    def _make(code: str = "promo", value: str = "2", **fields):
        from decimal import Decimal

        from points.earning import config

        fields.setdefault("effect", "multiplier")
        return config.campaign_create(
            program=program,
            code=code,
            name=fields.pop("name", code),
            value=Decimal(value),
            actor=SYSTEM,
            **fields,
        )

    return _make


@pytest.fixture
def base_rule(make_rule):
    """1 point per unit of money on every eligible line."""
    return make_rule("base", "1")


@pytest.fixture
def earning_settings(program):
    def _set(**fields):
        from points.earning import config

        return config.earning_settings_update(program=program, actor=SYSTEM, **fields)

    return _set


@pytest.fixture
def buy(program):
    """Record a purchase through the service: ``buy(member, [line(...)], reference=...)``."""
    import itertools

    from points.earning import purchases

    numbers = itertools.count(1)

    def _buy(member, lines=None, *, reference: str | None = None, **kwargs):
        return purchases.purchase_record(
            program=program,
            member=member,
            reference=reference or f"R-{next(numbers)}",
            lines=lines or [line()],
            actor=SYSTEM,
            **kwargs,
        ).purchase

    return _buy
