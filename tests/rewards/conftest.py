"""Fixtures for the rewards tests: currencies, rewards and funded members, made through
the services."""

from __future__ import annotations

from decimal import Decimal

import pytest

from points import services as points_services
from points import upkeep
from points.models import Currency
from rewards import services
from rewards.models import Reward
from tests.conftest import SYSTEM


@pytest.fixture
def pts(program) -> Currency:
    return Currency.objects.select_related("program").get(program=program, code="PTS")


@pytest.fixture
def miles(program) -> Currency:
    currency = points_services.currency_create(program=program, code="MILES", name="Miles", actor=SYSTEM)
    return Currency.objects.select_related("program").get(pk=currency.pk)


@pytest.fixture
def make_reward(program, pts):
    def _make(code: str = "coffee-5", *, cost: int = 500, costs=None, **fields) -> Reward:
        fields.setdefault("name", code.replace("-", " ").title())
        fields.setdefault("kind", Reward.Kind.AMOUNT_VOUCHER)
        if fields["kind"] == Reward.Kind.AMOUNT_VOUCHER:
            fields.setdefault("voucher_amount", Decimal("5.00"))
        return services.reward_create(
            program=program, code=code, costs=costs or {pts: cost}, actor=SYSTEM, **fields
        )

    return _make


@pytest.fixture
def earn():
    def _earn(member, amount: int, **kwargs):
        return points_services.points_earn(member=member, amount=amount, actor=SYSTEM, **kwargs)

    return _earn


@pytest.fixture
def redeem_reward():
    def _redeem(member, reward, **kwargs):
        return services.reward_redeem(member=member, reward=reward, actor=SYSTEM, **kwargs)

    return _redeem


@pytest.fixture
def rewards_api(make_api):
    return make_api(
        ["rewards:read", "rewards:write", "config:read", "config:write", "points:read", "points:write"]
    )


def assert_ledger_consistent() -> None:
    differences = upkeep.points_verify_ledger()
    assert differences == [], "\n".join(str(d) for d in differences)
