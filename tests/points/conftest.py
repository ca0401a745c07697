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
